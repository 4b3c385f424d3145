"""Personal mode for real: the hub started under an ordinary OS account (not root).

The log and the spawn page say so, and servers run under that same account. The hub is the
session fixture ``personal_hub`` (tests/conftest.py), shared with tests/security/test_personal_mode.py.
"""

import pytest

from tests.hub.hubprocess import run_code

pytestmark = [pytest.mark.hub, pytest.mark.root]


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
    # the use-case notebooks, copied by the hub's account into that folder (deepvre_hub.examples)
    listed = run_code(hub.server_url(hub.admin), token, "import os; print(*os.listdir('deepvre-examples'))").split()
    assert {"biology", "satellite", "lattice-qcd", "security"} <= set(listed), listed
    hub.stop_server(token, hub.admin)  # the hub is shared with other modules
