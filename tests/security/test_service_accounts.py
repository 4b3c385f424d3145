"""The marketplace and the idle culler of a root hub run under their own system accounts.

The finding (issue 13): in local root mode both ran as root, the marketplace while parsing
untrusted uploads. Here a real hub runs as root (``deepvre hub up``) over a state folder whose
``marketplace/`` a root-run marketplace left behind. The tests check who each service runs as,
that the old catalog was handed over (links not followed) and still serves, and what a
marketplace taken over by an upload could reach: code run as ``deepvre-market`` tries the hub's
secrets and database, the culler's config and token, and the users' homes. An anonymous local
process (``nobody``) tries the state folder and the catalog.
"""

import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil
import pytest
import requests
from traitlets.config import Config

from deepvre.site.settings import validate_settings
from deepvre_hub import accounts, modes, service_accounts
from tests.hub.hubprocess import HubProcess, cpu_only, run_code
from tests.market.conftest import make_document
from tests.market.fuzz_hooks import MODEL
from tests.prereqs import require_proxy, require_root, traversable
from tests.security.test_market import model_tar

PASSWORD = "service-accounts-pw-1"
SERVICES = {"marketplace": "-m deepvre.market", "idle-culler": "jupyterhub_idle_culler"}


def root_catalog(state):
    """What a root-run marketplace left: a catalog with one public model, all root's, and a
    link to a root file (the hand-over must change the link, not its target)."""
    from deepvre.market.catalog import Catalog

    market = state / "marketplace"
    market.mkdir(parents=True, mode=0o700)
    model = state.parent / "old-model.keras"
    model.write_bytes(MODEL)
    notebook = state.parent / "training.ipynb"
    notebook.write_text("{}")
    catalog = Catalog(database_url=f"sqlite:///{market}/catalog.sqlite", store_url=str(market / "artifacts"))
    catalog.publish(make_document("left-by-root"), {"model.keras": model, "training.ipynb": notebook}, "ana",
                    visibility="public")
    catalog.engine.dispose()
    target = state.parent / "roots-file"
    target.write_text("root's")
    (market / "link").symlink_to(target)
    return target


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process = HubProcess(cpu_only(culling={"enabled": True, "every": 600}), tmp_path_factory.mktemp("svc-hub") / "state")
    process.state_dir.mkdir(mode=0o700)
    target = root_catalog(process.state_dir)
    process.start()
    admin = process.login(process.admin, process.admin_password)
    name = f"svc{secrets.token_hex(3)}"
    _, token = process.approved_user(admin, name, PASSWORD)
    accounts.ensure_account(name)  # as the hub makes it at the first spawn: a private home
    process.alice, process.alice_token, process.link_target = name, token, target
    yield process
    process.teardown()


def service_processes(hub):
    """``{service: psutil.Process}`` of the hub's managed services."""
    found = {}
    for child in psutil.Process(hub.process.pid).children(recursive=True):
        cmdline = " ".join(child.cmdline())
        for service, module in SERVICES.items():
            if module in cmdline:
                found.setdefault(service, child)
    assert set(found) == set(SERVICES), found
    return found


def test_marketplace_and_culler_run_under_their_own_accounts(hub):
    for service, proc in service_processes(hub).items():
        uids = proc.uids()
        account = {"marketplace": "deepvre-market", "idle-culler": "deepvre-culler"}[service]
        assert {uids.real, uids.effective, uids.saved} == {pwd.getpwnam(account).pw_uid}, (service, uids)
        entry = pwd.getpwnam(account)
        assert entry.pw_uid < accounts.uid_min() and entry.pw_shell.endswith("nologin")
        # not started in a folder it writes (``python -m`` imports from there first), nor importing from it
        assert proc.cwd() == "/" and proc.environ().get("PYTHONSAFEPATH") == "1"
        assert not accounts.in_group(entry, accounts.MARKER_GROUP)  # no hub user can be given it


def test_a_catalog_a_root_marketplace_left_is_handed_over(hub):
    market = hub.state_dir / "marketplace"
    owner = pwd.getpwnam("deepvre-market").pw_uid
    for root, dirs, files in os.walk(market):
        for name in [".", *dirs, *files]:
            assert os.lstat(os.path.join(root, name)).st_uid == owner, os.path.join(root, name)
    assert os.stat(hub.link_target).st_uid == 0  # the link changed owner, not what it points to
    assert oct(market.stat().st_mode & 0o777) == "0o700"
    headers = {"Authorization": f"token {hub.alice_token}"}
    api = f"{hub.url}/services/marketplace/api/models"
    listed = requests.get(api, headers=headers, timeout=30)
    assert listed.status_code == 200 and "left-by-root" in listed.text, listed.text[:500]
    published = requests.post(api, data=model_tar(f"m{secrets.token_hex(3)}"), timeout=120,
                              headers={**headers, "Content-Type": "application/x-tar"})
    assert published.status_code == 201, published.text


