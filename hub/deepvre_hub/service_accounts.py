"""The hub-managed services run under their own system accounts, not as the hub's root.

As root (local and Slurm modes) the hub runs the marketplace, which parses untrusted uploads,
and the idle culler, whose token stops servers. Each runs under its own system account
(``hub.service_accounts``, default ``deepvre-market`` and ``deepvre-culler``), made at hub start
if missing: no home, no login shell, not in the users' marker group. JupyterHub's service
``user`` key does the setuid. Two accounts, not one: a marketplace taken over by an upload must
not read the culler's token from its process environment.

The state folder is then 0711 (others may pass, not list) and everything in it is the hub's
alone (0600 files, 0700 folders) but ``marketplace/``, owned by the marketplace's account
(0700), and the culler's config (root's, readable). A catalog folder a root-run marketplace made
is handed over at the next start, without following links.
"""

import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from deepvre.site import environment

from . import accounts, culler

MARKET_FOLDER = "marketplace"  # under the state folder ($DEEPVRE_MARKET_DIR of the service)
MLFLOW_FOLDER = "mlflow"  # the MLflow service's (deepvre_hub.mlflow_service.FOLDER)
HUB_DATABASE = "jupyterhub.sqlite"
NO_LOGIN = ("nologin", "false")
# what a service's process and the access probe get of the hub's environment (never its secrets)
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "TZ")


class ServiceAccountError(RuntimeError):
    """A service account that cannot be made or used; the message says what to change."""


def chosen(settings):
    """``{service name: account}`` (validated ``settings``, ``hub.service_accounts``) for the
    services that run under their own account here: only when the hub runs as root outside
    Kubernetes; ``""`` keeps a service under the hub's own account."""
    if not accounts.hub_is_root() or settings.get("mode") == "kubernetes":
        return {}
    return {service: name for service, name in settings["hub"]["service_accounts"].items() if name}


def ensure(name, group=accounts.MARKER_GROUP):
    """The pwd entry of the system account ``name``, made with ``useradd --system`` if missing.

    An existing account must be a system account (uid below ``UID_MIN``, not root) outside the
    users' marker ``group``: a service never runs as a person's account, nor as one a hub user
    could hold.
    """
    accounts.check_account_name(name)
    entry = _made(name)
    if entry.pw_uid == 0 or entry.pw_uid >= accounts.uid_min() or accounts.in_group(entry, group):
        raise ServiceAccountError(
            f"the account {name!r} (uid {entry.pw_uid}) is root, a person's account or one of the hub's "
            f"user accounts: a service must not run as it. Name another in hub.service_accounts "
            "(it is made as a system account if missing)."
        )
    extra = set(os.getgrouplist(name, entry.pw_gid)) - {entry.pw_gid}
    if entry.pw_gid == 0 or extra or os.path.basename(entry.pw_shell) not in NO_LOGIN:
        raise ServiceAccountError(
            f"the account {name!r} has more than a service needs (primary group {entry.pw_gid}, other groups "
            f"{sorted(extra)}, shell {entry.pw_shell!r}): a service account has its own group only and no "
            "login shell. Name another in hub.service_accounts (it is made so if missing)."
        )
    return entry


def _made(name, tries=5):
    """The pwd entry of ``name``, made as a system account if missing (another hub starting at
    the same moment may make it first, or hold the lock on /etc/passwd: tried again)."""
    for attempt in range(tries):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        result = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True, check=False,
        )
        if result.returncode == 0:
            return pwd.getpwnam(name)
        time.sleep(0.2 * (attempt + 1))
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServiceAccountError(f"could not create the service account {name!r}: {result.stderr.strip()}") from None


