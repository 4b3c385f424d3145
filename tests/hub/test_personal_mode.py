"""Personal mode for real: the hub started under an ordinary OS account (not root).

The log and the spawn page say so, and servers run under that same account.
"""

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.hub.hubprocess import HubProcess, run_code
from tests.prereqs import REPO, require, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]


@pytest.fixture(scope="module")
def personal_hub():
    require_root()  # to make the ordinary account the hub runs under
    require(os.path.exists(os.path.join(REPO, "node_modules/.bin/configurable-http-proxy")),
            "needs node_modules/.bin/configurable-http-proxy (npm install)")
    account = f"hubp{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "-K", "HOME_MODE=0700", account], check=True, capture_output=True)
    folder = Path(tempfile.mkdtemp(prefix="deepvre-hub-personal-"))
    shutil.chown(folder, account, account)
    hub = HubProcess({"profiles": [{"slug": "cpu", "display_name": "CPU", "default": True}],
                      "gpus": {"discovery": "none"}}, folder / "state", run_as=account)
    hub.account = account
    try:
        hub.start()
        yield hub
        hub.teardown()
    finally:
        hub.stop()
        subprocess.run(["userdel", "-r", account], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_personal_mode_says_so_and_runs_servers_under_the_hubs_account(personal_hub):
    hub = personal_hub
    assert "PERSONAL MODE: the hub is not root" in hub.log_text()
    admin = hub.login(hub.admin, hub.admin_password)
    page = admin.get(f"{hub.url}/hub/spawn/{hub.admin}", timeout=30).text
    assert "Personal mode: the hub is not root" in page

    token = hub.token(admin, hub.admin)
    hub.spawn_form(admin, hub.admin, "cpu")
    hub.wait_ready(token, hub.admin)
    out = run_code(hub.server_url(hub.admin), token, "import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name, os.getuid(), os.getcwd())")
    user, uid, cwd = out.split()
    assert user == hub.account and int(uid) != 0
    assert cwd == str(hub.state_dir / "homes" / hub.admin)  # each user's own folder, under the hub's state
