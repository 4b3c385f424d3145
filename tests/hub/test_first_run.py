"""Issue 17, a first run that works, on a real local hub (``deepvre hub up`` as root, the
marketplace seeding its base model, servers under the users' own accounts):

- ``deepvre`` is on PATH in a user's kernel and in a JupyterLab terminal (a login shell);
- the use-case notebooks are in a new user's home after the first spawn, owned by the user, and a
  later spawn keeps the user's edits and deletions;
- inside the server, ``deepvre weights convert --publish`` finds the base model in the hub's
  marketplace (seeded as ``deepvre``) and writes no private catalog.
"""

import json
import os
import pwd

import pytest
import requests

from tests.hub.hubprocess import HubProcess, cpu_only, run_code, terminal_output, wait_for
from tests.prereqs import require_proxy, require_root
from tests.security.conftest import PASSWORD, new_name

pytestmark = [pytest.mark.root, pytest.mark.hub]

NOTEBOOKS = ("biology/biology.ipynb", "satellite/satellite.ipynb", "lattice-qcd/lattice-qcd.ipynb",
             "security/security.ipynb")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    hub = HubProcess(cpu_only(marketplace={"seed_base_models": True}), tmp_path_factory.mktemp("first-run") / "state")
    with hub.running():
        admin = hub.login(hub.admin, hub.admin_password)
        name = new_name("new")
        _, token = hub.approved_user(admin, name, PASSWORD)
        hub.user, hub.user_token = name, token
        r = hub.spawn(token, name, profile="cpu")
        assert r.status_code in (201, 202), r.text
        yield hub


def test_deepvre_is_on_path_in_a_kernel_and_a_terminal(hub):
    out = run_code(hub.server_url(hub.user), hub.user_token, (
        "import shutil, subprocess\n"
        "print(shutil.which('deepvre'))\n"
        "print(subprocess.run(['deepvre', '--help'], capture_output=True, text=True).stdout)\n"))
    where = out.splitlines()[0]
    assert where.endswith("/deepvre") and os.access(where, os.X_OK), out
    assert "Usage: deepvre" in out and "weights" in out
    text = terminal_output(hub.server_url(hub.user), hub.user_token, "which deepvre && deepvre --help | head -3")
    assert where in text and "Usage: deepvre" in text, text


def test_the_use_case_notebooks_are_in_a_new_home_and_stay_the_users(hub):
    home = pwd.getpwnam(hub.user).pw_dir
    folder = os.path.join(home, "deepvre-examples")
    for rel in NOTEBOOKS:
        path = os.path.join(folder, rel)
        assert os.path.isfile(path), os.listdir(folder)
        assert os.stat(path).st_uid == pwd.getpwnam(hub.user).pw_uid
        json.loads(open(path).read())  # a whole notebook
    # reachable in the file browser (the contents API of the user's server)
    listed = requests.get(f"{hub.server_url(hub.user)}api/contents/deepvre-examples/biology", timeout=30,
                          headers={"Authorization": f"token {hub.user_token}"}).json()
    assert "biology.ipynb" in {c["name"] for c in listed["content"]}
    run_code(hub.server_url(hub.user), hub.user_token, (
        "import os\n"
        "open(os.path.expanduser('~/deepvre-examples/biology/biology.ipynb'), 'w').write('my edit')\n"
        "os.remove(os.path.expanduser('~/deepvre-examples/security/security.ipynb'))\n"))
    hub.stop_server(hub.user_token, hub.user)
    r = hub.spawn(hub.user_token, hub.user, profile="cpu")
    assert r.status_code in (201, 202), r.text
    assert open(os.path.join(folder, "biology/biology.ipynb")).read() == "my edit"
    assert not os.path.exists(os.path.join(folder, "security/security.ipynb"))


def test_inside_the_server_the_cli_finds_the_seeded_base_model_in_the_hubs_marketplace(hub):
    out = run_code(hub.server_url(hub.user), hub.user_token, "import os; print(os.environ['DEEPVRE_MARKET_URL'])")
    market_url = out.strip()
    headers = {"Authorization": f"token {hub.user_token}"}
    seeded = wait_for(lambda: (s := requests.get(f"{hub.url}/services/marketplace/api/status", headers=headers,
                                                 timeout=30).json()["seed"])["state"] in ("done", "failed") and s,
                      400, "the marketplace's seed")
    assert seeded["state"] == "done", f"{seeded}\n{hub.log_text()[-3000:]}"
    assert "[marketplace seed] published mobilenet-v2-imagenet 1.0.0" in hub.log_text()
    out = run_code(hub.server_url(hub.user), hub.user_token, (
        "import os, subprocess\n"
        "done = subprocess.run(['deepvre', 'weights', 'convert', '--publish'], capture_output=True, text=True)\n"
        "print(done.returncode, done.stdout, done.stderr[-800:])\n"
        "print('private', os.path.exists(os.path.expanduser('~/.local/share/deepvre/market')))\n"), timeout=600)
    assert out.startswith("0 ") and f"mobilenet-v2-imagenet 1.0.0 (owner deepvre) is in {market_url}" in out, out
    assert "private False" in out
