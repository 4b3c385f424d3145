"""What a test needs from the machine.

A test that needs something this machine lacks (root, Slurm, Chromium, npm
packages) is skipped when run by hand, but fails under ``CI=true``: CI installs
everything, so a skip there would hide a broken test.
"""

import os
import shutil

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition, reason):
    """Skip locally, fail in CI, when ``condition`` is false."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def require_root():
    require(os.geteuid() == 0, "needs root (creates OS accounts)")


def require_program(name):
    path = shutil.which(name)
    require(path is not None, f"needs {name} on PATH")
    return path


HUB_TMP = "/tmp/deepvre-test-hubs"  # root's, 0711: outside /tmp/pytest-of-root, which pytest keeps 0700


def hub_tmpdir(prefix="hub-"):
    """A new folder (0711) for a root hub's state: as root the hub's services run under their
    own accounts and must pass through to their folders. Removed by the caller."""
    import stat
    import tempfile

    os.makedirs(HUB_TMP, mode=0o711, exist_ok=True)
    info = os.lstat(HUB_TMP)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise RuntimeError(f"{HUB_TMP} is not this account's folder")
    os.chmod(HUB_TMP, 0o711)
    folder = tempfile.mkdtemp(prefix=prefix, dir=HUB_TMP)
    os.chmod(folder, 0o711)
    return folder


def traversable(path):
    """Let other accounts pass through ``path`` and every folder above it (``o+x``; nothing
    becomes listable or readable): a root hub's services run under their own accounts and must
    reach their folders in the hub's state (pytest makes its temporary folders 0700)."""
    path = os.path.abspath(path)
    while path != os.path.dirname(path):  # up to /
        if os.path.isdir(path) and not os.path.islink(path):
            mode = os.stat(path).st_mode
            if not mode & 0o001:
                os.chmod(path, (mode & 0o7777) | 0o001)
        path = os.path.dirname(path)


def require_proxy():
    """configurable-http-proxy, installed into the project by npm (``make setup``)."""
    require(os.path.exists(os.path.join(REPO, "node_modules/.bin/configurable-http-proxy")),
            "needs node_modules/.bin/configurable-http-proxy (npm install)")
