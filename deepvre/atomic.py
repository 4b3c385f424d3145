"""Files written whole or not at all, even if the writer is killed or the machine loses power.

    with atomic.replacing("out/model.keras", suffix=".keras") as tmp:
        model.save(tmp)                       # a temp file beside the target...
    # ...flushed to disk, moved over the target, the folder flushed: readers see the old file or the new

Used for checkpoints, ``status.json``, ``metrics.json`` and the pipelines' shard records.
"""

import glob
import json
import os
import secrets
from contextlib import contextmanager

PARTIAL = ".partial"


def temp_beside(path, suffix=""):
    """A fresh hidden name in ``path``'s folder (the same file system, so ``os.replace`` is atomic).

    ``suffix`` ends the name, for writers that insist on one (Keras: ``.keras``, ``.weights.h5``).
    """
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL}{suffix}")


def leftovers(path):
    """Temp files that writers of ``path`` killed mid-write left behind."""
    folder, base = os.path.split(os.path.abspath(path))
    return glob.glob(os.path.join(glob.escape(folder), glob.escape(f".{base}.") + f"*{PARTIAL}*"))


def fsync_folder(folder):
    """Flush a folder's entries (a rename or a removal in it) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp, path):
    """Flush the finished file ``tmp`` to disk, move it over ``path`` and flush the folder."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_folder(os.path.dirname(os.path.abspath(path)))


@contextmanager
def replacing(path, suffix=""):
    """Yield a temp path to write; when the block ends without error it replaces ``path``.

    Until then ``path`` is untouched; on an error the temp file is removed.
    """
    tmp = temp_beside(path, suffix)
    try:
        yield tmp
        commit(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_json(path, data, **dump):
    """Write ``data`` as JSON (``dump``: ``json.dump``'s options) and a final newline, atomically."""
    with replacing(path) as tmp, open(tmp, "x") as fh:
        json.dump(data, fh, **dump)
        fh.write("\n")
