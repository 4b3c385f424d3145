"""Local mode: a server's CPU and memory limits, enforced by the kernel (cgroups).

A profile's ``cpu`` and ``memory`` used to reach a local server as environment variables
only. Here each server gets its own cgroup, ``deepvre/<user>--<server>``, under the machine's
memory and cpu controllers: cgroup v2 (``memory.max``, ``memory.swap.max``, ``cpu.max``) or v1
(``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes`` where swap accounting is on,
``cpu.cfs_quota_us``). The spawner's child joins it before it drops to the user's account, so
the server, its kernels and everything they start are inside: past the memory limit the kernel
OOM-kills the biggest of them, and the cores are shared out by the CPU quota.

Needs a writable cgroup tree (a hub running as root, as in local mode). ``hub.enforce_limits``
says what happens without one: ``auto`` starts the server with advisory limits and says so in
the hub's log, ``required`` refuses to start it, ``off`` never tries.
"""

import errno
import hashlib
import os
import re
import time
from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"
GROUP = "deepvre"
FRESH = 120  # seconds: a server cgroup this young may be one another hub's spawn is about to join
CPU_PERIOD = 100_000  # microseconds, the kernel's default CFS period
MAX_PIDS = 4096  # processes and threads per server: a fork bomb stays inside its server


class LimitsUnavailable(RuntimeError):
    """No writable cgroup tree with the memory and cpu controllers."""


@dataclass(frozen=True)
class Hierarchy:
    """Where the controllers are: ``version`` 2 (one folder) or 1 (a folder per controller);
    ``pids`` None where that controller is missing."""

    version: int
    memory: str
    cpu: str
    pids: str = None


def find_hierarchy(root=ROOT):
    """The cgroup tree of this machine with memory and cpu controllers, or None."""
    controllers = os.path.join(root, "cgroup.controllers")
    if os.path.exists(controllers):
        with open(controllers) as f:
            have = f.read().split()
        if not {"memory", "cpu"} <= set(have):
            return None
        return Hierarchy(2, root, root, root if "pids" in have else None)
    memory, cpu, pids = (os.path.join(root, c) for c in ("memory", "cpu", "pids"))
    if os.path.exists(os.path.join(memory, "memory.limit_in_bytes")) and os.path.exists(
            os.path.join(cpu, "cpu.cfs_quota_us")):
        return Hierarchy(1, memory, cpu, pids if os.path.exists(os.path.join(pids, "cgroup.procs")) else None)
    return None


def cgroup_name(owner):
    """``user/server`` as a cgroup folder name: ``user--server`` (odd characters and leading dots
    replaced, for people to read) and a hash of the exact owner, so two owners never share one
    (``alice-/`` and ``alice/``, ``a/b--c`` and ``a--b/c``)."""
    name = owner.replace("/", "--").rstrip("-")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100].lstrip(".") or "_"
    return f"{safe}-{hashlib.sha256(owner.encode()).hexdigest()[:16]}"


def limit_files(version, cpu=None, memory=None, pids=MAX_PIDS):
    """``{(controller, file): value}`` to write for ``cpu`` cores, ``memory`` bytes and ``pids``
    processes (pure). Files of missing optional controllers are skipped by :func:`create`."""
    files = {("pids", "pids.max"): str(pids)} if pids else {}
    if version == 2:
        if memory:
            files[("memory", "memory.max")] = str(int(memory))
            files[("memory", "memory.swap.max")] = "0"
        if cpu:
            files[("cpu", "cpu.max")] = f"{max(1000, int(cpu * CPU_PERIOD))} {CPU_PERIOD}"
        return files
    if memory:
        files[("memory", "memory.limit_in_bytes")] = str(int(memory))
        files[("memory", "memory.memsw.limit_in_bytes")] = str(int(memory))  # no swap past it either
    if cpu:
        files[("cpu", "cpu.cfs_period_us")] = str(CPU_PERIOD)
        files[("cpu", "cpu.cfs_quota_us")] = str(max(1000, int(cpu * CPU_PERIOD)))
    return files


