"""A hostile review of the issue-13 fixes: attacks on what the change claims, each one a test.

Holes are recorded as ``xfail(strict=True)`` tests that assert the secure behaviour (they fail
while the hole is open; a fix turns them into XPASS, which fails the suite until the mark goes).
Doors that held and that tests/security did not already cover have short passing tests.

* ``SLURM_CONF`` in the sudo rule's ``env_keep``: the hub account ran any code as a marked user
  (a SPANK plugin that ``sbatch`` loads), which the rule says it removed with ``SETENV`` (fixed:
  the rule keeps no SLURM_CONF and names root's wrappers with the site's slurm.conf fixed);
* ``deepvre serve --socket``: only the socket's own folder is checked, so a folder made inside a
  folder another account owns can be swapped by that account after the check;
* Fine-tune -> Run ``trust``: the notebook is hashed in a shared cache path, then read again;
  a concurrent fetch of a newer version in between runs a notebook nobody confirmed;
* the owner-only ``train`` guard of the launcher, against path tricks (held).
"""

import contextlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 (its fixtures)

from deepvre_hub import accounts
from tests.extension.conftest import api, colours_model, jp_server_config, publish_colours  # noqa: F401
from tests.prereqs import require_program, require_root

from .conftest import slurm_wrappers, sudoers_text


