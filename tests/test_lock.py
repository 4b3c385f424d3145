"""``requirements.lock`` is the one environment: it satisfies setup.cfg, pins the data packages, and is installed.

When setup.cfg changes, ``make lock`` refreshes the lock; until then these tests fail.
"""

import importlib.metadata

import pytest
from packaging.utils import canonicalize_name

from tests.lockfile import data_package_requirements, lock_entries, locked_versions, setup_cfg_requirements


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
