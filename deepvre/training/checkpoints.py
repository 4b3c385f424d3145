"""Checkpoints that make an interrupted ``model.fit`` resume where it stopped, whenever it was killed.

    callbacks = resume_callbacks("out", "transfer")
    model.fit(x, y, epochs=20, callbacks=callbacks)   # killed at epoch 7?
    model.fit(x, y, epochs=20, callbacks=callbacks)   # run again: goes on from epoch 7

In ``out/``: ``transfer.keras``, the model after the latest epoch (loads with ``safe_mode=True``), and
``transfer-backup/``, removed when ``fit`` completes, with the state of the last two epochs:
``epoch-00007.weights.h5`` (weights and optimizer state) and ``epoch-00007.json``, its manifest (the
epoch and the file's sha256). Every file is written to a temp file, flushed and moved into place
(:mod:`deepvre.atomic`), and a manifest only after its weights: a kill at any moment leaves the
previous checkpoint whole. A resume takes the newest checkpoint whose manifest and sha256 check out;
a damaged one is logged and skipped for the one before.
"""

import json
import logging
import os
import re
import shutil

from deepvre import atomic
from deepvre.checksums import file_sha256

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MANIFEST = re.compile(r"^epoch-(\d{5})\.json$")
KEEP = 2  # checkpoints kept: the newest, and the one before in case the newest is damaged

log = logging.getLogger(__name__)


def checkpoint_paths(folder, name="model"):
    """``(backup folder, model file)`` for training run ``name`` in ``folder``."""
    if not NAME.match(name):
        raise ValueError(f"checkpoint name {name!r}: use letters, digits, - and _ (no folders)")
    folder = os.path.abspath(os.path.expanduser(folder))
    return os.path.join(folder, f"{name}-backup"), os.path.join(folder, f"{name}.keras")


def resume_callbacks(folder, name="model"):
    """Callbacks for ``fit``: save the model file, then a checkpoint, after every epoch; resume from it.

    ``folder`` is created if missing. Under ``deepvre run`` a third reports the epochs to the run's
    ``progress.json`` (:mod:`deepvre.training.progress`).
    """
    from . import progress
    from .callbacks import Checkpoint, SaveModel

    backup, model_file = checkpoint_paths(folder, name)
    os.makedirs(os.path.dirname(model_file), exist_ok=True)
    return [SaveModel(model_file), Checkpoint(backup), *progress.callbacks(name)]  # progress: under `deepvre run`


def interrupted(folder, name="model"):
    """True when an unfinished ``fit`` of ``name`` left a checkpoint to resume from."""
    backup, _ = checkpoint_paths(folder, name)
    return bool(epochs(backup))


def weights_file(backup, epoch):
    return os.path.join(backup, f"epoch-{epoch:05d}.weights.h5")


def manifest_file(backup, epoch):
    return os.path.join(backup, f"epoch-{epoch:05d}.json")


def epochs(backup):
    """Epochs with a checkpoint manifest in ``backup``, newest first (not yet checked)."""
    try:
        names = os.listdir(backup)
    except FileNotFoundError:
        return []
    return sorted((int(m.group(1)) for m in map(MANIFEST.match, names) if m), reverse=True)


def problem(backup, epoch):
    """Why the checkpoint of ``epoch`` cannot be trusted, or None when its manifest and files check out."""
    try:
        with open(manifest_file(backup, epoch)) as fh:
            manifest = json.load(fh)
        files = manifest["files"]
        if manifest["epoch"] != epoch or not isinstance(files, dict) or set(files) != {os.path.basename(weights_file(backup, epoch))}:
            return "its manifest names another epoch or other files"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable manifest ({err!r})"
    for name, sha256 in files.items():
        path = os.path.join(backup, name)
        if not os.path.isfile(path):
            return f"{name} is missing"
        if file_sha256(path) != sha256:
            return f"{name} does not match its sha256 (damaged)"
    return None


def remove(backup, epoch):
    """Remove a checkpoint, manifest first: a kill halfway leaves no manifest that names missing files."""
    for path in (manifest_file(backup, epoch), weights_file(backup, epoch)):
        if os.path.lexists(path):
            os.remove(path)


def save(model, backup, epoch):
    """Checkpoint ``model`` (weights, optimizer state) after ``epoch`` epochs; keep the newest :data:`KEEP`."""
    os.makedirs(backup, exist_ok=True)
    remove(backup, epoch)  # a damaged one from before a fallback
    weights = weights_file(backup, epoch)
    with atomic.replacing(weights, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    atomic.write_json(manifest_file(backup, epoch),
                      {"epoch": epoch, "files": {os.path.basename(weights): file_sha256(weights)}}, indent=1)
    for old in epochs(backup)[KEEP:]:
        remove(backup, old)


def restore(model, backup):
    """Load the newest sound checkpoint into ``model`` (built and compiled); return its epoch, 0 if none.

    Damaged checkpoints are logged, removed and skipped. A sound one that does not fit the model
    (the notebook changed since the interrupted run) raises ValueError.
    """
    for path in _partials(backup):
        os.remove(path)  # the temp file of a write that was killed
    for epoch in epochs(backup):
        why = problem(backup, epoch)
        if why:
            log.warning("checkpoint %s of epoch %d is damaged (%s): skipped, trying the one before",
                        manifest_file(backup, epoch), epoch, why)
            remove(backup, epoch)
            continue
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its variables must exist to be loaded
        try:
            model.load_weights(weights_file(backup, epoch))
        except ValueError as err:
            raise ValueError(f"{weights_file(backup, epoch)} does not fit this model (changed since the interrupted "
                             f"run?): remove {backup} to train from the start. {err}") from err
        log.info("resuming after epoch %d from %s", epoch, backup)
        return epoch
    return 0


def _partials(backup):
    try:
        return [os.path.join(backup, n) for n in os.listdir(backup) if atomic.PARTIAL in n]
    except FileNotFoundError:
        return []


def discard(backup):
    """Remove the checkpoints of a completed ``fit``, manifests first."""
    for epoch in epochs(backup):
        os.remove(manifest_file(backup, epoch))
    shutil.rmtree(backup, ignore_errors=True)
