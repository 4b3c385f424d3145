"""Checkpoints that make an interrupted ``model.fit`` resume where it stopped.

    callbacks = resume_callbacks("out", "transfer")
    model.fit(x, y, epochs=20, callbacks=callbacks)   # killed at epoch 7?
    model.fit(x, y, epochs=20, callbacks=callbacks)   # run again: goes on from epoch 7

In ``out/``: ``transfer-backup/`` (Keras ``BackupAndRestore``: weights, optimizer state and the
epoch, written after every epoch and removed when ``fit`` completes) and ``transfer.keras`` (the
model after the latest epoch, by ``ModelCheckpoint``; loads with ``safe_mode=True``).
"""

import os
import re

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def checkpoint_paths(folder, name="model"):
    """``(backup folder, model file)`` for training run ``name`` in ``folder``."""
    if not NAME.match(name):
        raise ValueError(f"checkpoint name {name!r}: use letters, digits, - and _ (no folders)")
    folder = os.path.abspath(os.path.expanduser(folder))
    return os.path.join(folder, f"{name}-backup"), os.path.join(folder, f"{name}.keras")


def resume_callbacks(folder, name="model"):
    """``[BackupAndRestore, ModelCheckpoint]`` for ``fit``; ``folder`` is created if missing."""
    import keras

    backup, model_file = checkpoint_paths(folder, name)
    os.makedirs(os.path.dirname(model_file), exist_ok=True)
    return [
        keras.callbacks.BackupAndRestore(backup, save_freq="epoch", delete_checkpoint=True),
        keras.callbacks.ModelCheckpoint(model_file, save_best_only=False),
    ]


def interrupted(folder, name="model"):
    """True when an unfinished ``fit`` of ``name`` left a backup to resume from."""
    backup, _ = checkpoint_paths(folder, name)
    return os.path.isdir(backup) and bool(os.listdir(backup))