# Run as the attacker: try each thing; print one line per try that worked.
PROBE = textwrap.dedent("""
    import os, signal, sys
    state, culler, hub, home = sys.argv[1:5]
    def tried(what, action):
        try:
            action()
        except OSError:
            return
        print("GOT", what)
    for name in ("jupyterhub_cookie_secret", "jupyterhub.sqlite", "proxy_token", "idle_culler_config.py.bak"):
        tried("read " + name, lambda: open(os.path.join(state, name), "rb").read(1))
    tried("list the state folder", lambda: os.listdir(state))
    tried("write the culler config", lambda: open(os.path.join(state, "idle_culler_config.py"), "a").close())
    tried("replace the culler config", lambda: os.rename(os.path.join(state, "idle_culler_config.py"), os.path.join(state, "x")))
    tried("read the culler's environment (its token)", lambda: open(f"/proc/{culler}/environ", "rb").read(1))
    tried("signal the culler", lambda: os.kill(int(culler), signal.SIGSTOP))
    tried("read the hub's environment", lambda: open(f"/proc/{hub}/environ", "rb").read(1))
    tried("list a user's home", lambda: os.listdir(home))
    tried("write /etc", lambda: open("/etc/deepvre-probe", "w").close())
    if len(sys.argv) > 5:
        market = sys.argv[5]
        tried("list the catalog", lambda: os.listdir(market))
        tried("read the catalog", lambda: open(os.path.join(market, "catalog.sqlite"), "rb").read(1))
    print("DONE")
""")


@pytest.mark.parametrize("attacker", ["deepvre-market", "nobody"])
def test_a_taken_over_marketplace_or_another_process_reaches_nothing_of_the_hubs(hub, attacker):
    culler = service_processes(hub)["idle-culler"]
    # the hub's files exist, and root can read them: the probe's failures are refusals
    for name in ("jupyterhub_cookie_secret", "jupyterhub.sqlite", "proxy_token"):
        assert (hub.state_dir / name).stat().st_mode & 0o077 == 0, name
    (hub.state_dir / "idle_culler_config.py.bak").write_text("x")  # a file the hub might leave
    os.chmod(hub.state_dir / "idle_culler_config.py.bak", 0o600)
    args = [str(hub.state_dir), str(culler.pid), str(hub.process.pid), pwd.getpwnam(hub.alice).pw_dir]
    if attacker == "nobody":
        args.append(str(hub.state_dir / "marketplace"))
    result = subprocess.run([sys.executable, "-c", PROBE, *args], user=attacker, group=pwd.getpwnam(attacker).pw_gid,
                            extra_groups=[], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.stdout.strip().endswith("DONE"), result.stderr
    assert "GOT" not in result.stdout, result.stdout
    assert culler.status() != psutil.STATUS_STOPPED
    assert os.stat(hub.state_dir).st_mode & 0o777 == 0o711


def test_what_the_marketplace_sees_of_a_caller_cannot_open_their_server(hub):
    """A marketplace an upload took over keeps the tokens its callers send. A user's server sends
    ``$DEEPVRE_MARKET_TOKEN``, scoped to the marketplace alone: it opens neither the user's server
    nor the hub API; the server's own token (which opens the server) is refused by the marketplace,
    so the client never sends it (the second hostile review ran code in bob's server with it)."""
    name, token = hub.alice, hub.alice_token
    assert hub.spawn(token, name).status_code in (201, 202)
    server = hub.server_url(name)
    code = ("import os, json\nfrom deepvre.market.client import connect\n"
            "entry = connect().show('left-by-root')\n"
            "print(json.dumps([os.environ['DEEPVRE_MARKET_TOKEN'], os.environ['JUPYTERHUB_API_TOKEN'], "
            "json.dumps(entry)]))")
    market_token, server_token, entry = json.loads(run_code(server, token, code).strip().splitlines()[-1])
    assert "left-by-root" in entry  # the client works with it
    as_market = {"Authorization": f"token {market_token}"}
    assert requests.get(f"{server}api/contents", headers=as_market, timeout=30).status_code == 403
    assert requests.post(f"{server}api/kernels", headers=as_market, json={}, timeout=30).status_code == 403
    assert requests.get(f"{hub.url}/hub/api/users/{name}/tokens", headers=as_market, timeout=30).status_code == 403
    scopes = requests.get(f"{hub.url}/hub/api/user", headers=as_market, timeout=30).json()["scopes"]
    # and JupyterHub's identity scopes: its own name and groups
    assert set(scopes) == {"access:services!service=marketplace", f"read:users:name!user={name}",
                           f"read:users:groups!user={name}"}, scopes
    api = f"{hub.url}/services/marketplace/api/models"
    assert requests.get(api, headers={"Authorization": f"token {server_token}"}, timeout=30).status_code == 403
    # a new start revokes the previous start's token
    hub.stop_server(token, name)
    assert hub.spawn(token, name).status_code in (201, 202)
    hub.wait_ready(token, name)
    # (the service's HubAuth may keep its answer for a known token up to cache_max_age, 5 minutes)
    assert requests.get(f"{hub.url}/hub/api/user", headers=as_market, timeout=30).status_code == 403
    hub.stop_server(token, name)


# -- the pieces, without a hub ----------------------------------------------------------------------


def test_a_person_or_hub_users_account_is_never_a_service_account(tmp_path):
    require_root()
    person = f"svcp{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--no-create-home", person], check=True, capture_output=True)
    member = f"svcm{secrets.token_hex(3)}"
    accounts.ensure_group(accounts.MARKER_GROUP)
    subprocess.run(["useradd", "--system", "--no-create-home", "--groups", accounts.MARKER_GROUP, member],
                   check=True, capture_output=True)
    grouped = f"svcg{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", "disk",
                    grouped], check=True, capture_output=True)
    try:
        for name in ("root", person, member):
            with pytest.raises(service_accounts.ServiceAccountError, match="must not run as it"):
                service_accounts.ensure(name)
        with pytest.raises(service_accounts.ServiceAccountError, match="more than a service needs"):
            service_accounts.ensure(grouped)  # its process would get the disk group
        with pytest.raises(accounts.AccountError):
            service_accounts.ensure("bad/name")
    finally:
        for name in (person, member, grouped):
            subprocess.run(["userdel", name], capture_output=True, check=False)


