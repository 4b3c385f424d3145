"""The software and hardware a run ran on: captured into every run and every published version.

One record (``RUN_DIR/environment.json``; a published version's ``deepvre.environment``)::

    {"python": {"implementation": "CPython", "version": "3.12.3"},
     "platform": {"system": "Linux", "release": "6.8.0", "machine": "x86_64"},
     "lock": {"file": "requirements.lock", "sha256": "..."},     # or {"sha256": "unknown", "why": ...}
     "packages": {"numpy": "2.1.3", ...},                        # every installed distribution
     "container": {"in_container": true, "image": "localhost/deepvre/singleuser-cpu:0.1.0",
                   "image_digest": "sha256:..."},                # "unknown" where nothing says
     "gpus": [{"name": "NVIDIA H200", "driver": "570.124.06"}],  # [] without nvidia-smi
     "data_manifest": "sha256 of the data's manifest.json, or null"}

:func:`describe` builds it from values (pure), :func:`capture` gathers them here, and
:func:`diff` says what differs between a recorded one and another (packages added, removed,
changed; Python, platform, lock, GPUs).

Where each part comes from:

- the lock: ``requirements.lock`` at the root of a source install (``make setup``), else the
  lock an image installed, which its Dockerfile keeps as ``<venv>/share/deepvre/requirements.lock``
  (``images/<image>/requirements.lock``, this image's part of the project's lock);
- the image: ``$DEEPVRE_IMAGE`` (its reference) and ``$DEEPVRE_IMAGE_ID``, which the container
  spawner sets from ``podman image inspect`` (the image ID); Kubernetes sets only the reference
  (the profile's image), so the digest is known where that reference is digest-pinned
  (``...@sha256:...``), else ``"unknown"``;
- the data manifest: given by the caller (publishing: the trained data's ``manifest.json``). A
  run's inputs are not known before its notebook runs, so its worker adds them once the notebook
  has stopped (:func:`record_run_data`): every preprocessing output the run wrote into its folder
  (``data_manifests``: its path in the run folder -> sha256 of its ``manifest.json``), and
  ``data_manifest`` when there is exactly one (several: which one trained the model is the
  published version's record to say).
"""

import os
import platform as _platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from ..checksums import file_sha256
from ..site.environment import Environment

ENVIRONMENT = "environment.json"
UNKNOWN = "unknown"
LOCK_FILE = Path(__file__).resolve().parents[2] / "requirements.lock"  # a source install's root
IMAGE_LOCK = Path(sys.prefix) / "share" / "deepvre" / "requirements.lock"  # images/*/Dockerfile keep theirs here
CONTAINER_MARKS = ("/.dockerenv", "/run/.containerenv")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def image_digest(reference=None, image_id=None):
    """The image's digest: ``image_id`` (``sha256:HEX``, a bare HEX gets the prefix) when it is one,
    else the digest of a digest-pinned ``reference`` (``NAME@sha256:HEX``), else ``"unknown"`` (pure)."""
    image_id = (image_id or "").strip()
    if re.fullmatch(r"[0-9a-f]{64}", image_id):
        image_id = "sha256:" + image_id
    if DIGEST.fullmatch(image_id):
        return image_id
    pinned = (reference or "").rpartition("@")[2]
    return pinned if DIGEST.fullmatch(pinned) else UNKNOWN


