"""Local mode with containers (``local.spawner: container``): each server in the single-user image,
through podman's Docker-compatible API socket and dockerspawner.

Who does what:

- the hub starts ``podman system service`` on ``<state_dir>/podman/podman.sock`` when nothing
  answers there (:func:`start_api_service`, from :func:`configure`, i.e. in the hub process that
  ``deepvre hub up`` runs), in a folder only the hub's account may enter, and stops it with the hub.
  The socket is root-equivalent for a root hub: :func:`socket_refusal` refuses one that another
  account could connect to, or swap. A root hub runs rootful podman; a hub under an ordinary account
  runs rootless podman (where the machine has subordinate ids for it).
- :class:`ContainerSpawner` is thin glue: the profile form and choice (``ProfileSpawnerMixin``), the
  GPUs held as the local spawner holds them (``LocalGpusMixin``), and dockerspawner for the container.
- the pure builders say what a profile becomes: :func:`container_limits` (cores and bytes),
  :func:`gpu_devices` (CDI names or device nodes), :func:`host_config` (limits, devices, no
  capabilities, no privilege gain), :func:`container_environment`, :func:`image_environment` (the
  image's reference and podman's image ID, which every run's environment record keeps).

Users: with ``local.container.user_namespace: auto`` (the default) every container gets a user
namespace of its own (podman's ``userns=auto``): the image's uid 1000 is a different, otherwise unused
host uid in each container, taken from the ``containers`` ranges of /etc/subuid and /etc/subgid
(:func:`subid_refusal`), so no host account and no other user's container shares it. The home volume
is handed to the container's uid before each start by the hub (:func:`hand_over`), which walks it by
directory descriptors and never through a symlink: podman's own ``U`` option walked it by path, so a
user's other server swapping a directory for a symlink made a root chown of host files.

Networking: every user gets a podman bridge network of their own, ``deepvre-NAME``, created with
podman's ``isolate`` option: containers of two isolated networks cannot reach each other (nor
could a container on podman's default network be reached from them). The proxy reaches a server at
its container's address on that network (``use_internal_ip``); the server calls the hub API and the
marketplace at ``hub.hub_connect_ip`` / ``hub.hub_ip`` (``deepvre.site.addresses``), which must be
an address of this machine other than loopback (:func:`address_refusal`): loopback inside a
container is the container itself.
"""

import asyncio
import atexit
import ctypes
import errno
import grp
import os
import pwd
import resource
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from docker.errors import NotFound
from dockerspawner import DockerSpawner
from traitlets import Bool, Enum, Int, default

import deepvre
from deepvre.private_dirs import private_folder, untrusted_parent
from deepvre.site import addresses, environment, profiles
from deepvre.site.settings import REPO_ROOT

from . import examples, gpus, terminals, usage
from .accounting import AccountingMixin
from .spawn_form import LocalGpusMixin, ProfileSpawnerMixin, refusal

IMAGE_REPOSITORY = "localhost/deepvre/singleuser-cpu"
NETWORK_PREFIX = "deepvre-"
HOME_IN_IMAGE = "/home/jovyan"
# the driver's device nodes every GPU container needs besides its own /dev/nvidiaN
NVIDIA_SHARED_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the final NUL
LIBPOD = "/v4.0.0/libpod"
USERNS_SIZE = 65536  # uids (and gids) of one container's user namespace
SUBID_FILES = ("/etc/subuid", "/etc/subgid")
SUBID_OWNER = "containers"  # whose subordinate ids rootful podman's userns=auto draws from
IMAGE_UID = 1000  # the single-user image's user (jovyan)
IMAGE_GID = 100  # the home's group when the image's user names no group (docker-stacks' users)


# --- pure builders -------------------------------------------------------------------------------


def default_image(version=None):
    """The single-user image of this deepvre: ``localhost/deepvre/singleuser-cpu:VERSION``."""
    return f"{IMAGE_REPOSITORY}:{version or deepvre.__version__}"