@contextlib.contextmanager
def os_account(role, system=False):
    """A fresh OS account ``dvatk<hex><role>`` (home 0700), removed after."""
    require_root()
    name = f"dvatk{secrets.token_hex(3)}{role}"
    cmd = ["useradd", "--shell", "/bin/bash", "--create-home", "-K", "HOME_MODE=0700"] + (["--system"] if system else [])
    subprocess.run([*cmd, name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


# --------------------------------------------------------------------------- sudo: SLURM_CONF

PLUGIN = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void ran(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fprintf(f, "uid=%d\n", (int)getuid()); fclose(f); }
}
"""


@pytest.mark.root
def test_hub_account_cannot_run_code_as_a_user_through_slurm_conf(tmp_path):
    """The rule says the hub may run sbatch as a marked user, "not SETENV: with SETENV the hub could set
    any variable (LD_PRELOAD...) and so run any program as the user". ``SLURM_CONF`` was kept by name, and
    sbatch loads the SPANK plugins the config names (PlugStackConfig) in its own process, as the user.
    Tried on the commands the rule names (root's wrappers, with /etc/slurm/slurm.conf fixed) and on
    /usr/bin/sbatch itself, passed in the environment and on sudo's command line."""
    require_root()
    for program in ("sudo", "visudo", "runuser", "gcc", "sbatch"):
        require_program(program)
    alias = f"DVATK_SLURM_{secrets.token_hex(3).upper()}"  # never the same alias as a rule another test installs
    marked = f"dvatk{secrets.token_hex(3)}m"
    folder = Path(tempfile.mkdtemp(prefix="dvatk-slurmconf-"))
    os.chmod(folder, 0o755)
    out = folder / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    marker = out / "ran-as-user"
    rule = None
    try:
        with os_account("hub", system=True) as hub, slurm_wrappers("/etc/slurm/slurm.conf") as command_dir:
            accounts.ensure_account(marked)  # a hub user's account: in the marker group
            text = sudoers_text(hub, command_dir=command_dir).replace("DEEPVRE_SLURM", alias)
            draft = folder / "rule"
            draft.write_text(text)
            subprocess.run(["visudo", "-cf", str(draft)], check=True, capture_output=True)
            rule = f"/etc/sudoers.d/dvatk-{alias.lower()}"
            subprocess.run(["install", "-m", "0440", str(draft), rule], check=True)
            # what the hub account writes in a folder of its own: a plugin, a plugstack.conf, a slurm.conf
            (folder / "p.c").write_text(PLUGIN)
            subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(folder / "p.so"),
                            str(folder / "p.c")], check=True, capture_output=True)
            (folder / "plugstack.conf").write_text(f"optional {folder / 'p.so'}\n")
            (folder / "slurm.conf").write_text(
                f"ClusterName=dvatk\nSlurmctldHost=localhost\nMessageTimeout=1\nPlugStackConfig={folder / 'plugstack.conf'}\n")
            for p in folder.iterdir():
                if p.is_file():
                    os.chmod(p, 0o755)
            conf = f"SLURM_CONF={folder / 'slurm.conf'}"
            for sbatch in (os.path.join(command_dir, "sbatch"), "/usr/bin/sbatch"):
                for tried in (["env", conf, "sudo", "-n", "-u", marked, sbatch],
                              ["sudo", "-n", "-u", marked, conf, sbatch]):
                    subprocess.run(["runuser", "-u", hub, "--", *tried, "--wrap", "true"],
                                   capture_output=True, text=True, timeout=120, check=False)
            ran = marker.exists()
            owner = marker.stat().st_uid if ran else None
            assert not ran, f"code of the hub account ran as {marked} (uid {owner}) inside sbatch"
    finally:
        if rule and os.path.exists(rule):
            os.remove(rule)
        subprocess.run(["userdel", "-r", marked], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- deepvre serve --socket


@pytest.fixture
def attacker():
    require_root()
    require_program("runuser")
    with os_account("x") as name:
        yield name


@pytest.mark.root
def test_socket_folder_inside_another_accounts_folder_is_refused(attacker):
    """``deepvre serve M --socket /tmp/shared/svc/deepaas.sock`` where /tmp/shared is another
    account's (0777, no sticky bit): the launcher makes ``svc`` 0700 and accepts it; its owner then
    renames it away and puts its own folder there, so DEEPaaS binds its socket where the attacker can
    replace it with a listener of its own (and the user's requests go to the attacker)."""
    from deepvre.serving import launch

    shared = Path(tempfile.mkdtemp(prefix="dvatk-shared-"))
    try:
        shutil.chown(shared, attacker, attacker)
        os.chmod(shared, 0o777)
        svc = shared / "svc"
        refused = False
        try:
            launch.private_folder(str(svc))
        except SystemExit:
            refused = True
        if not refused:  # the attack: swap the checked folder for one of the attacker's
            subprocess.run(["runuser", "-u", attacker, "--", "sh", "-c",
                            f"mv {svc} {shared}/old && mkdir -m 777 {svc}"], check=True, capture_output=True)
        st = os.lstat(svc) if os.path.lexists(svc) else None
        assert refused or (st and st.st_uid == os.getuid() and not st.st_mode & 0o077), (
            f"{svc} accepted, then replaced by {attacker}'s folder (mode {oct(stat.S_IMODE(st.st_mode))})")
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.root
def test_socket_folder_precreated_by_another_account_is_refused(attacker):
    """Held: the socket's folder pre-made by another account (a folder, or a link to one) in /tmp."""
    from deepvre.serving import launch

    name = f"/tmp/dvatk-svc-{secrets.token_hex(4)}"
    link = name + "-link"
    try:
        subprocess.run(["runuser", "-u", attacker, "--", "sh", "-c", f"mkdir -m 777 {name} && ln -s {name} {link}"],
                       check=True, capture_output=True)
        for path in (name, link):
            with pytest.raises(SystemExit):
                launch.private_folder(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        shutil.rmtree(name, ignore_errors=True)


# --------------------------------------------------------------------------- trust: check, then use


def _own_market(tmp_path, monkeypatch, model):
    """A catalog of this test's own, ana's colours 1.0.0 in it, as the server's default."""
    market = tmp_path / "market"
    market.mkdir()
    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(market))
    monkeypatch.delenv("DEEPVRE_MARKET_URL", raising=False)
    publish_colours(market, model)
    return market


def _second_version(model, tmp_path, payload):
    """colours 2.0.0: the same files, its training notebook with one more cell (``payload``)."""
    folder, doc = model
    v2 = tmp_path / "v2"
    shutil.copytree(folder, v2)
    nb = json.loads((v2 / "training.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": payload})
    (v2 / "training.ipynb").write_text(json.dumps(nb))
    doc2 = json.loads(json.dumps(doc))
    doc2["deepvre"]["version"] = "2.0.0"
    return v2, doc2


def test_confirmed_notebook_is_the_one_that_runs(api, colours_model, jp_root_dir, tmp_path, monkeypatch):  # noqa: F811
    """ana's colours 1.0.0 is confirmed by its sha256; right after the request fetches the notebook
    (its one fetch, before the check and the copy) ana publishes 2.0.0 and a fetch of "latest" (the
    panel's ``GET models/colours/parameters``) writes 2.0.0's notebook into the panel's folder. The
    run must use what was confirmed (or refuse), not 2.0.0's notebook."""
    from deepvre.market.catalog import Catalog
    from deepvre_jupyter import backends

    market = _own_market(tmp_path, monkeypatch, colours_model)
    v2, doc2 = _second_version(colours_model, tmp_path, "# DVATK-PAYLOAD: not what the user confirmed\n")

    real = backends.fetch_file
    armed = []

    def fetch_then_race(client, entry, filename):
        data = real(client, entry, filename)
        if armed and not armed[0]:
            armed[0] = True
            catalog = Catalog(database_url=f"sqlite:///{market}/catalog.sqlite", store_url=str(market / "artifacts"))
            catalog.publish(doc2, {p.name: p for p in v2.iterdir()}, "ana", visibility="public")
            backends.training_notebook("colours", None, str(tmp_path / "panel"))  # the concurrent GET parameters
        return data

    monkeypatch.setattr(backends, "fetch_file", fetch_then_race)
    body = {"model": "colours", "parameters": {"epochs": 1}}
    status, data = api("POST", "runs", body=body)
    assert status == 409, data
    assert data["version"] == "1.0.0" and "colours:1.0.0" in data["message"], data  # "latest", resolved
    armed.append(False)
    status, run = api("POST", "runs", body={**body, "trust": {"owner": "ana", "sha256": data["sha256"]}})
    try:
        copies = [p for p in Path(jp_root_dir).rglob("*.ipynb") if "DVATK-PAYLOAD" in p.read_text()]
    finally:
        if status == 201:
            api("DELETE", f"runs/{run['id']}")
    assert armed == [True]
    assert status == 409 or not copies, f"ran 2.0.0's notebook though 1.0.0's sha256 was confirmed: {copies}"



def test_confirmation_of_one_version_does_not_run_the_next(api, colours_model, tmp_path, monkeypatch):  # noqa: F811
    """"latest" is resolved per request: ana publishes 2.0.0 after the user confirmed 1.0.0's sha256,
    so the confirmed request is refused again, naming 2.0.0 and its own sha256."""
    from deepvre.market.catalog import Catalog

    market = _own_market(tmp_path, monkeypatch, colours_model)
    body = {"model": "colours", "parameters": {"epochs": 1}}
    status, first = api("POST", "runs", body=body)
    assert (status, first["version"]) == (409, "1.0.0"), first
    v2, doc2 = _second_version(colours_model, tmp_path, "# DVATK-PAYLOAD\n")
    catalog = Catalog(database_url=f"sqlite:///{market}/catalog.sqlite", store_url=str(market / "artifacts"))
    catalog.publish(doc2, {p.name: p for p in v2.iterdir()}, "ana", visibility="public")
    status, again = api("POST", "runs", body={**body, "trust": {"owner": "ana", "sha256": first["sha256"]}})
    assert status == 409 and again["version"] == "2.0.0" and again["sha256"] != first["sha256"], again
    assert "colours:2.0.0" in again["message"]


# --------------------------------------------------------------------------- train guard (held)


def test_train_guard_survives_path_tricks():
    """Held: the launcher's owner-only ``train`` guard against encodings, doubled slashes, no trailing
    slash, and the task routes (``train/{uuid}``), in an app laid out as DEEPaaS 2.6's (a ``/v2``
    sub-application behind ``normalize_path_middleware``, the guard first)."""
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from deepvre.serving import launch

    async def main():
        app = web.Application(middlewares=[launch.train_middleware("no"), web.normalize_path_middleware()])
        v2 = web.Application()

        async def ok(request):
            return web.json_response({"ran": True})

        for method in ("POST", "GET"):
            v2.router.add_route(method, "/models/colours/train/", ok)
            v2.router.add_route(method, "/models/colours/train/{uuid}", ok)
        v2.router.add_get("/models/colours/", ok)
        app.add_subapp("/base/v2", v2)
        seen = {}
        async with TestClient(TestServer(app)) as client:
            for path in ("/base/v2/models/colours/train/", "/base/v2/models/colours/train",
                         "/base/v2/models/colours/%74rain/", "/base/v2/models/colours/tr%61in",
                         "/base/v2//models/colours/train/", "/base/v2/models//colours/train/",
                         "/base//v2/models/colours/train/", "/base/v2/models/colours/train/abc",
                         "/base/v2/models/colours/./train/", "/base/v2/models/x/../colours/train/"):
                for method in ("POST", "GET"):
                    resp = await client.request(method, path, allow_redirects=True)
                    seen[(method, path)] = resp.status
            control = (await client.get("/base/v2/models/colours/")).status
        return seen, control

    seen, control = asyncio.run(main())
    assert control == 200
    assert [k for k, code in seen.items() if 200 <= code < 300] == [], seen


@pytest.mark.root
def test_dask_credentials_and_market_token_refuse_a_folder_another_account_controls(attacker):
    """The same swap against the Dask credential folder and the standalone marketplace's token file."""
    from deepvre.market.app import write_token
    from deepvre.pipelines import tls

    shared = Path(tempfile.mkdtemp(prefix="dvatk-shared-"))
    try:
        shutil.chown(shared, attacker, attacker)
        os.chmod(shared, 0o777)
        with pytest.raises(PermissionError, match="another account's"):
            tls.tls_files(str(shared / "dask"))
        with pytest.raises(SystemExit, match="another account's"):
            write_token(shared / "token")
        assert not list((shared / "dask").iterdir()) and not (shared / "token").exists()  # no credentials, no token
    finally:
        shutil.rmtree(shared, ignore_errors=True)
