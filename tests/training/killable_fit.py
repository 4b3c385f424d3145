"""A tiny seeded ``fit`` with ``resume_callbacks``, run in a child process that the test kills.

:func:`attempt` runs in a process forked from a server that imported Keras and TensorFlow once
(``multiprocessing``'s forkserver with this module preloaded) and ran no TensorFlow op: each attempt
is a new process that knows only what is on disk. It tells the test what it does over ``conn``:

- ``("step", n)`` after the n-th batch of this attempt;
- ``("paused", where)``: it stopped at the moment the test asked for, inside a write, and waits there
  for a SIGKILL;
- ``("warning", text)`` for each warning of the checkpoints module (a kill must never cause one);
- ``("done", result)`` with the final metrics, or ``("error", traceback)``.
"""

import logging
import os
import shutil
import traceback

import h5py
import keras
import numpy as np
import tensorflow as tf

from deepvre import atomic
from deepvre.training import callbacks, checkpoints  # noqa: F401  (preloaded with Keras)

EPOCHS, BATCH, SAMPLES = 5, 16, 32
NAME = "run"

# Where a pause can be asked for: the n-th call of one of these in the attempt
HOOKS = {
    "h5": (h5py.Group, "create_dataset"),  # inside a weights or model file, half written
    "fsync": (os, "fsync"),  # a temp file (or the folder) written but not yet flushed
    "replace": (os, "replace"),  # just after a rename, before the folder's flush or the manifest
    "remove": (os, "remove"),  # pruning old checkpoints, sweeping temp files
    "unlink": (os, "unlink"),  # removing the backup folder after the last epoch
}


def data():
    rng = np.random.default_rng(0)
    x = rng.random((SAMPLES, 8)).astype("float32")
    return x, x @ np.linspace(-1, 1, 8, dtype="float32")[:, None]


def model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    m.compile(keras.optimizers.Adam(1e-2), "mse", run_eagerly=True)  # no tracing: a fast start
    return m


def what(kind, args):
    """What a hooked call works on: a file, a folder entry, an HDF5 dataset."""
    if kind == "h5":
        name = args[0].file.filename  # a weights file, or the model file's weights (in memory, then zipped)
        return f"a dataset in {args[0].name} of {'the .keras' if name.startswith('<') else os.path.basename(name)}"
    if kind == "fsync":
        return os.path.basename(os.readlink(f"/proc/self/fd/{args[0]}"))
    return os.path.basename(args[-1] if kind == "replace" else args[0])


def hook_writes(pause, conn):
    """Count the calls of each hook; make the n-th call of ``pause = (hook, n)`` stop and wait (forever) to be killed."""
    calls = dict.fromkeys(HOOKS, 0)

    def wrap(kind, real):
        def hooked(*args, **kwargs):
            calls[kind] += 1
            if pause == (kind, calls[kind]):
                done = real(*args, **kwargs) if kind == "replace" else None
                conn.send(("paused", f"{kind} #{calls[kind]}: {what(kind, args)}"))
                conn.recv()  # never answered: the test kills us here
                return done
            return real(*args, **kwargs)
        return hooked

    for kind, (owner, name) in HOOKS.items():
        setattr(owner, name, wrap(kind, getattr(owner, name)))
    return calls


class Relay(logging.Handler):
    def __init__(self, conn):
        super().__init__(logging.WARNING)
        self.conn = conn

    def emit(self, record):
        self.conn.send(("warning", record.getMessage()))


def attempt(folder, pause, conn):
    """One run of ``fit`` into ``folder`` (resuming what is there); ``pause``: ``(hook, n)`` or None."""
    try:
        os.setpgid(0, 0)  # its own process group: the test kills the group
        logging.getLogger(checkpoints.__name__).addHandler(Relay(conn))
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_op_determinism()
        x, y = data()
        m = model()
        steps = [0]

        def step(batch, logs):
            steps[0] += 1
            conn.send(("step", steps[0]))

        calls = hook_writes(tuple(pause) if pause else None, conn)
        m.fit(x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0,
              callbacks=checkpoints.resume_callbacks(folder, NAME) + [keras.callbacks.LambdaCallback(on_batch_end=step)])
        saved = keras.saving.load_model(os.path.join(folder, f"{NAME}.keras"), safe_mode=True)
        result = {"loss": float(m.evaluate(x, y, verbose=0)),
                  "weights": [w.tolist() for w in m.get_weights()],
                  "model_file_is_final": all(map(np.array_equal, saved.get_weights(), m.get_weights())),
                  "backup_left": os.path.exists(checkpoints.checkpoint_paths(folder, NAME)[0]),
                  "calls": dict(calls)}
        atomic.write_json(os.path.join(folder, "result.json"), result)
        conn.send(("done", result))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


def partials(folder):
    """Temp files of killed writes in ``folder`` and its backup folder."""
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names if atomic.PARTIAL in n]
    return found


def fresh(folder):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