def image(section):
    """``local.container.image``, else :func:`default_image`."""
    return (section or {}).get("image") or default_image()


def api_socket(section, state_dir):
    """``local.container.socket``, else ``<state_dir>/podman/podman.sock``."""
    return Path((section or {}).get("socket") or Path(state_dir) / "podman" / "podman.sock")


def service_command(socket_path):
    """podman's Docker-compatible API on ``socket_path``, with no idle timeout (the hub stops it)."""
    return ["podman", "system", "service", "--time=0", f"unix://{socket_path}"]


def network_name(username):
    """The user's own network: ``deepvre-`` and the name, with anything outside ``[a-z0-9-]`` as
    ``_XX`` (hex; ``_`` itself is ``_5f``), so two user names never share a network."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch == "-") else f"_{ord(ch):02x}"
                   for ch in username.lower())
    return NETWORK_PREFIX + safe


def network_spec(username):
    """The body of podman's network create (libpod API) for ``username``: an isolated bridge."""
    return {"name": network_name(username), "driver": "bridge", "options": {"isolate": "true"},
            "labels": {"deepvre.user": username}}


def container_limits(profile):
    """``(cpu_limit, mem_limit)`` of a profile: cores as a float and bytes, ``None`` where unset
    (dockerspawner turns them into the CFS quota and the memory limit)."""
    cpu = float(profile["cpu"]) if profile.get("cpu") else None
    memory = profiles.parse_memory(profile["memory"]) if profile.get("memory") else None
    return cpu, memory


def gpu_devices(gpu_ids, style="cdi"):
    """The ``--device`` options for the GPUs ``gpu_ids`` (indices as strings).

    ``cdi``: CDI names (``nvidia.com/gpu=0``; the CDI spec also mounts the driver's libraries);
    ``nodes``: ``HOST:CONTAINER:PERMISSIONS`` device nodes, the GPUs' own and the driver's shared ones.
    """
    if not gpu_ids:
        return []
    if style == "cdi":
        return [f"nvidia.com/gpu={i}" for i in gpu_ids]
    if style != "nodes":
        raise ValueError(f"unknown GPU device style {style!r} (cdi or nodes)")
    nodes = [gpus.device_node(i) for i in gpu_ids] + list(NVIDIA_SHARED_NODES)
    return [f"{n}:{n}:rwm" for n in nodes]


def container_environment(profile, gpu_ids, style="cdi"):
    """The profile's environment inside the container (``profiles.local_environment``). The
    container sees only its own GPUs: with CDI they are numbered from 0 there."""
    env = profiles.local_environment(profile, gpu_ids)
    if style == "cdi":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(n) for n in range(len(gpu_ids)))
    return env


def image_environment(reference, image_id=None):
    """``$DEEPVRE_IMAGE`` (the image as configured) and ``$DEEPVRE_IMAGE_ID`` (podman's ID of it, what
    ``podman image inspect --format {{.Id}}`` prints, as ``sha256:HEX``) for the server: the
    environment record of its runs names the exact image (``deepvre.runs.platform``)."""
    env = {environment.IMAGE: reference}
    if image_id:
        env[environment.IMAGE_ID] = image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"
    return env


def process_ulimits(pid_max, nproc_hard, nofile):
    """The containers' ``nproc`` and ``nofile`` limits (docker-py's ``ulimits``).

    ``RLIMIT_NPROC`` counts every process of a uid on the whole machine, and (rootful podman, no user
    namespace) every user's server runs as the image's uid 1000 there: a low nproc (images/containers.conf
    says 1024) is one budget all users share, so bob's container could use it up and nothing could
    start in alice's (EAGAIN). So nproc is as high as the machine has pids (``pid_max``), no higher
    than the hub's own hard limit ``nproc_hard`` (``-1``: none): what limits a container is its cgroup's
    ``pids_limit``. ``nofile`` is the hub's own ``(soft, hard)``: ulimits replace podman's defaults as a whole."""
    nproc = pid_max if nproc_hard < 0 else min(pid_max, nproc_hard)
    return [{"Name": "nproc", "Soft": nproc, "Hard": nproc},
            {"Name": "nofile", "Soft": nofile[0], "Hard": nofile[1]}]


