"""Folders only their owner can change: for sockets, credentials and tokens (OpenSSH's StrictModes idea).

A private folder is worth nothing inside a folder someone else may rename things in: they move the
checked folder away and put their own in its place. So every folder above it must be owned by root
or by this account, and be writable by nobody else unless it is sticky (as /tmp is).
"""

import os
import stat


def untrusted_parent(path):
    """The first folder above ``path`` that another account could swap things in, or None (the folders
    above ``path`` must exist)."""
    me = os.geteuid()
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        st = os.stat(parent)  # follows links: what matters is the folder the path really goes through
        if st.st_uid not in (0, me) or (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
                                        and not st.st_mode & stat.S_ISVTX):
            return parent
        if parent == os.path.dirname(parent):
            return None
        parent = os.path.dirname(parent)


def private_folder(path):
    """Make ``path`` a folder only this account can enter (0700); PermissionError when it is a link,
    another account's, or inside a folder another account could swap it out of."""
    path = os.path.abspath(path)
    os.makedirs(path, mode=0o700, exist_ok=True)  # first: a folder made meanwhile by another shows below
    unsafe = untrusted_parent(path)
    if unsafe:
        raise PermissionError(f"{path}: the folder {unsafe} above it is another account's or writable by others "
                              "(not sticky): choose a folder only you (or root) control")
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PermissionError(f"{path} is not a folder of this account (a link, or another account's)")
    os.chmod(path, 0o700)
    return path
