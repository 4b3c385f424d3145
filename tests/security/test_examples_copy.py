"""Issue 17: the use-case notebooks copied into a home at the first spawn (``deepvre_hub.examples``).

A copy made by the root hub into a home the user controls is a classic hole: a symlink planted
where the copy writes sends root's writes into another account's files or the system's. The copy
runs as the user (uid and gids dropped before it starts), opens every folder with ``O_NOFOLLOW``
and creates files with ``O_EXCL``.

The attacks, on a real local hub as root: a second user removes the marker and plants symlinks to
a root-owned folder (as root, the copy would write there) and to an ordinary file of the user's
own; an anonymous local process tries to plant one into the user's home.
"""

import os
import pwd
import subprocess
import sys

import pytest

from tests.hub.hubprocess import HubProcess, cpu_only, hub_folder, run_code
from tests.prereqs import require_proxy, require_root
from tests.security.conftest import PASSWORD, new_name

pytestmark = [pytest.mark.root, pytest.mark.hub]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    hub = HubProcess(cpu_only(), tmp_path_factory.mktemp("sec-examples") / "state")
    with hub.running():
        yield hub


def user_with_server(hub, role):
    """A new approved user whose server runs: ``(name, token, home)``."""
    admin = hub.login(hub.admin, hub.admin_password)
    name = new_name(role)
    _, token = hub.approved_user(admin, name, PASSWORD)
    assert hub.spawn(token, name, profile="cpu").status_code in (201, 202)
    return name, token, pwd.getpwnam(name).pw_dir


def test_a_planted_symlink_does_not_send_the_copy_outside_the_home(hub):
    name, token, home = user_with_server(hub, "plant")
    assert os.path.isfile(os.path.join(home, "deepvre-examples", "biology", "biology.ipynb"))
    with hub_folder("victim-") as folder:
        victim = str(folder)
        os.chmod(victim, 0o755)  # root's, readable by all: a copy as root through the link would land here
        run_code(hub.server_url(name), token, (
            "import os, shutil\n"
            "home = os.path.expanduser('~')\n"
            "os.remove(os.path.join(home, '.local/share/deepvre/examples-copied'))\n"
            "shutil.rmtree(os.path.join(home, 'deepvre-examples'))\n"
            f"os.symlink({victim!r}, os.path.join(home, 'deepvre-examples'))\n"))
        hub.stop_server(token, name)
        assert hub.spawn(token, name, profile="cpu").status_code in (201, 202)  # the spawn still works
        assert os.listdir(victim) == []
        assert os.path.islink(os.path.join(home, "deepvre-examples"))  # the user's link, left alone
        # a link to a file where a notebook goes: not written through
        run_code(hub.server_url(name), token, (
            "import os\n"
            "home = os.path.expanduser('~')\n"
            "os.remove(os.path.join(home, 'deepvre-examples'))\n"
            "os.remove(os.path.join(home, '.local/share/deepvre/examples-copied'))\n"
            "os.makedirs(os.path.join(home, 'deepvre-examples/biology'))\n"
            f"os.symlink({os.path.join(victim, 'owned')!r}, os.path.join(home, 'deepvre-examples/index.ipynb'))\n"))
        hub.stop_server(token, name)
        assert hub.spawn(token, name, profile="cpu").status_code in (201, 202)
        assert os.listdir(victim) == []
        copied = os.path.join(home, "deepvre-examples", "biology", "biology.ipynb")
        assert os.path.isfile(copied) and os.stat(copied).st_uid == pwd.getpwnam(name).pw_uid
    hub.stop_server(token, name)


def test_an_anonymous_local_process_cannot_plant_into_a_home(hub):
    name, token, home = user_with_server(hub, "home")
    nobody = pwd.getpwnam("nobody")
    probe = subprocess.run(
        [sys.executable, "-c", f"import os; os.symlink('/etc', {os.path.join(home, 'planted')!r})"],
        user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], capture_output=True, text=True, cwd="/")
    assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
    assert not os.path.lexists(os.path.join(home, "planted"))
    hub.stop_server(token, name)