def machine_ulimits():
    """:func:`process_ulimits` of this machine and the hub process."""
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 32768
    return process_ulimits(pid_max, resource.getrlimit(resource.RLIMIT_NPROC)[1],
                           resource.getrlimit(resource.RLIMIT_NOFILE))


def host_config(profile, gpu_ids, style="cdi", pids_limit=4096, ulimits=None):
    """dockerspawner's ``extra_host_config`` for a server: the GPUs' devices, no capabilities, no
    privilege gain (setuid programs), a process limit, ``ulimits`` (:func:`process_ulimits`) if
    given. Cores and memory go through :func:`container_limits` (dockerspawner's ``cpu_limit`` /
    ``mem_limit``)."""
    config = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "devices": gpu_devices(gpu_ids, style)}
    if pids_limit:
        config["pids_limit"] = pids_limit
    if ulimits:
        config["ulimits"] = ulimits
    return config


def create_kwargs(user_namespace):
    """dockerspawner's ``extra_create_kwargs``: the container's user namespace (``auto``: one of its
    own, :data:`USERNS_SIZE` ids; ``host``: none). docker-py knows only ``host``, so the mode goes
    straight into the create request's HostConfig, which podman reads."""
    if user_namespace == "auto":
        return {"host_config": {"UsernsMode": f"auto:size={USERNS_SIZE}"}}
    return {}


def home_volume(user_namespace):
    """dockerspawner's ``volumes`` for the home. Never podman's ``U`` option (a chown by path that a
    symlink swapped in redirects): with a user namespace of its own per start the hub hands the
    volume over itself (:func:`hand_over`)."""
    return {"deepvre-home-{username}": {"bind": HOME_IN_IMAGE, "mode": "rw"}}


def host_id(mappings, inner):
    """The host id of the container's id ``inner`` under podman's ``["INNER:HOST:SIZE", ...]``."""
    for mapping in mappings or []:
        start, host, size = (int(part) for part in mapping.split(":"))
        if start <= inner < start + size:
            return host + inner - start
    raise ValueError(f"the id {inner} is not mapped in {mappings}")


def image_user(user):
    """``(uid, gid)`` inside the container of its ``Config.User`` (``UID`` or ``UID:GID``, numbers;
    none: root)."""
    if not user:
        return 0, 0
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise ValueError(f"the image's user {user!r} is not UID or UID:GID in numbers; the home cannot be "
                         "handed to it (set USER 1000:100 in the image)")
    return int(uid), int(gid) if gid else IMAGE_GID


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _listing(fd):
    with os.scandir(fd) as entries:  # of a duplicate of fd
        return [entry.name for entry in entries]


def hand_over(path, uid, gid):
    """chown the folder ``path`` and everything in it to ``uid``/``gid``, as root, without ever following
    a symlink or opening anything but a directory: each directory is opened relative to its parent's
    descriptor with ``O_NOFOLLOW | O_DIRECTORY`` (a symlink swapped in fails to open and is skipped),
    each entry is chowned by name in its directory's descriptor (``fchownat``, ``AT_SYMLINK_NOFOLLOW``).
    So a running container that swaps directories of the volume for symlinks while this walks gets
    nothing outside the volume chowned, nor any device opened. One descriptor per level of depth."""
    top = os.open(path, DIR_FLAGS)
    todo = [(top, _listing(top))]
    try:
        os.fchown(top, uid, gid)
        while todo:
            fd, names = todo[-1]
            if not names:
                os.close(todo.pop()[0])
                continue
            name = names.pop()
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if (st.st_uid, st.st_gid) != (uid, gid):
                    os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    sub = os.open(name, DIR_FLAGS, dir_fd=fd)
                    todo.append((sub, []))  # in todo before its listing, so an error still closes it
                    todo[-1] = (sub, _listing(sub))
            except (FileNotFoundError, NotADirectoryError):  # removed or replaced meanwhile
                pass
            except OSError as err:
                if err.errno != errno.ELOOP:  # ELOOP: a symlink swapped in for the directory
                    raise
    finally:
        for fd, _names in todo:
            os.close(fd)


