"""Per-user OS accounts for local mode when the hub runs as root.

Each hub user's server runs under an OS account of the same name. Missing accounts are
created with a private home (mode 0700); names that are not safe account names, and
existing system accounts (uid below ``UID_MIN``), are refused.
"""

import os
import pwd
import re
import subprocess

ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class AccountError(RuntimeError):
    """A hub user that cannot have (or use) an OS account; the message says why."""


def hub_is_root():
    return os.geteuid() == 0


def check_account_name(name):
    """Raise :class:`AccountError` unless ``name`` is a safe Linux account name."""
    if not ACCOUNT_NAME.fullmatch(name or ""):
        raise AccountError(
            f"user name {name!r} cannot be an OS account: use 1-32 lowercase letters, digits, '_' or '-', "
            "starting with a letter or '_'"
        )


def uid_min(login_defs="/etc/login.defs"):
    """The first uid of regular accounts (``UID_MIN`` in login.defs, 1000 if unset)."""
    try:
        with open(login_defs) as f:
            for line in f:
                fields = line.split()
                if len(fields) == 2 and fields[0] == "UID_MIN":
                    return int(fields[1])
    except OSError:
        pass
    return 1000


def ensure_account(name):
    """Make sure the OS account ``name`` exists with a private home; return its pwd entry."""
    check_account_name(name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", "-K", "HOME_MODE=0700", name],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise AccountError(f"could not create the OS account {name!r}: {result.stderr.strip()}") from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid < uid_min():
        raise AccountError(f"{name!r} is a system account (uid {entry.pw_uid}); it cannot run a user server")
    if not os.path.isdir(entry.pw_dir):
        raise AccountError(f"the home {entry.pw_dir} of {name!r} does not exist")
    return entry
