"""The software and hardware a run ran on: captured into every run and every published version.

One record (``RUN_DIR/environment.json``; a published version's ``deepvre.environment``)::

    {"python": {"implementation": "CPython", "version": "3.12.3"},
     "platform": {"system": "Linux", "release": "6.8.0", "machine": "x86_64"},
     "lock": {"file": "requirements.lock", "sha256": "..."},     # or {"sha256": "unknown", "why": ...}
     "packages": {"numpy": "2.1.3", ...},                        # every installed distribution
     "container": {"in_container": false, "image_digest": "unknown"},
     "gpus": [{"name": "NVIDIA H200", "driver": "570.124.06"}],  # [] without nvidia-smi
     "data_manifest": "sha256 of the data's manifest.json, or null"}

:func:`describe` builds it from values (pure), :func:`capture` gathers them here, and
:func:`diff` says what differs between a recorded one and another (packages added, removed,
changed; Python, platform, lock, GPUs). No image or spawner sets an image digest today, so it
is ``"unknown"`` in a container too; an image's lock is not kept after its install, so there the
lock's hash is ``"unknown"`` and the package list is what tells.
"""

import os
import platform as _platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from ..checksums import file_sha256

ENVIRONMENT = "environment.json"
UNKNOWN = "unknown"
LOCK_FILE = Path(__file__).resolve().parents[2] / "requirements.lock"  # a source install's root
CONTAINER_MARKS = ("/.dockerenv", "/run/.containerenv")


def describe(packages, python, system, lock_sha256=None, in_container=False, gpus=(), data_manifest=None,
             lock_why=""):
    """The environment record from its values (a pure function): ``packages`` ``{name: version}``
    (names in packaging's canonical form, e.g. ``jupyter-server``), ``python`` ``(implementation, version)``, ``system`` ``(system, release,
    machine)``, ``lock_sha256`` (None: unknown, ``lock_why`` says why), ``gpus`` ``[(name, driver)]``."""
    lock = ({"file": LOCK_FILE.name, "sha256": lock_sha256} if lock_sha256
            else {"sha256": UNKNOWN, "why": lock_why or "no lock file"})
    return {
        "python": {"implementation": python[0], "version": python[1]},
        "platform": dict(zip(("system", "release", "machine"), system)),
        "lock": lock,
        "packages": dict(sorted((canonicalize_name(str(k)), str(v)) for k, v in packages.items())),
        "container": {"in_container": bool(in_container), "image_digest": UNKNOWN},
        "gpus": [{"name": name, "driver": driver} for name, driver in gpus],
        "data_manifest": data_manifest,
    }


def installed_packages():
    """``{name: version}`` of every distribution importlib.metadata finds (first on the path wins)."""
    found = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name not in found:
            found[name] = dist.version
    return found


def nvidia_gpus(timeout=10):
    """``[(name, driver)]`` from ``nvidia-smi``; [] when it is missing or fails."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [tuple(part.strip() for part in line.split(",", 1)) for line in out.splitlines() if "," in line]


def in_container():
    """Whether this process runs in a container (Docker, Podman, Kubernetes)."""
    return any(os.path.exists(mark) for mark in CONTAINER_MARKS) or "KUBERNETES_SERVICE_HOST" in os.environ


def capture(data_manifest=None, lock_file=LOCK_FILE):
    """This process's environment (:func:`describe`); ``data_manifest``: the sha256 of the data's manifest."""
    lock = Path(lock_file)
    return describe(
        installed_packages(), (_platform.python_implementation(), _platform.python_version()),
        (_platform.system(), _platform.release(), _platform.machine()),
        file_sha256(lock) if lock.is_file() else None, in_container(), nvidia_gpus(), data_manifest,
        lock_why=f"no {lock.name} beside the installed deepvre (an image keeps none after its install)",
    )


def of_run(run_path):
    """What the run in folder ``run_path`` ran on (its ``environment.json``, written by its worker);
    this process's when it has none (a run from before, or a damaged file)."""
    import json

    try:
        with open(os.path.join(run_path, ENVIRONMENT)) as fh:
            found = json.load(fh)
    except (OSError, ValueError):
        found = None
    return found if isinstance(found, dict) and "packages" in found else capture()


def diff(recorded, current):
    """What differs from ``recorded`` in ``current`` (both :func:`describe` records): ``{"packages":
    {"added": {n: v}, "removed": {n: v}, "changed": {n: [recorded, current]}}, "python": [a, b] or
    None, "platform", "lock", "gpus": likewise}``; :func:`same` says whether nothing does."""
    old, new = recorded.get("packages") or {}, current.get("packages") or {}

    def pair(key, pick=lambda v: v):
        a, b = pick(recorded.get(key)), pick(current.get(key))
        return None if a == b else [a, b]

    return {
        "packages": {
            "added": {n: new[n] for n in sorted(set(new) - set(old))},
            "removed": {n: old[n] for n in sorted(set(old) - set(new))},
            "changed": {n: [old[n], new[n]] for n in sorted(set(old) & set(new)) if old[n] != new[n]},
        },
        "python": pair("python", lambda v: (v or {}).get("version")),
        "platform": pair("platform"),
        "lock": pair("lock", lambda v: (v or {}).get("sha256")),
        "gpus": pair("gpus"),
    }


def same(difference):
    """Whether a :func:`diff` found nothing."""
    return not any(difference["packages"].values()) and not any(
        difference[k] for k in ("python", "platform", "lock", "gpus"))