def subid_ranges(text):
    """``[(owner, start, count), ...]`` of a /etc/subuid or /etc/subgid text (malformed lines skipped)."""
    ranges = []
    for line in (text or "").splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            ranges.append((parts[0], int(parts[1]), int(parts[2])))
    return ranges


def subid_refusal(texts, size=USERNS_SIZE, owner=SUBID_OWNER, accounts=None):
    """Why podman's ``userns=auto`` would fail or be unsafe, or ``None``: ``texts`` are /etc/subuid and
    /etc/subgid (``{path: text or None}``); each needs lines ``containers:START:COUNT`` with COUNTs
    summing to at least ``size``, none of whose ids is an account's (``accounts``: ``{path: ids}``, the
    passwd uids and group gids), another owner's subordinate id or past 4294967294 (a container's uid
    that is an account's or another user's rootless container's would be theirs)."""
    for path, text in texts.items():
        ranges = subid_ranges(text)
        mine = [(start, count) for who, start, count in ranges if who == owner]
        for start, count in mine:
            end = start + count  # exclusive
            clash = sorted(i for i in (accounts or {}).get(path, ()) if start <= i < end)
            other = next(((who, s, c) for who, s, c in ranges if who != owner and s < end and start < s + c), None)
            why = (f"it holds the id {clash[0]} of an account" if clash else
                   f"it overlaps {other[0]}'s subordinate ids {other[1]}:{other[2]}" if other else
                   "it goes past 4294967294 (4294967295 is no id)" if end > 2**32 - 1 else None)
            if why:
                return (f"{path}: the range {owner}:{start}:{count} is unsafe for the containers' user namespaces: "
                        f"{why}, so a container's uid would be theirs. Use ids no account or other range has, "
                        f"e.g. the line '{owner}:2147483647:2147483648'.")
        if sum(count for _start, count in mine) < size:
            return (f"{path}: local.container.user_namespace is auto, which needs subordinate ids for "
                    f"'{owner}' (at least {size}, one container's worth; many containers need many times "
                    f"that), e.g. the line '{owner}:2147483647:2147483648' in {path}. Or set "
                    "local.container.user_namespace: host (every server then runs as the image's uid 1000, "
                    "which a host account with that uid could signal: refused where one exists).")
    return None


def machine_accounts():
    """``{"/etc/subuid": uids, "/etc/subgid": gids}`` of this machine's accounts and groups."""
    return {SUBID_FILES[0]: {entry.pw_uid for entry in pwd.getpwall()},
            SUBID_FILES[1]: {entry.gr_gid for entry in grp.getgrall()}}


def machine_subid_refusal():
    """:func:`subid_refusal` of this machine's files and accounts."""
    texts = {}
    for path in SUBID_FILES:
        try:
            texts[path] = Path(path).read_text()
        except OSError:
            texts[path] = None
    return subid_refusal(texts, accounts=machine_accounts())


def host_namespace_refusal(account_uids, image_uid=IMAGE_UID):
    """Why ``local.container.user_namespace: host`` is unsafe here, or ``None``: every server would run
    as the host's uid ``image_uid``, and an account with that uid could signal them and read their
    environments (the tokens) through /proc."""
    if image_uid in account_uids:
        return (f"local.container.user_namespace is host, so every user's server would run as the host's uid "
                f"{image_uid}, and this machine has an account with that uid: it could signal every server and "
                "read their tokens. Use user_namespace: auto (the default; needs subordinate ids for 'containers').")
    return None