def describe(packages, python, system, lock_sha256=None, in_container=False, gpus=(), data_manifest=None,
             lock_why="", lock_name=LOCK_FILE.name, image=None, image_id=None):
    """The environment record from its values (a pure function): ``packages`` ``{name: version}``
    (names in packaging's canonical form, e.g. ``jupyter-server``), ``python`` ``(implementation, version)``, ``system`` ``(system, release,
    machine)``, ``lock_sha256`` of the lock ``lock_name`` (None: unknown, ``lock_why`` says why),
    ``gpus`` ``[(name, driver)]``, ``image`` and ``image_id`` (:func:`image_digest`) of a container."""
    lock = ({"file": lock_name, "sha256": lock_sha256} if lock_sha256
            else {"sha256": UNKNOWN, "why": lock_why or "no lock file"})
    container = {"in_container": bool(in_container), "image_digest": image_digest(image, image_id)}
    if image:
        container["image"] = image
    return {
        "python": {"implementation": python[0], "version": python[1]},
        "platform": dict(zip(("system", "release", "machine"), system)),
        "lock": lock,
        "packages": dict(sorted((canonicalize_name(str(k)), str(v)) for k, v in packages.items())),
        "container": container,
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


def find_lock(candidates=(LOCK_FILE, IMAGE_LOCK)):
    """The first lock file of ``candidates`` that exists (a source install's, an image's), else None."""
    return next((Path(p) for p in candidates if Path(p).is_file()), None)


def lock_label(path):
    """How the record names the lock at ``path``: ``requirements.lock`` for a source install's, the
    path for an image's (its ``share/deepvre`` copy)."""
    path = Path(path)
    return path.name if path == LOCK_FILE else str(path)


def capture(data_manifest=None, lock_file=None, environ=None):
    """This process's environment (:func:`describe`); ``data_manifest``: the sha256 of the data's
    manifest; ``lock_file``: the lock to hash (default: :func:`find_lock`); ``environ``: where the
    spawner's ``$DEEPVRE_IMAGE`` and ``$DEEPVRE_IMAGE_ID`` are read (default ``os.environ``)."""
    lock = Path(lock_file) if lock_file else find_lock()
    env = Environment(environ)
    return describe(
        installed_packages(), (_platform.python_implementation(), _platform.python_version()),
        (_platform.system(), _platform.release(), _platform.machine()),
        file_sha256(lock) if lock and lock.is_file() else None, in_container(), nvidia_gpus(), data_manifest,
        lock_why=f"no {lock or LOCK_FILE.name} beside the installed deepvre, nor {IMAGE_LOCK} (an image's)",
        lock_name=lock_label(lock) if lock else LOCK_FILE.name, image=env.image, image_id=env.image_id,
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


def data_outputs(folder, depth=4):
    """``{path relative to folder: sha256 of its manifest.json}`` of the preprocessing outputs (folders
    with the pipelines' marker and manifest, :mod:`deepvre.pipelines.manifest`) within ``depth``
    levels of ``folder``; symbolic links are not followed."""
    from ..pipelines.manifest import MANIFEST, MARKER

    found = {}
    root = os.path.abspath(folder)
    for here, dirs, files in os.walk(root):
        level = 0 if here == root else os.path.relpath(here, root).count(os.sep) + 1
        if level >= depth:
            dirs[:] = []
        if MARKER in files and MANIFEST in files and not os.path.islink(os.path.join(here, MANIFEST)):
            found[os.path.relpath(here, root)] = file_sha256(os.path.join(here, MANIFEST))
    return dict(sorted(found.items()))


def record_run_data(run_path):
    """Add the run's data to its ``environment.json`` (written before the notebook ran): the
    :func:`data_outputs` in the run folder as ``data_manifests``, and ``data_manifest`` when there is
    exactly one. Returns the record, or None when the run has none (nothing is written then)."""
    import json

    path = os.path.join(run_path, ENVIRONMENT)
    try:
        with open(path) as fh:
            found = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    outputs = data_outputs(run_path)
    found["data_manifests"] = outputs
    if found.get("data_manifest") is None and len(outputs) == 1:
        found["data_manifest"] = next(iter(outputs.values()))
    from .store import write_json

    write_json(path, found)
    return found


def diff(recorded, current):
    """What differs from ``recorded`` in ``current`` (both :func:`describe` records): ``{"packages":
    {"added": {n: v}, "removed": {n: v}, "changed": {n: [recorded, current]}}, "python": [a, b] or
    None, "platform", "lock", "gpus", "container" (the image and its digest, None outside one): likewise}``;
    :func:`same` says whether nothing does."""
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
        "container": pair("container", _image),
    }


def _image(container):
    container = container or {}
    if not container.get("in_container"):
        return None
    return {"image": container.get("image"), "image_digest": container.get("image_digest", UNKNOWN)}


def same(difference):
    """Whether a :func:`diff` found nothing."""
    return not any(difference["packages"].values()) and not any(
        difference.get(k) for k in ("python", "platform", "lock", "gpus", "container"))
