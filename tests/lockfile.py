"""Read ``requirements.lock`` (written by ``make lock``): the pins, their hashes and what setup.cfg asks for."""

import configparser
import os
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.prereqs import REPO

LOCK = os.path.join(REPO, "requirements.lock")
DATA_PACKAGES = os.path.join(REPO, "data-packages.txt")


def lock_entries(path=LOCK):
    """``{name: (Requirement, [hashes])}`` for every pinned line of the lock (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", open(path).read())
    entries = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        hashes = re.findall(r"--hash=(\S+)", line)
        req = Requirement(re.sub(r"\s*--hash=\S+", "", line).strip())
        entries[canonicalize_name(req.name)] = (req, hashes)
    return entries


def locked_versions(path=LOCK):
    """``{name: version}`` of the lock."""
    return {name: next(iter(req.specifier)).version for name, (req, _) in lock_entries(path).items()}


def setup_cfg_requirements():
    """Every requirement setup.cfg names: install_requires and each extra (the ``%(x)s`` aliases skipped)."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    lines = cfg["options"]["install_requires"].splitlines()
    for extra in cfg["options.extras_require"].values():
        lines += extra.splitlines()
    return [Requirement(ln.strip()) for ln in lines if ln.strip() and not ln.strip().startswith("%(")]


def data_package_requirements():
    lines = (ln.split("#", 1)[0].strip() for ln in open(DATA_PACKAGES))
    return [Requirement(ln) for ln in lines if ln]
