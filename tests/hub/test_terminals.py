"""``deepvre`` on PATH in JupyterLab terminals (issue 17): a terminal is a login shell, and the
system's ``/etc/profile`` sets PATH anew (this machine's Debian does, as do the images' Debian
bases). Each spawner passes ``deepvre_hub.terminals.server_args``: the local spawner the venv's
``bin/`` (end to end in tests/hub/test_first_run.py), containers and Kubernetes ``/opt/deepvre/bin``.
"""

import os
import subprocess
import sys
from pathlib import Path

from deepvre_hub import terminals

BIN = str(Path(sys.executable).parent)


def interactive(command, stdin, environ):
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, env=environ).stdout


def test_a_login_shell_that_resets_path_keeps_the_environments_commands():
    environ = {"PATH": f"{BIN}:{os.defpath}", "SHELL": "/bin/sh", "HOME": os.environ.get("HOME", "/root")}
    assert "PATH=" in Path("/etc/profile").read_text()  # this machine's profile sets PATH
    lost = interactive(["/bin/sh", "-l"], "command -v deepvre || echo missing\n", environ)
    assert "missing" in lost  # JupyterLab's default login shell: the venv is gone
    kept = interactive(terminals.terminal_shell(BIN), "command -v deepvre; echo $PATH\n", environ)
    assert kept.splitlines()[0] == os.path.join(BIN, "deepvre"), kept
    assert "/usr/bin" in kept  # the profile's PATH follows


def test_kubernetes_servers_get_the_terminal_shell_and_the_system_account_is_blocked():
    from deepvre_hub.kubernetes import z2jh_values
    from tests.kubernetes.conftest import site_settings

    config = z2jh_values(site_settings())["hub"]["config"]
    assert config["KubeSpawner"]["args"] == terminals.server_args(terminals.IMAGE_BIN)
    assert "/opt/deepvre/bin" in config["KubeSpawner"]["args"][0]
    assert "deepvre" in config["Authenticator"]["blocked_users"]
