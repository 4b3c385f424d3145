"""`deepvre hub up` end to end: first start, idle culling of GPU servers, Ctrl-C, resume."""

import os
import secrets
import subprocess

import pytest

from tests.hub.hubprocess import HubProcess, run_code, wait_for
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1},
]
PASSWORD = "battery-staple-" + secrets.token_hex(4)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture()
def hub(tmp_path):
    require_root()
    require_proxy()
    process = HubProcess({
        "profiles": PROFILES,
        "gpus": {"discovery": "list", "devices": [{"index": "0"}]},
        "culling": {"enabled": True, "timeout": 3600, "gpu_timeout": 4, "every": 2},
    }, tmp_path / "state")
    process.accounts = []
    yield process
    process.stop()
    print(process.log_text()[-5000:])
    for name in process.accounts:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


def test_up_culls_gpu_servers_first_then_ctrl_c_and_resume(hub):
    hub.start()
    assert hub.admin_password and len(hub.admin_password) >= 16
    state = hub.state_dir
    # as root: others may pass to the services' folders; the hub's own files are its alone
    assert oct(state.stat().st_mode & 0o777) == "0o711"
    readable = {p.name for p in state.iterdir() if p.stat().st_mode & 0o077}
    assert readable == {"idle_culler_config.py", "jupyterhub.pid", "proxy.pid"}  # pids: written after the check
    assert hub.admin_password not in (state / "jupyterhub.sqlite").read_bytes().decode("latin-1")

    admin = hub.login(hub.admin, hub.admin_password)
    name = f"hubt{secrets.token_hex(3)}u"
    hub.accounts.append(name)
    hub.signup(name, PASSWORD)
    hub.authorize(admin, name)
    token = hub.token(hub.login(name, PASSWORD), name)

    # an idle GPU server is culled after its short timeout; the CPU server stays
    hub.spawn(token, name, profile="cpu")
    hub.spawn(token, name, profile="gpu-1", server="gpu")
    wait_for(lambda: hub.server_model(token, name, "gpu") is None, 120, "the idle GPU server to be culled", 1)
    assert (hub.server_model(token, name) or {}).get("ready"), "the CPU server must not be culled"
    assert "Culling server" in hub.log_text()

    run_code(hub.server_url(name), token, "open('notes.txt', 'w').write('kept')")
    server_pid = int(run_code(hub.server_url(name), token, "import os; print(os.getppid())"))
    proxy_pid = int((state / "proxy.pid").read_text())

    # Ctrl-C stops the hub, the proxy and the servers
    hub.stop()
    assert hub.process.returncode == 0, hub.log_text()[-3000:]
    wait_for(lambda: not alive(server_pid), 30, "the user server to exit")
    wait_for(lambda: not alive(proxy_pid), 30, "the proxy to exit")

    # a second start resumes: no new admin password, users, passwords and files intact
    hub.start()
    assert hub.log_text().count("created with password") == 1
    assert "Log in as 'admin' with the password printed at first start" in hub.log_text()
    hub.login(hub.admin, hub.admin_password)
    token = hub.token(hub.login(name, PASSWORD), name)
    hub.spawn(token, name, profile="cpu")
    assert run_code(hub.server_url(name), token, "print(open('notes.txt').read())").strip() == "kept"
    hub.stop_server(token, name)
