"""``metrics.json`` and the metrics table.

Metrics are a (nested) mapping of names to numbers. :func:`write_metrics` refuses NaN, infinity
and non-numbers, naming each bad key, so a diverged run cannot publish a broken result. Strings
are allowed only for descriptive keys (``mode``, ``note``...) passed in ``text``. The ``results``
key (and ``results_NAME`` for a further task) holds the notebook's comparison (:func:`deepvre.science.evaluation.comparison`): labels and a
verdict in words, whose numbers must be finite as well.
"""

import json
import math
import os

from deepvre import atomic

FILE = "metrics.json"


def flatten(metrics, prefix=""):
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (the marketplace keeps one level)."""
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


REPORT = "results"
ARM_NUMBERS = ("mean", "low", "high", "half_width", "sd")


def report_keys(metrics):
    """The comparison blocks' keys: ``results``, then any ``results_NAME`` (a second task), sorted."""
    return [k for k in sorted(metrics) if k == REPORT or k.startswith(REPORT + "_")]


def _report_problems(block):
    found = []
    for k, arm in enumerate((block or {}).get("arms") or []):
        values = [(name, arm.get(name)) for name in ARM_NUMBERS]
        values += [(f"per_seed.{i}", v) for i, v in enumerate(arm.get("per_seed") or [])]
        found += [f"arms.{k}.{name}: {v!r} is not a finite number" for name, v in values
                  if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)]
    return found


def problems(metrics, text=("mode", "note", "metric", "data")):
    """Every key whose value is not a finite number (strings allowed for the ``text`` keys)."""
    found = [problem for key in report_keys(metrics) for problem in _report_problems(metrics[key])]
    for key, value in flatten({k: v for k, v in metrics.items() if k not in report_keys(metrics)}).items():
        last = key.rsplit(".", 1)[-1]
        if isinstance(value, str) and last in text:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            found.append(f"{key}: {value!r} is not a number")
        elif not math.isfinite(value):
            found.append(f"{key}: {value!r} is not finite")
    return found


def to_python(value):
    """numpy scalars and arrays (and nested containers of them) as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def write_metrics(folder, metrics):
    """Check ``metrics`` and write ``folder/metrics.json``; returns its path."""
    metrics = to_python(metrics)
    found = problems(metrics)
    if found:
        raise ValueError("metrics are not finite numbers:\n  " + "\n  ".join(found))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, FILE)
    atomic.write_json(path, metrics, indent=2, sort_keys=True, allow_nan=False)
    return path


def read_metrics(folder):
    with open(os.path.join(folder, FILE)) as fh:
        return json.load(fh)


def compare(transfer, scratch, metric, higher_is_better=True):
    """The transfer-vs-scratch record: both values of ``metric`` and the gain of transfer."""
    a, b = float(transfer[metric]), float(scratch[metric])
    return {
        "metric": metric,
        "transfer": a,
        "scratch": b,
        "gain": (a - b) if higher_is_better else (b - a),
    }


def metrics_table(metrics):
    """A pandas table, one row per run (``transfer``, ``scratch``...), one column per metric.

    Top-level keys whose values are mappings of numbers become rows; the rest go in a row ``run``.
    """
    import pandas as pd

    rows, other = {}, {}
    for key, value in metrics.items():
        if isinstance(value, dict) and all(not isinstance(v, dict) for v in value.values()):
            rows[key] = value
        elif not isinstance(value, dict):
            other[key] = value
    if other:
        rows["run"] = other
    return pd.DataFrame.from_dict(rows, orient="index")


def balanced_accuracy(y_true, y_pred, n_classes):
    """Mean recall over the classes present in ``y_true`` (accuracy that imbalance cannot inflate)."""
    import numpy as np

    from .plots import confusion

    matrix = confusion(y_true, y_pred, n_classes)
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present])) if present.any() else float("nan")