def _enable_v2_controllers(root, pids=True):
    """Let ``root/deepvre``'s children use memory, cpu and pids (cgroup v2 delegates them downward)."""
    group = os.path.join(root, GROUP)
    os.makedirs(group, exist_ok=True)
    for folder in (root, group):
        with open(os.path.join(folder, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +cpu" + (" +pids" if pids else ""))


def create(owner, cpu=None, memory=None, hierarchy=None):
    """Make ``owner``'s cgroup with its limits; returns the ``cgroup.procs`` files the server's
    process must join (:func:`join`). Raises :class:`LimitsUnavailable`."""
    hierarchy = hierarchy or find_hierarchy()
    if hierarchy is None:
        raise LimitsUnavailable("this machine has no cgroup tree with the memory and cpu controllers")
    name = cgroup_name(owner)
    folders = {c: os.path.join(base, GROUP, name) for c, base in _controllers(hierarchy).items()}
    try:
        if hierarchy.version == 2:
            _enable_v2_controllers(hierarchy.memory, pids=hierarchy.pids is not None)
        for folder in set(folders.values()):
            os.makedirs(folder, exist_ok=True)
        files = limit_files(hierarchy.version, cpu, memory)
        for (controller, filename), value in _in_writable_order(files, folders).items():
            if controller not in folders:
                continue  # no pids controller here
            path = os.path.join(folders[controller], filename)
            if filename in OPTIONAL_FILES and not os.path.exists(path):
                continue  # swap accounting off: the memory limit alone
            with open(path, "w") as f:
                f.write(value)
    except OSError as err:
        raise LimitsUnavailable(f"cannot set up the cgroup {GROUP}/{name}: {err}") from err
    return sorted({os.path.join(folder, "cgroup.procs") for folder in folders.values()})


OPTIONAL_FILES = {"memory.memsw.limit_in_bytes", "memory.swap.max"}


def _controllers(hierarchy):
    out = {"memory": hierarchy.memory, "cpu": hierarchy.cpu}
    if hierarchy.pids:
        out["pids"] = hierarchy.pids
    return out


def _in_writable_order(files, folders):
    """cgroup v1 refuses a memory limit above the memory+swap limit: when the cgroup already
    exists with a lower one (a server restarted with a bigger profile), raise memsw first."""
    key, memsw = ("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes")
    if key in files and memsw in files and "memory" in folders:
        try:
            with open(os.path.join(folders["memory"], "memory.limit_in_bytes")) as f:
                current = int(f.read())
        except (OSError, ValueError):
            current = 0
        if int(files[key]) > current:
            return {memsw: files[memsw], **{k: v for k, v in files.items() if k != memsw}}
    return files


def join(procs_files):
    """Move this process into the cgroups (call in the child, before it drops privileges)."""
    for path in procs_files:
        with open(path, "w") as f:
            f.write(str(os.getpid()))


def remove(owner, hierarchy=None):
    """Remove ``owner``'s cgroup once its processes are gone; False if some are still in it."""
    hierarchy = hierarchy or find_hierarchy()
    if hierarchy is None:
        return True
    done = True
    for base in set(_controllers(hierarchy).values()):
        folder = os.path.join(base, GROUP, cgroup_name(owner))
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
            done = False
    return done


def sweep(hierarchy=None, now=None):
    """Remove the empty server cgroups left under ``deepvre/`` (processes a user detached that
    have ended since their server stopped). A cgroup with processes cannot be removed; the hub
    calls this at start, before any server starts. One made in the last ``FRESH`` seconds is
    kept: another hub on this machine may be starting a server into it (made, not yet joined).
    Returns the names removed."""
    hierarchy = hierarchy or find_hierarchy()
    now = time.time() if now is None else now
    removed = set()
    if hierarchy is None:
        return removed
    for base in set(_controllers(hierarchy).values()):
        group = os.path.join(base, GROUP)
        for name in os.listdir(group) if os.path.isdir(group) else ():
            folder = os.path.join(group, name)
            try:
                if not os.path.isdir(folder) or now - os.stat(folder).st_ctime < FRESH:
                    continue
                os.rmdir(folder)
                removed.add(name)
            except OSError:
                pass  # still has processes (or is not ours to remove)
    return removed
