"""A GPU's device node opens only for the account of the server that holds it.

CUDA reaches a GPU through its node ``/dev/nvidia<minor>``, which the NVIDIA driver makes 0666 by
default: ``CUDA_VISIBLE_DEVICES`` alone is advice any user can ignore. With the hub as root in
local mode (``gpus.restrict_devices``), every discovered GPU's node becomes root's, 0600 and
without ACL entries at hub start; a server's GPUs get the entry ``user:<account>:rw`` (POSIX
ACL, ``setfacl``) while it holds them, removed when it stops. The shared nodes (``nvidiactl``,
``nvidia-uvm``) stay as the driver made them: without a GPU's own node they reach no GPU.

Nodes that do not exist (no driver, a machine without GPUs) are skipped. The driver recreates
its nodes with ``NVreg_DeviceFileMode`` when the module loads; the hub restricts them again at
its next start and at every grant (docs/security.md, "GPU devices").
"""

import os
import shutil
import stat
import subprocess


class DevicesUnrestricted(RuntimeError):
    """A node exists but cannot be restricted; the message says why."""


def existing(nodes):
    """The ``nodes`` (paths) that exist as character devices."""
    found = []
    for node in nodes:
        try:
            if stat.S_ISCHR(os.lstat(node).st_mode):
                found.append(node)
        except OSError:
            pass
    return found


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
    """Let ``account`` open each existing node (read and write), and nobody else but root."""
    found = existing(nodes)
    for node in found:
        info = os.lstat(node)
        if info.st_uid != 0 or info.st_mode & 0o007 or (info.st_mode & 0o070 and not _has_acl(node)):
            lock([node])  # recreated by the driver since the hub started
        _setfacl("--modify", f"user:{account}:rw", "--", node)
    return found


def revoke(nodes, account):
    """Remove ``account``'s entry from each existing node."""
    found = existing(nodes)
    for node in found:
        _setfacl("--remove", f"user:{account}", "--", node)
    return found


def _has_acl(node):
    try:
        return bool(os.getxattr(node, "system.posix_acl_access", follow_symlinks=False))
    except OSError:
        return False