def address_refusal(settings):
    """Why the containers could not call the hub API and the marketplace, or ``None``: the address
    they are given must be one of this machine's, and not loopback (inside a container that is the
    container itself)."""
    mismatch = addresses.listen_refusal(settings)
    if mismatch:
        return mismatch
    address = addresses.hub_address(settings)
    hub = (settings or {}).get("hub") or {}
    key = "hub.hub_connect_ip" if hub.get("hub_connect_ip") else "hub.hub_ip"
    if addresses.is_every_interface(address):
        return (f"{key}: {address!r} means every interface, which the containers cannot call: set "
                "hub.hub_connect_ip to this machine's address, e.g. 192.0.2.2.")
    if addresses.is_loopback(address, addresses.resolved):
        return (f"{key}: local.spawner is container, but the hub API and the marketplace would listen on "
                f"loopback ({address}), which inside a container is the container itself. Set hub.hub_ip to "
                "an address of this machine, e.g. 192.0.2.2 (the containers reach it through their network's "
                "gateway; keep the hub's API port closed to other machines with a firewall).")
    return None


def socket_refusal(path, uid=None, gid=None):
    """Why the API socket at ``path`` is not safe to use, or ``None``. Whoever may connect to it can
    start a privileged container: only the hub's account (and root) may, and nobody else may swap it."""
    uid = os.geteuid() if uid is None else uid
    gid = os.getegid() if gid is None else gid
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"{path}: no socket there (start podman's API service, or let the hub start it)"
    if not stat.S_ISSOCK(st.st_mode):
        return f"{path}: not a socket"
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in (0, uid):
        return f"{path}: owned by another account (uid {st.st_uid})"
    if mode & stat.S_IWOTH:
        return f"{path}: every account may connect to it (mode {mode:04o}); it must be 0600 or 0660"
    if mode & stat.S_IWGRP and st.st_gid not in (0, gid):
        return f"{path}: the group {st.st_gid} may connect to it (mode {mode:04o}); it must be 0600"
    unsafe = untrusted_parent(path)
    if unsafe:
        return f"{path}: the folder {unsafe} above it is another account's or writable by others"
    return None


# --- the API service -----------------------------------------------------------------------------


def podman_env():
    """The environment of podman: the checkout's images/containers.conf (runc, ulimits that fit)
    when the machine has no containers.conf of its own, as ``make images`` uses."""
    env = dict(os.environ)
    conf = REPO_ROOT / "images" / "containers.conf" if REPO_ROOT else None
    if "CONTAINERS_CONF" not in env and not Path("/etc/containers/containers.conf").exists() and conf and conf.exists():
        env["CONTAINERS_CONF"] = str(conf)
    return env


