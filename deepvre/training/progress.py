"""A run's training progress: ``progress.json`` in the run folder, written after every epoch.

Under ``deepvre run`` (``$DEEPVRE_RUN_DIR`` set) :func:`deepvre.training.checkpoints.resume_callbacks`
adds :class:`deepvre.training.callbacks.Progress`, so every ``fit`` of the use-case notebooks
reports here. The file (written atomically, so a reader never sees half of it)::

    {"fit": "transfer-lr0-s0", "fits": 3,          # the current fit's name; fits started in this run
     "epoch": 2, "epochs": 8,                      # epochs done of this fit
     "fit_started": 1764524000.1, "updated": 1764524031.7,   # Unix seconds
     "history": [{"epoch": 1, "time": 1764524015.2, "seconds": 15.1, "logs": {"loss": 0.61, ...}}, ...]}

The history holds the current fit's epochs (its training curves); :func:`remaining_seconds`
estimates what is left of that fit from the mean epoch time.
"""

import math
import os
import time

from deepvre import atomic

FILE = "progress.json"
KEPT = 1000  # epochs kept in the history of one fit


def path(run_dir):
    return os.path.join(run_dir, FILE)


def as_number(value):
    """A log value as a JSON number (None for NaN/inf or what is not a number)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def start_fit(previous, name, epochs, now=None):
    """The progress when fit ``name`` of ``epochs`` epochs starts (``previous``: the file's content or None)."""
    now = time.time() if now is None else now
    fits = int((previous or {}).get("fits", 0)) + 1
    return {"fit": name, "fits": fits, "epoch": 0, "epochs": epochs, "fit_started": now, "updated": now,
            "history": []}


def end_epoch(progress, epoch, logs, now=None):
    """``progress`` after epoch ``epoch`` (0-based, as Keras counts) with its ``logs``."""
    now = time.time() if now is None else now
    history = list(progress.get("history", []))
    last = history[-1]["time"] if history else progress.get("fit_started", now)
    history.append({"epoch": epoch + 1, "time": now, "seconds": max(0.0, now - last),
                    "logs": {str(k): as_number(v) for k, v in (logs or {}).items()}})
    return {**progress, "epoch": epoch + 1, "updated": now, "history": history[-KEPT:]}


def remaining_seconds(progress):
    """Seconds left of the current fit (mean epoch time x epochs left), or None before its first epoch."""
    history = (progress or {}).get("history") or []
    epochs = (progress or {}).get("epochs")
    if not history or not isinstance(epochs, int):
        return None
    mean = sum(h["seconds"] for h in history) / len(history)
    return max(0, epochs - progress["epoch"]) * mean


def callbacks(name):
    """``[Progress]`` for a ``fit`` named ``name`` under ``deepvre run``, else ``[]``: for fits that
    take no :func:`~deepvre.training.checkpoints.resume_callbacks` (which include it)."""
    from deepvre.site.environment import Environment

    run_dir = Environment().run_dir
    if not run_dir:
        return []
    from .callbacks import Progress

    return [Progress(run_dir, name)]


def write(run_dir, progress):
    atomic.write_json(path(run_dir), progress)


def read(run_dir):
    """The run's progress, or None when it wrote none (or a file that is not JSON)."""
    import json

    try:
        with open(path(run_dir)) as fh:
            data = json.load(fh)
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None
