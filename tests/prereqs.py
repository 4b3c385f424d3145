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
