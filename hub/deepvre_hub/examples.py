"""The use-case notebooks offered to every user: copied into the home at the first spawn.

As TLJH and z2jh sites do with a pre-spawn copy: ``DeepvreSpawner.examples_dir`` (default: the
checkout's ``notebooks/``) goes to ``~/deepvre-examples/`` once; a marker
(``~/.local/share/deepvre/examples-copied``) keeps later spawns from copying again, so the user's
edits and deletions stay. The copy runs as the user (``python -m deepvre_hub.examples SOURCE``
started with the user's uid and gids, never as root), never follows a symlink in the home (each
folder opened with ``O_NOFOLLOW`` relative to its parent) and never overwrites a file
(``O_EXCL``): what the user planted in their home stays, and nothing lands outside it.

In the images the notebooks are at :data:`IMAGE_SOURCE` and the same copy runs inside the
container once it has started, as the image's user: podman's containers through dockerspawner's
``post_start_cmd``, Kubernetes pods through a ``postStart`` lifecycle hook (:func:`image_command`).
"""

import contextlib
import errno
import os
import pwd
import shlex
import sys

from .terminals import IMAGE_BIN

TARGET = "deepvre-examples"
IMAGE_SOURCE = "/opt/deepvre/share/deepvre/notebooks"  # images/singleuser-*/Dockerfile
MARKER = (".local", "share", "deepvre", "examples-copied")
SUFFIXES = (".ipynb", ".md")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def example_files(source):
    """The relative paths of the notebooks and READMEs under ``source`` (no hidden folders, no
    checkpoints, no symlinks), sorted."""
    found = []
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(SUFFIXES) and not name.startswith(".") and not os.path.islink(path):
                found.append(os.path.relpath(path, source))
    return sorted(found)


def _open_dir(parent, name):
    """The folder ``name`` in the folder open as ``parent``, made if missing; a symlink fails (ELOOP)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(name, DIR_FLAGS, dir_fd=parent)


def _walk_to(home_fd, parts):
    """A descriptor of the folder ``home/parts...``, each part opened without following symlinks."""
    fd = os.dup(home_fd)
    try:
        for part in parts:
            inner = _open_dir(fd, part)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def copy_examples(source, home, target=TARGET):
    """Copy :func:`example_files` of ``source`` into ``home/target`` unless the marker says it was
    done; returns the relative paths written (existing files are kept as they are)."""
    home_fd = os.open(home, DIR_FLAGS)
    written = []
    try:
        marker_dir = _walk_to(home_fd, MARKER[:-1])
        try:
            if _exists(marker_dir, MARKER[-1]):
                return []
            for rel in example_files(source):
                parts = rel.split(os.sep)
                try:
                    folder = _walk_to(home_fd, [target, *parts[:-1]])
                except OSError as err:  # a symlink or a file where a folder goes: the user's, left alone
                    if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    continue
                try:
                    with open(os.path.join(source, rel), "rb") as src:
                        data = src.read()
                    try:
                        out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                                      dir_fd=folder)
                    except FileExistsError:  # the user's own file (or link) of that name: kept
                        continue
                    with os.fdopen(out, "wb") as dest:
                        dest.write(data)
                    written.append(rel)
                finally:
                    os.close(folder)
            os.close(os.open(MARKER[-1], os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=marker_dir))
        finally:
            os.close(marker_dir)
    finally:
        os.close(home_fd)
    return written


def _exists(folder_fd, name):
    try:
        os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def as_user_command(source):
    """The command the spawner runs with the user's uid to copy ``source`` into their home.
    ``-I``: nothing of the user's runs in it (no working folder on ``sys.path``, as ``-m`` puts it
    first, no user site-packages, no ``PYTHON*`` variables): it starts in their home."""
    return [sys.executable, "-I", "-m", "deepvre_hub.examples", str(source)]


def image_command():
    """The copy, run inside a started container of the images (as its user, in its home)."""
    return [f"{IMAGE_BIN}/python", "-I", "-m", "deepvre_hub.examples", IMAGE_SOURCE]


def lifecycle_hooks():
    """KubeSpawner's ``lifecycle_hooks``: the copy as the pod's ``postStart`` hook. A failing hook
    kills the container, so a failed copy (a full volume) is ignored: the server starts without it."""
    return {"postStart": {"exec": {"command": ["/bin/sh", "-c", f"{shlex.join(image_command())} || true"]}}}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m deepvre_hub.examples SOURCE (copies into this account's home)")
    home = pwd.getpwuid(os.getuid()).pw_dir  # the account's, not $HOME
    written = copy_examples(argv[0], home)
    print(f"deepvre: {len(written)} example files copied into {os.path.join(home, TARGET)}")


if __name__ == "__main__":
    main()
