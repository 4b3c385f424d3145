"""A GPU's device node opens only for the account of the server that holds it.

CUDA reaches a GPU through its node ``/dev/nvidia<minor>``, which the NVIDIA driver makes 0666 by
default: ``CUDA_VISIBLE_DEVICES`` alone is advice any user can ignore. With the hub as root in
local mode (``gpus.restrict_devices``), every discovered GPU's node becomes root's, 0600 and
without ACL entries at hub start; a server's GPUs get the entry ``user:<account>:rw`` (POSIX
ACL, ``setfacl``) while it holds them, removed when it stops, when the account's processes that
still hold the node open are killed (the check is at open: an open handle would outlive it). The shared nodes (``nvidiactl``,
``nvidia-uvm``) stay as the driver made them: without a GPU's own node they reach no GPU.

Nodes that do not exist (no driver, a machine without GPUs) are skipped. The driver recreates
its nodes with ``NVreg_DeviceFileMode`` when the module loads; the hub restricts them again at
its next start and at every grant (docs/security.md, "GPU devices").
"""

import os
import pwd
import shutil
import signal
import stat
import subprocess


class DevicesUnrestricted(RuntimeError):
    """A node exists but cannot be restricted; the message says why."""


def existing(nodes):
    """The ``nodes`` (paths) that exist; each must be a character device in a folder only root
    may change, with no link on the way (``chmod`` and ``setfacl`` follow them)."""
    found = []
    for node in nodes:
        try:
            info = os.lstat(node)
        except OSError:
            continue
        parent = os.lstat(os.path.dirname(node))
        if os.path.realpath(node) != os.path.abspath(node) or parent.st_uid != 0 or parent.st_mode & 0o022:
            raise DevicesUnrestricted(f"{node} is reached through a link or lies in a folder others may change")
        if not stat.S_ISCHR(info.st_mode):
            raise DevicesUnrestricted(f"{node} is not a character device")
        found.append(node)
    return found


def holders(node, uid):
    """Pids of ``uid``'s processes that hold ``node`` open (permissions are checked at open only)."""
    device = os.stat(node).st_rdev
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                info = os.stat(f"/proc/{pid}/fd/{fd}")
                if stat.S_ISCHR(info.st_mode) and info.st_rdev == device:
                    found.add(int(pid))
                    break
        except OSError:
            continue
    return sorted(found)


def _setfacl(*args):
    program = shutil.which("setfacl")
    if program is None:
        raise DevicesUnrestricted("setfacl is missing (Debian package acl)")
    result = subprocess.run([program, *args], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise DevicesUnrestricted(f"setfacl {' '.join(args)}: {result.stderr.strip()}")


def lock(nodes):
    """Make each existing node root's, 0600, without ACL entries; returns those handled."""
    found = existing(nodes)
    for node in found:
        os.chown(node, 0, 0, follow_symlinks=False)
        os.chmod(node, 0o600)
        _setfacl("--remove-all", "--", node)
    return found


def grant(nodes, account):
    """Let ``account`` open each existing node (read and write), and nobody else but root: the
    whole ACL is set anew (an entry left by a failed revoke or by udev goes), and a node the
    driver recreated open is locked first."""
    found = existing(nodes)
    for node in found:
        info = os.lstat(node)
        if info.st_uid != 0 or info.st_mode & 0o007:
            lock([node])
        _setfacl("--set", f"user::rw-,group::---,other::---,user:{account}:rw-", "--", node)
    return found


def revoke(nodes, account):
    """Take each existing node back from ``account``: its ACL entry goes, and its processes that
    still hold the node open (from another of its servers, or detached) are killed."""
    found = existing(nodes)
    uid = pwd.getpwnam(account).pw_uid
    for node in found:
        _setfacl("--remove-all", "--", node)
        for pid in holders(node, uid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return found


def has_acl(node):
    try:
        return bool(os.getxattr(node, "system.posix_acl_access", follow_symlinks=False))
    except OSError:
        return False
