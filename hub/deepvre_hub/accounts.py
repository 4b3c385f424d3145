"""Per-user OS accounts for local mode when the hub runs as root.

Each hub user's server runs under an OS account of the same name. Missing accounts are
created with a private home (mode 0700) and put in the marker group (``accounts.group``,
default ``deepvre-users``, created if missing). The hub gives a server only an account it made:
an existing account outside that group (a person's own login, a service account) is refused,
unless the site lists it in ``accounts.allow_existing``; otherwise a user who signs up (or whose
identity provider sends the name) ``bob`` would get the existing account ``bob``, its files and
its rights. Names that are not safe account names, and system accounts (uid below ``UID_MIN``,
root), are always refused. The same group is the only one the Slurm sudo rule
(``hub/slurm/sudoers.deepvre``) lets a non-root hub act as.

Personal mode (the hub is not root) runs every server under the hub's own account, next to the
hub's secrets: :func:`personal_refusal` keeps it to the admins and the one person it is for.

Names from an identity provider (e.g. EGI Check-in's ``voperson_id``, ``1a2b...@egi.eu``) are
mapped by :func:`account_name` when they log in, so the hub name is already the account name.
"""

import functools
import grp
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
MARKER_GROUP = "deepvre-users"  # every account the hub makes is in it (settings: accounts.group)


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


def in_group(entry, group):
    """Whether the account ``entry`` (a pwd entry) is in ``group``, as primary or supplementary
    group (the group database through NSS, so LDAP/SSSD groups count); a missing group: no."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return False
    return gid == entry.pw_gid or gid in os.getgrouplist(entry.pw_name, entry.pw_gid)


def ensure_group(group=MARKER_GROUP):
    """Create the marker group (a system group) if it is missing."""
    try:
        grp.getgrnam(group)
        return
    except KeyError:
        pass
    result = subprocess.run(["groupadd", "--force", "--system", group], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AccountError(f"could not create the group {group!r} for the hub's accounts: {result.stderr.strip()}")


def create_account(name, group=MARKER_GROUP):
    """``useradd`` ``name`` with a private home (0700), in the marker ``group``; its pwd entry."""
    ensure_group(group)
    result = subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/bash", "-K", "HOME_MODE=0700", "--groups", group, name],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise AccountError(f"could not create the OS account {name!r}: {result.stderr.strip()}")
    return pwd.getpwnam(name)


def foreign_refusal(name, group=MARKER_GROUP):
    """The sentence shown to a hub user whose name is an existing OS account the hub did not make."""
    return (
        f"The OS account {name!r} already exists on this machine and was not made by this hub "
        f"(it is not in the group {group!r}), so a hub user of that name cannot have it. "
        "Sign up with another name, or ask the administrator (who may list the account in "
        "accounts.allow_existing if it is yours)."
    )


def ensure_account(name, group=MARKER_GROUP, allow_existing=()):
    """Make sure ``name`` is an OS account the hub may give a server; return its pwd entry.

    A missing account is created (private home, in ``group``). An existing one must be in
    ``group`` (made by the hub) or named in ``allow_existing``; either way not a system account
    and with a home. Anything else raises :class:`AccountError` saying why.
    """
    check_account_name(name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = create_account(name, group)
    if entry.pw_uid < uid_min():
        raise AccountError(f"{name!r} is a system account (uid {entry.pw_uid}); it cannot run a user server")
    if not (in_group(entry, group) or name in allow_existing):
        raise AccountError(foreign_refusal(name, group))
    if not os.path.isdir(entry.pw_dir):
        raise AccountError(f"the home {entry.pw_dir} of {name!r} does not exist")
    return entry


def personal_refusal(name, admin, person=None):
    """Personal mode: why the hub user ``name`` may not log in or start a server (a sentence), or
    ``None`` for an admin and for ``person`` (``hub.personal_user``), the one person the hub is for.

    Every server of a personal hub runs under the hub's own account, which can read the hub's
    cookie secret, database and tokens: a server there is as good as being the hub's admin.
    """
    if admin or (person and name == person):
        return None
    return (
        f"This hub runs in personal mode (not as root): every server would run under the hub's own "
        f"account and could take over the hub, so only its administrator{f' and {person!r}' if person else ''} "
        f"may use it, not {name!r}. To share it, run the hub as root (each user gets an own OS account)."
    )
