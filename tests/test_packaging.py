"""The distribution lists every package that exists under its two roots."""

import configparser
import os

from tests.prereqs import REPO

ROOTS = {"deepvre": "extensions/deepvre", "deepvre_hub": "hub/deepvre_hub"}


def listed_packages():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    return set(cfg["options"]["packages"].split())


def packages_on_disk():
    found = set()
    for name, root in ROOTS.items():
        top = os.path.join(REPO, root)
        for folder, _dirs, files in os.walk(top):
            if "__init__.py" in files:
                rel = os.path.relpath(folder, top)
                found.add(name if rel == "." else f"{name}.{rel.replace(os.sep, '.')}")
    return found


def test_every_package_is_listed_in_setup_cfg():
    assert packages_on_disk() - listed_packages() == set()


def test_every_listed_package_exists():
    assert listed_packages() - packages_on_disk() == set()
