"""Each image's lock: the part of requirements.lock its extras need (``make lock`` writes them).

An image installs only what it runs: the hub image the hub, Kubernetes and marketplace extras (no
TensorFlow), the single-user images every extra a user's server uses and the offline data packages
(no test tools, no dockerspawner). Each lock is cut from requirements.lock, never resolved again: the
same versions and hashes, the packages reachable from the image's requirements through the lock's
own ``# via`` lines (a package's ``via`` names the packages that need it). tests/test_lock.py
installs each cut alone and runs ``uv pip check`` on it.

    python images/locks.py          # write images/<image>/requirements.lock
    python images/locks.py --check  # exit 1 when one differs from what requirements.lock gives
"""

import argparse
import configparser
import re
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
DATA_MARK = "# ---- offline data packages"
TOP = "deepvre (setup.cfg)"
# setuptools builds deepvre itself in the image (--no-build-isolation)
BUILD = ("setuptools", "wheel")
IMAGES = {
    "hub": {"extras": ("hub", "kubernetes", "market"), "data": False},
    "singleuser-cpu": {"extras": ("hub", "ml", "dask", "kubernetes", "slurm", "market", "serve"), "data": True},
}


def blocks(text):
    """``[(name, block text, [via names])]`` of the lock's pinned entries, in order."""
    found = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==", block)
        if not head:
            continue
        via = []
        for line in block.splitlines()[1:]:
            note = line.strip().lstrip("#").strip()
            if line.strip().startswith("#") and note:
                note = note[3:].strip() if note.startswith("via") else note
                via += [note] if note else []
        found.append((canonicalize_name(head.group(1)), block.rstrip("\n") + "\n", via))
    return found


def requirement_names(extras, setup_cfg=ROOT / "setup.cfg"):
    """The names setup.cfg's install_requires and ``extras`` ask for."""
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg)
    lines = cfg["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += cfg["options.extras_require"][extra].splitlines()
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("%("):
            names.add(canonicalize_name(re.match(r"[A-Za-z0-9._-]+", line).group(0)))
    return names


def image_lock(lock_text, extras, data):
    """The lock of an image: the entries reachable from ``extras``' requirements, then (``data``) the
    offline data packages, each block exactly as in ``lock_text``."""
    main, _, data_part = lock_text.partition(DATA_MARK)
    entries = blocks(main)
    needs = {}  # package -> packages it needs, from the ``via`` lines read backwards
    for name, _, via in entries:
        for parent in via:
            if parent != TOP:
                needs.setdefault(canonicalize_name(parent.split(" ")[0]), set()).add(name)
    wanted, todo = set(), list(requirement_names(extras) | set(BUILD))
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += needs.get(name, ())
    known = {name for name, _, _ in entries}
    missing = sorted(n for n in requirement_names(extras) if n not in known)
    if missing:
        raise ValueError(f"requirements.lock lacks {missing}: run make lock")
    out = ["# This image's part of requirements.lock (images/locks.py, run by `make lock`; extras: "
           f"{', '.join(extras)}{', and the data packages' if data else ''}).\n"]
    out += [block for name, block, _ in entries if name in wanted]
    if data:
        out.append(DATA_MARK + data_part)
    return "".join(out).rstrip("\n") + "\n"


def expected():
    text = LOCK.read_text()
    return {ROOT / "images" / image / "requirements.lock": image_lock(text, spec["extras"], spec["data"])
            for image, spec in IMAGES.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write or check each image's lock.")
    parser.add_argument("--check", action="store_true", help="exit 1 when a lock differs from requirements.lock's cut")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}: run make lock (or python images/locks.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
