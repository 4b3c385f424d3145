"""Paths sent by the browser, resolved inside the server's root directory.

Like the contents API, every path is relative to the root: an absolute path,
a ``..`` that climbs out, or a symlink that points outside is refused.
"""

import os

from deepvre.errors import Invalid


class PathError(Invalid):
    """A path that is not inside the user's root directory."""


def resolve(root, path, must_exist=False):
    """The real absolute path of ``path`` (relative to ``root``), or PathError.

    >>> resolve("/home/ana", "notebooks/a.ipynb")
    '/home/ana/notebooks/a.ipynb'
    """
    if path is None:
        raise PathError("no path given")
    if not isinstance(path, str) or "\0" in path:
        raise PathError(f"not a valid path: {path!r}")
    if os.path.isabs(path) or path.startswith(("/", "\\")) or os.path.splitdrive(path)[0]:
        raise PathError(f"absolute paths are not allowed: {path!r}; give a path relative to the workspace")
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, path))
    if full != real_root and os.path.commonpath([full, real_root]) != real_root:
        raise PathError(f"path {path!r} is outside the workspace")
    if must_exist and not os.path.exists(full):
        raise PathError(f"{path!r} does not exist in the workspace")
    return full


def relative(root, full):
    """``full`` as an API path (forward slashes) relative to ``root``."""
    return os.path.relpath(full, os.path.realpath(root)).replace(os.sep, "/")


def free_name(full):
    """``full`` if nothing is there, else the first ``stem-N.ext`` that is free (never overwrite)."""
    if not os.path.lexists(full):
        return full
    stem, ext = os.path.splitext(full)
    n = 2
    while os.path.lexists(f"{stem}-{n}{ext}"):
        n += 1
    return f"{stem}-{n}{ext}"


def safe_segment(name):
    """A single folder or file name from a request (model name, run id): no separators, no dots-only."""
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise PathError(f"not a valid name: {name!r}")
    return name