def hand_over(folder, entry):
    """Make ``folder`` the account's own (0700), creating it if missing. A folder the hub's
    account owns (a catalog of a root-run marketplace) is handed over with everything in it,
    changing the owner of links themselves, never of what they point to; a folder some other
    account owns is refused."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise ServiceAccountError(f"{folder} is not a folder")
    if info.st_uid not in (entry.pw_uid, os.geteuid()):
        raise ServiceAccountError(f"{folder} belongs to uid {info.st_uid}, neither the hub nor {entry.pw_name}: not handed over")
    if info.st_uid != entry.pw_uid:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        os.chown(folder, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    folder.chmod(0o700)


def tighten_state(state_dir, shared=()):
    """The state folder 0711, and every entry in it but ``shared`` (names) the hub's alone.

    Others may then pass through to the services' folders, and read nothing else even when they
    guess a name. The hub's SQLite database is made empty and 0600 when missing, so JupyterHub
    does not create it readable (SQLite gives its journals the database's mode).
    """
    state_dir = Path(state_dir)
    state_dir.chmod(0o711)
    database = state_dir / HUB_DATABASE
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for entry in state_dir.iterdir():
        if entry.name in shared:
            continue
        info = entry.lstat()
        if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
            continue
        entry.chmod(stat.S_IMODE(info.st_mode) & 0o700)


# Run as the service account: can it start Python, and use each folder (r: read, w: write)?
_PROBE = """
import os, sys
for spec in sys.argv[1:]:
    kind, path = spec.split(":", 1)
    mode = os.R_OK | (os.W_OK | os.X_OK if kind == "w" else 0)
    if not os.access(path, mode):
        try:
            os.stat(path)
            problem = "no " + ("write" if kind == "w" else "read") + " access"
        except OSError as err:
            problem = err.strerror
        sys.exit(f"{path}: {problem}")
"""


def service_environment(entry):
    """The environment a process run as a service account starts with: none of the hub's secrets."""
    kept = {key: os.environ[key] for key in KEPT_ENV if key in os.environ}
    return {**kept, "HOME": entry.pw_dir, "USER": entry.pw_name, "PYTHONSAFEPATH": "1"}


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _under_a_running_hub(pid, uid):
    """Whether the account's process ``pid`` descends, through the account's own processes, from a
    root process other than init (a running hub)."""
    for _ in range(64):
        ppid = _parent(pid)
        if ppid <= 1:
            return False
        owner = os.stat(f"/proc/{ppid}").st_uid
        if owner != uid:
            return owner == 0
        pid = ppid
    return False


def end_processes(entry):
    """Kill the account's leftover processes: a taken-over service may have left one running to
    wait for the next start (JupyterHub stops only the service's own process). A service a
    running hub started (its parent a root process other than init) is left alone, with the
    processes it started (the MLflow service's server): another hub on this machine may use the
    same account. Returns the pids killed."""
    killed = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != entry.pw_uid or _under_a_running_hub(pid, entry.pw_uid):
                continue
            os.kill(int(pid), signal.SIGKILL)
            killed.append(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    return killed


def check_access(entry, service, paths):
    """Raise :class:`ServiceAccountError` unless the account can run this Python and reach
    ``paths`` (``{path: "r" or "w"}``), tried as the account itself."""
    specs = [f"{kind}:{path}" for path, kind in paths.items()]
    try:
        result = subprocess.run(
            [sys.executable, "-P", "-c", _PROBE, *specs], user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
            capture_output=True, text=True, timeout=60, cwd="/", check=False, env=service_environment(entry),
        )
    except (OSError, subprocess.SubprocessError) as err:
        problem = str(err)
    else:
        if result.returncode == 0:
            return
        problem = (result.stderr.strip().splitlines() or ["no output"])[-1]
    raise ServiceAccountError(
        f"the {service} service runs as {entry.pw_name!r} (hub.service_accounts), which cannot use what it "
        f"needs: {problem}. The folders above it must let others pass (chmod o+x) and the Python "
        f"environment ({sys.executable}) must be readable; or set hub.service_accounts.{service} to \"\" "
        "to run it as the hub's own account."
    )


def market_paths(settings, market):
    """What the marketplace writes: its folder, a local store and a SQLite database's folder."""
    section = settings.get("marketplace") or {}
    paths = [Path(market)]
    store, database = section.get("store_url") or "", section.get("database_url") or ""
    if store and "://" not in store:
        paths.append(Path(store))
    if database.startswith("sqlite:///"):
        paths.append(Path(database[len("sqlite:///"):]).parent)
    return {str(p): "w" for p in paths}


def apply(services, settings, state_dir, group=accounts.MARKER_GROUP):
    """Put the chosen services (hub service dicts, changed in place) under their accounts and
    prepare the state folder for them; returns ``{service: account}``."""
    wanted = {s["name"]: chosen(settings)[s["name"]] for s in services if s["name"] in chosen(settings)}
    if not wanted:
        return {}
    if len(set(wanted.values())) < len(wanted):
        raise ServiceAccountError(
            f"hub.service_accounts names one account for several services ({wanted}): each needs its own, "
            "or one could read the other's token from its process"
        )
    state_dir = Path(state_dir)
    tighten_state(state_dir, shared={MARKET_FOLDER, MLFLOW_FOLDER, culler.CONFIG_NAME})
    for service in services:
        name = wanted.get(service["name"])
        if not name:
            continue
        entry = ensure(name, group)
        end_processes(entry)
        if service["name"] == "marketplace":
            market = Path(service["environment"][environment.MARKET_DIR])
            if market.parent == state_dir:
                hand_over(market, entry)
            check_access(entry, service["name"], market_paths(settings, market))
        elif service["name"] == "mlflow":
            hand_over(state_dir / MLFLOW_FOLDER, entry)
            check_access(entry, service["name"], {str(state_dir / MLFLOW_FOLDER): "w"})
        else:
            check_access(entry, service["name"], {str(culler.config_path(state_dir)): "r"})
        # never the folder the account writes: `python -m` would import from it first
        service["cwd"] = "/"
        service.setdefault("environment", {})["PYTHONSAFEPATH"] = "1"
        service["user"] = name
    return wanted