def test_a_folder_another_account_owns_is_not_handed_over(tmp_path):
    require_root()
    folder = tmp_path / "marketplace"
    folder.mkdir()
    os.chown(folder, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(service_accounts.ServiceAccountError, match="not handed over"):
        service_accounts.hand_over(folder, service_accounts.ensure("deepvre-market"))


def test_state_folder_is_passable_and_its_files_private(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "proxy.pid").write_text("1")
    os.chmod(state / "proxy.pid", 0o644)
    (state / "homes").mkdir(mode=0o755)
    (state / "marketplace").mkdir(mode=0o700)
    (state / "idle_culler_config.py").write_text("")
    os.chmod(state / "idle_culler_config.py", 0o644)
    service_accounts.tighten_state(state, shared={"marketplace", "idle_culler_config.py"})
    modes_of = {p.name: p.stat().st_mode & 0o777 for p in state.iterdir()}
    assert modes_of == {"proxy.pid": 0o600, "homes": 0o700, "marketplace": 0o700,
                        "idle_culler_config.py": 0o644, "jupyterhub.sqlite": 0o600}
    assert state.stat().st_mode & 0o777 == 0o711


def test_a_hub_whose_services_cannot_reach_their_folder_refuses_to_start(capsys):
    """A 0700 folder above the state: the marketplace's account cannot pass, and the hub says so.

    The folder is its own under /tmp, not pytest's: pytest takes /tmp/pytest-of-root back to 0700
    whenever a worker or a nested pytest starts, which raced the second half of this test."""
    require_root()
    tmp_path = Path(tempfile.mkdtemp(prefix="deepvre-sa-test-"))  # 0700
    try:
        blocked_then_traversable(tmp_path, capsys)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def blocked_then_traversable(tmp_path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    assert not os.stat(tmp_path).st_mode & 0o001
    with pytest.raises(SystemExit):
        modes.configure(Config(), validate_settings({}), state)
    err = capsys.readouterr().err
    assert re.search(r"runs as 'deepvre-(market|culler)' \(hub.service_accounts\), which cannot use", err), err
    assert "chmod o+x" in err and re.search(r'service_accounts.(marketplace|idle-culler) to ""', err), err
    traversable(tmp_path)
    c = Config()
    modes.configure(c, validate_settings({}), state)
    users = {s["name"]: s.get("user") for s in c.JupyterHub.services}
    assert users == {"marketplace": "deepvre-market", "idle-culler": "deepvre-culler"}
    assert {(s["cwd"], s["environment"]["PYTHONSAFEPATH"]) for s in c.JupyterHub.services} == {("/", "1")}
    c = Config()
    modes.configure(c, validate_settings({"hub": {"service_accounts": {"marketplace": "", "idle-culler": ""}}}),
                    state)
    assert {s["name"]: s.get("user") for s in c.JupyterHub.services} == {"marketplace": None, "idle-culler": None}


def test_a_process_a_taken_over_service_left_is_ended_at_the_next_start(hub_state):
    """JupyterHub stops only a service's own process: one a taken-over marketplace forked would
    wait, orphaned, as that account, for the next start (and keep its access after an upgrade).
    A service some running hub started (its parent root's) is left alone."""
    require_root()
    # the orphan: its parent shell exits at once
    subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"], user="deepvre-market", extra_groups=[], cwd="/",
                   check=True)
    orphans = [p for p in psutil.process_iter(["username", "cmdline", "ppid"])
               if p.info["username"] == "deepvre-market" and p.info["cmdline"][:2] == ["sleep", "300"]]
    assert orphans and all(p.info["ppid"] != os.getpid() for p in orphans)
    served = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], user="deepvre-market",
                              extra_groups=[], cwd="/")  # what a hub's service is: a child of root
    try:
        modes.configure(Config(), validate_settings({}), hub_state)
        psutil.wait_procs(orphans, timeout=30)
        assert not any(p.is_running() for p in orphans)
        assert served.poll() is None
    finally:
        served.kill()
