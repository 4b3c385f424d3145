"""``deepvre hub up``: validate the settings, prepare the state folder, then run JupyterHub.

First start: creates the state folder (mode 0700; 0711 when a root hub runs its services under
their own accounts, see service_accounts.py) with the proxy token, and the admin account
with a generated password that is printed once. Later starts resume from the same folder.
"""

import os
import secrets
import shutil
import sys
from pathlib import Path

from deepvre.private_dirs import private_folder
from deepvre.site import environment
from deepvre.site.environment import Environment
from deepvre.site.settings import DEFAULT_SETTINGS_FILE, load_settings, state_dir

from . import auth

# The hub's configuration, installed with this package (hub/jupyterhub_config.py in a checkout loads it)
CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")


def prepare_state(folder):
    """Create the state folder (0700, this account's, in folders no other account controls: it
    holds the secrets and the proxy the hub runs) and its proxy token if missing; return the folder."""
    folder = Path(private_folder(folder))
    token = folder / "proxy_token"
    if not token.exists():
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return folder


def login_message(settings, admin, password):
    """What to print at start: where to go, and the admin password if it was just made."""
    url = f"http://{settings['hub']['ip']}:{settings['hub']['port']}/"
    lines = ["", f"deepvre hub: open {url}"]
    if password:
        lines += [
            f"  First start: admin account '{admin}' created with password: {password}",
            "  This password is shown only once (stored hashed). Keep it safe.",
        ]
    else:
        lines.append(f"  Log in as '{admin}' with the password printed at first start.")
    if settings["auth"]["type"] == "native":
        lines.append(f"  Others sign up at {url}hub/signup; approve them at {url}hub/authorize.")
    lines += ["  Ctrl-C stops the hub, the proxy and the servers.", ""]
    return "\n".join(lines)


def hub_command(config_file=CONFIG_FILE):
    jupyterhub = shutil.which("jupyterhub", path=os.path.dirname(sys.executable)) or "jupyterhub"
    return [jupyterhub, "-f", str(config_file)]


def up(settings_file=None, folder=None, port=None, ip=None):
    """Start the hub in the foreground (replaces this process); settings errors raise SettingsError."""
    settings = load_settings(settings_file)
    if port is not None:
        settings["hub"]["port"] = port
    if ip is not None:
        settings["hub"]["ip"] = ip
    folder = prepare_state(state_dir(settings, folder))
    admin = settings["hub"]["admin"]
    password = None
    if settings["auth"]["type"] == "native":
        password = auth.create_admin(
            f"sqlite:///{folder / 'jupyterhub.sqlite'}", admin, settings["auth"]["minimum_password_length"]
        )
    print(login_message(settings, admin, password), flush=True)
    env = dict(os.environ)
    env[environment.STATE_DIR] = str(folder)
    env[environment.SETTINGS] = (str(Path(settings_file).resolve()) if settings_file
                                 else Environment().settings or str(DEFAULT_SETTINGS_FILE.resolve()))
    if port is not None or ip is not None:
        env[environment.HUB_PORT] = str(settings["hub"]["port"])
        env[environment.HUB_IP] = settings["hub"]["ip"]
    os.chdir(folder)
    os.execve(hub_command()[0], hub_command(), env)
