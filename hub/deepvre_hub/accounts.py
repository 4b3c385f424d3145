"""Per-user OS accounts for local mode when the hub runs as root.

Each hub user's server runs under an OS account of the same name. Missing accounts are
created with a private home (mode 0700); names that are not safe account names, and
existing system accounts (uid below ``UID_MIN``), are refused.

Names from an identity provider (e.g. EGI Check-in's ``voperson_id``, ``1a2b...@egi.eu``) are
mapped by :func:`account_name` when they log in, so the hub name is already the account name.
"""

import functools
import hashlib
import os
import pwd
import re
import string
import subprocess

ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MAX_LENGTH = 32
HASHED_PREFIX = "_h"  # never produced by escape_name: there a leading '_' is followed by '_' or a hex digit
KEPT_FIRST = frozenset(string.ascii_lowercase)
KEPT = KEPT_FIRST | frozenset(string.digits + "-")


def escape_name(name):
    """An injective escaping of any text into the account-name alphabet ``[a-z0-9_-]``.

    Lowercase letters stay, and digits and ``-`` except in first place; ``_`` becomes ``__``;
    every other UTF-8 byte becomes ``_`` plus two hex digits. ``alice@egi.eu`` -> ``alice_40egi_2eeu``,
    ``Bob`` -> ``_42ob``, ``7of9`` -> ``_37of9``. Case is kept apart: two names differing only in
    case are two people, so they get two accounts.
    """
    out = []
    for i, byte in enumerate(name.encode()):
        char = chr(byte)
        if char == "_":
            out.append("__")
        elif char in (KEPT if i else KEPT_FIRST):
            out.append(char)
        else:
            out.append(f"_{byte:02x}")
    return "".join(out)


def account_name(name, suffix=None):
    """The OS account name for a user name from an identity provider; raises :class:`AccountError`.

    ``suffix`` (e.g. ``"@egi.eu"``): every name must end with it, and it is removed first (names
    without it are refused, so that ``alice@egi.eu`` and ``alice`` never share an account).
    The rest is escaped by :func:`escape_name`; when that is longer than 32 characters, the
    account is ``_h`` plus the first 30 hex digits (120 bits) of the name's SHA-256.
    """
    if not isinstance(name, str) or not name:
        raise AccountError(f"user name {name!r} cannot be an OS account: it is empty")
    if suffix:
        if not name.endswith(suffix) or name == suffix:
            raise AccountError(
                f"user name {name!r} cannot be an OS account: it does not end with {suffix!r} "
                "(oidc.username_suffix), so it does not come from the expected identity provider"
            )
        name = name[: -len(suffix)]
    escaped = escape_name(name)
    if len(escaped) <= MAX_LENGTH:
        return escaped
    return HASHED_PREFIX + hashlib.sha256(name.encode()).hexdigest()[: MAX_LENGTH - len(HASHED_PREFIX)]


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


@functools.lru_cache(maxsize=8)
def uid_min(login_defs="/etc/login.defs"):
    """The first uid of regular accounts (``UID_MIN`` in login.defs, 1000 if unset); read once per file."""
    try:
        with open(login_defs) as f:
            for line in f:
                fields = line.split()
                if len(fields) == 2 and fields[0] == "UID_MIN":
                    return int(fields[1])
    except OSError:
        pass
    return 1000


def exists(name):
    """Whether the OS account ``name`` exists (a ``getpwnam``)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


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
