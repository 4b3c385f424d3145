"""The Keras callbacks behind :func:`deepvre.training.checkpoints.resume_callbacks` (imports Keras).

They replace Keras' ``ModelCheckpoint`` and ``BackupAndRestore``, which write their files in place:
a kill during a write left a file that the next run could not open.
"""

import os

import keras

from deepvre import atomic

from . import checkpoints, progress


class SaveModel(keras.callbacks.Callback):
    """Save the whole model to ``path`` (a ``.keras`` file) after every epoch, atomically."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        for path in atomic.leftovers(self.path):
            os.remove(path)  # the temp file of a save that was killed

    def on_epoch_end(self, epoch, logs=None):
        with atomic.replacing(self.path, suffix=".keras") as tmp:
            self.model.save(tmp)


class Checkpoint(keras.callbacks.Callback):
    """Checkpoint to ``backup`` after every epoch but the last; resume from it; remove it when ``fit`` completes.

    No checkpoint after the last epoch: a run killed before ``fit`` returns redoes that epoch rather
    than resuming into an empty history.
    """

    def __init__(self, backup):
        super().__init__()
        self.backup = backup

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError("build the model (call it on a batch, or give it an Input) before fit: "
                             "a checkpoint loads into its variables")
        # Keras' own hook for a resumed fit (as BackupAndRestore): fit starts at this epoch
        self.model._initial_epoch = checkpoints.restore(self.model, self.backup) or None

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params.get("epochs", 0):
            checkpoints.save(self.model, self.backup, epoch + 1)

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None  # Keras keeps it: a later fit of this model starts afresh
        checkpoints.discard(self.backup)


class Progress(keras.callbacks.Callback):
    """Report ``fit`` ``name`` to ``run_dir/progress.json`` (:mod:`deepvre.training.progress`) after every epoch."""

    def __init__(self, run_dir, name):
        super().__init__()
        self.run_dir, self.name = run_dir, name
        self.state = None

    def on_train_begin(self, logs=None):
        self.state = progress.start_fit(progress.read(self.run_dir), self.name, self.params.get("epochs"))
        progress.write(self.run_dir, self.state)

    def on_epoch_end(self, epoch, logs=None):
        self.state = progress.end_epoch(self.state, epoch, logs)
        progress.write(self.run_dir, self.state)
