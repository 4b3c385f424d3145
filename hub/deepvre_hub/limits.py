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
from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"
GROUP = "deepvre"
CPU_PERIOD = 100_000  # microseconds, the kernel's default CFS period


class LimitsUnavailable(RuntimeError):
    """No writable cgroup tree with the memory and cpu controllers."""


@dataclass(frozen=True)
class Hierarchy:
    """Where the controllers are: ``version`` 2 (one folder) or 1 (a folder per controller)."""

    version: int
    memory: str
    cpu: str


def find_hierarchy(root=ROOT):
    """The cgroup tree of this machine with memory and cpu controllers, or None."""
    controllers = os.path.join(root, "cgroup.controllers")
    if os.path.exists(controllers):
        with open(controllers) as f:
            have = f.read().split()
        return Hierarchy(2, root, root) if {"memory", "cpu"} <= set(have) else None
    memory, cpu = os.path.join(root, "memory"), os.path.join(root, "cpu")
    if os.path.exists(os.path.join(memory, "memory.limit_in_bytes")) and os.path.exists(
            os.path.join(cpu, "cpu.cfs_quota_us")):
        return Hierarchy(1, memory, cpu)
    return None


def cgroup_name(owner):
    """``user/server`` as a cgroup folder name: ``user--server``, odd characters and leading dots
    replaced and a short hash added when anything was."""
    name = owner.replace("/", "--").rstrip("-")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100].lstrip(".") or "_"
    if safe != name:
        safe += "-" + hashlib.sha256(owner.encode()).hexdigest()[:8]
    return safe


def limit_files(version, cpu=None, memory=None):
    """``{(controller, file): value}`` to write for ``cpu`` cores and ``memory`` bytes (pure)."""
    files = {}
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


def _enable_v2_controllers(root):
    """Let ``root/deepvre``'s children use memory and cpu (cgroup v2 delegates them downward)."""
    group = os.path.join(root, GROUP)
    os.makedirs(group, exist_ok=True)
    for folder in (root, group):
        with open(os.path.join(folder, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +cpu")


def create(owner, cpu=None, memory=None, hierarchy=None):
    """Make ``owner``'s cgroup with its limits; returns the ``cgroup.procs`` files the server's
    process must join (:func:`join`). Raises :class:`LimitsUnavailable`."""
    hierarchy = hierarchy or find_hierarchy()
    if hierarchy is None:
        raise LimitsUnavailable("this machine has no cgroup tree with the memory and cpu controllers")
    name = cgroup_name(owner)
    folders = {"memory": os.path.join(hierarchy.memory, GROUP, name), "cpu": os.path.join(hierarchy.cpu, GROUP, name)}
    try:
        if hierarchy.version == 2:
            _enable_v2_controllers(hierarchy.memory)
        for folder in set(folders.values()):
            os.makedirs(folder, exist_ok=True)
        for (controller, filename), value in limit_files(hierarchy.version, cpu, memory).items():
            path = os.path.join(folders[controller], filename)
            if filename == "memory.memsw.limit_in_bytes" and not os.path.exists(path):
                continue  # swap accounting off: the memory limit alone
            with open(path, "w") as f:
                f.write(value)
    except OSError as err:
        raise LimitsUnavailable(f"cannot set up the cgroup {GROUP}/{name}: {err}") from err
    return sorted({os.path.join(folder, "cgroup.procs") for folder in folders.values()})


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
    for base in {hierarchy.memory, hierarchy.cpu}:
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