def answers(path, timeout=2.0):
    """Whether a Docker-compatible API answers ``GET /_ping`` on the socket ``path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            reply = s.recv(4096)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def _die_with_parent():
    """In the child: SIGTERM when the hub dies (PR_SET_PDEATHSIG), so no service outlives a killed hub."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_api_service(path, timeout=30):
    """Start ``podman system service`` on ``path`` unless something answers there already; its
    folder is made private (0700), the socket 0600. Returns the process (``None`` if reused); it is
    stopped when the hub exits."""
    path = Path(path)
    if len(str(path)) > SOCKET_PATH_MAX:
        raise RuntimeError(f"{path}: longer than a socket path may be ({SOCKET_PATH_MAX}); choose a shorter "
                           "hub.state_dir or local.container.socket")
    private_folder(path.parent)
    if answers(path):
        return None
    path.unlink(missing_ok=True)
    log = open(path.parent / "service.log", "ab")  # noqa: SIM115 (the child keeps it)
    process = subprocess.Popen(service_command(path), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               env=podman_env(), preexec_fn=_die_with_parent)
    log.close()
    deadline = time.monotonic() + timeout
    while not answers(path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = (path.parent / "service.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"podman system service did not answer on {path}:\n{tail}")
        time.sleep(0.1)
    os.chmod(path, 0o600)
    atexit.register(stop_api_service, process)
    return process


def stop_api_service(process, timeout=10):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()


# --- the spawner ---------------------------------------------------------------------------------


class ContainerSpawner(AccountingMixin, LocalGpusMixin, ProfileSpawnerMixin, DockerSpawner):
    """Local mode, ``local.spawner: container``: the profile's cores, memory and GPUs become the
    container's limits and devices; each user's containers are on a network of their own; quotas
    and usage accounting as for local processes (``accounting``)."""

    gpu_device_style = Enum(
        ["cdi", "nodes"],
        default_value="cdi",
        config=True,
        help="""How GPUs reach the container (``local.container.gpu_devices``): CDI names or device nodes.

        Example: ``"nodes"``
        """,
    )

    home_volumes = Bool(
        True,
        config=True,
        help="""Keep each user's home in a podman volume ``deepvre-home-NAME`` (``local.container.home_volumes``).

        Example: ``False``
        """,
    )

    user_namespace = Enum(
        ["auto", "host"],
        default_value="auto",
        config=True,
        help="""Each container's user namespace (``local.container.user_namespace``): ``auto``, one of its
        own from the ``containers`` subordinate ids; ``host``, none (the image's uid 1000 is the host's).

        Example: ``"host"``
        """,
    )

    pids_limit = Int(
        4096,
        config=True,
        help="""Most processes and threads per container (``local.container.pids_limit``; 0: podman's default).

        Example: ``1024``
        """,
    )

    @default("pre_spawn_hook")
    def _default_pre_spawn_hook(self):
        return None  # users need no OS account: the server runs as the image's user

    @default("volumes")
    def _default_volumes(self):
        return home_volume(self.user_namespace) if self.home_volumes else {}

    @default("network_name")
    def _default_network_name(self):
        return network_name(self.user.name)

    # --- the container ------------------------------------------------------------------------

    image_id = None  # podman's ID of the image this start uses (pull_image)

    def get_env(self):
        env = super().get_env()
        profile = profiles.find_profile(self.profiles or [profiles.FALLBACK_PROFILE], self.profile_slug)
        if profile is not None:
            env.update(container_environment(profile, self.gpu_ids, self.gpu_device_style))
        env.update(image_environment(self.image, self.image_id))
        return env

    async def pull_image(self, image):
        """Nothing is pulled (no registry): a missing image is the admin's to build. Keeps its ID."""
        try:
            found = await self.docker("inspect_image", image)
            self.image_id = (found or {}).get("Id")
        except NotFound:
            raise refusal(503, f"The single-user image {image} is not on this machine; an administrator "
                               "builds it with `make images`.") from None

    def _libpod_call(self, method, path, **kwargs):
        response = self.client.request(method, self.client.base_url + LIBPOD + path, timeout=60, **kwargs)
        return response.status_code, (response.json() if response.content else None)

    def libpod(self, method, path, **kwargs):
        """podman's own API (``/libpod/...``) on the same socket, in dockerspawner's thread."""
        return asyncio.wrap_future(self.executor.submit(self._libpod_call, method, path, **kwargs))

    async def ensure_network(self):
        """The user's isolated network: created if missing; an existing one without podman's
        ``isolate`` option is refused (another user's container could reach this one)."""
        name = self.network_name
        status, found = await self.libpod("GET", f"/networks/{name}/json")
        if status == 404:
            status, found = await self.libpod("POST", "/networks/create",
                                              json=network_spec(self.user.name))
            if status >= 300:
                raise RuntimeError(f"podman could not create the network {name}: {found}")
            self.log.info("Created the isolated network %s for %s", name, self.user.name)
        if (found.get("options") or {}).get("isolate") != "true":
            raise refusal(503, f"The network {name} exists without podman's isolate option; an administrator "
                               "must remove it (`podman network rm`) before this server starts.")

    async def remove_network(self):
        """Remove the user's network when no container uses it any more (best effort)."""
        try:
            await self.libpod("DELETE", f"/networks/{self.network_name}")
        except Exception as err:  # in use by another of the user's servers, or gone
            self.log.debug("Network %s stays: %s", self.network_name, err)

    async def start_object(self):
        """Hand the home volume to the new container's user (its uid in this start's user namespace),
        then start it."""
        if self.user_namespace == "auto":
            status, found = await self.libpod("GET", f"/containers/{self.container_id}/json")
            if status >= 300:
                raise RuntimeError(f"podman could not inspect the container {self.container_id}: {found}")
            homes = [m["Source"] for m in found.get("Mounts") or []
                     if m.get("Destination") == HOME_IN_IMAGE and m.get("Type") == "volume"]
            if homes:
                uid, gid = image_user((found.get("Config") or {}).get("User"))
                maps = (found.get("HostConfig") or {}).get("IDMappings") or {}
                owner = host_id(maps.get("UidMap"), uid), host_id(maps.get("GidMap"), gid)
                # not in dockerspawner's executor: its one thread makes every user's podman calls
                await asyncio.to_thread(hand_over, homes[0], *owner)
        await super().start_object()

    async def start(self):
        profile = self.reduce_user_options()
        await self.discover_gpus()
        await self.admit_queued(profile)  # quotas, the GPU queue, GPUs and the accounting row
        self.profile_slug = profile["slug"]
        self.cpu_limit, self.mem_limit = container_limits(profile)
        self.extra_host_config = host_config(profile, self.gpu_ids, self.gpu_device_style, self.pids_limit,
                                             machine_ulimits())
        self.extra_create_kwargs = create_kwargs(self.user_namespace)
        self.log.info("Starting %s in a container with profile %s, GPUs [%s]", self.owner, self.profile_slug,
                      ",".join(self.gpu_ids))
        try:
            await self.ensure_network()
            return await self.own_start(super().start())  # within start_timeout after the queue
        except Exception:
            self.close_usage(usage.FAILED)
            self.release_gpus()
            raise

    async def stop(self, now=False):
        self.note_stop()
        await super().stop(now=now)
        if self.remove:
            await self.remove_network()



# --- the hub's configuration ---------------------------------------------------------------------


def configure(c, settings, state_dir):
    """Local mode with ``local.spawner: container``: the API service, then dockerspawner's settings."""
    section = settings["local"]["container"]
    why = address_refusal(settings)
    path = api_socket(section, state_dir)
    try:
        if not why and section["start_service"] and not section.get("socket"):
            start_api_service(path)
    except (OSError, RuntimeError) as err:
        why = str(err)
    why = why or socket_refusal(path)
    if not why and section["user_namespace"] == "auto":
        why = machine_subid_refusal()
    elif not why:
        why = host_namespace_refusal(machine_accounts()[SUBID_FILES[0]])
    if why:
        print(f"deepvre: {why}", file=sys.stderr)
        raise SystemExit(2)
    c.JupyterHub.spawner_class = ContainerSpawner
    c.DockerSpawner.client_kwargs = {"base_url": f"unix://{path}"}
    c.DockerSpawner.image = image(section)
    c.DockerSpawner.prefix = "deepvre"
    c.DockerSpawner.remove = True  # stop removes the container (the home stays in its volume)
    c.DockerSpawner.use_internal_ip = True  # the proxy reaches the container on the user's network
    c.DockerSpawner.args = terminals.server_args(terminals.IMAGE_BIN)  # `deepvre` on PATH in terminals
    c.DockerSpawner.post_start_cmd = shlex.join(examples.image_command())  # the notebooks, at the first start
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 120
    c.ContainerSpawner.profiles = settings.get("profiles") or []
    c.ContainerSpawner.gpu_settings = settings["gpus"]
    c.ContainerSpawner.culling = settings["culling"]  # the GPU queue's estimate
    c.ContainerSpawner.gpu_device_style = section["gpu_devices"]
    c.ContainerSpawner.home_volumes = section["home_volumes"]
    c.ContainerSpawner.pids_limit = section["pids_limit"]
    c.ContainerSpawner.user_namespace = section["user_namespace"]
