"""Runs side by side: their parameters (which differ), final metrics and training curves.

Pure builders over :class:`deepvre.runs.store.Run` folders, for the runs page of the lab
extension (and anything else that compares runs):

- :func:`run_row` one run: id, state, sweep, parameters, scalar metrics (nested ``metrics.json``
  flattened to dotted keys), and its curves from ``progress.json`` (the last fit's epochs);
- :func:`comparison` several runs: their rows, the parameters that differ and those shared, and
  the metric columns, each with the direction that is better (:func:`better`);
- :func:`sweep_runs` the runs of one sweep (``deepvre run --sweep`` records its id in each run's
  ``params.json``: :func:`deepvre.runs.sweep.record`).
"""

import math

from deepvre.training import progress

# a name with one of these words is better lower (loss, mae, val_error, seconds); any other, higher
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "rmse", "perplexity", "seconds", "time", "duration")
MAX_RUNS = 200  # runs in one comparison


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def scalar_metrics(metrics, prefix=""):
    """``{"transfer": {"accuracy": 0.9}, "epochs": 2, "curve": [..]}`` to ``{"transfer.accuracy": 0.9,
    "epochs": 2}``: the finite numbers, nested keys joined by dots (lists, texts and NaN left out)."""
    out = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalar_metrics(value, f"{name}."))
        elif _number(value) is not None:
            out[name] = value
    return out


def better(name):
    """``"lower"`` for a metric whose name says loss, error or time (its last part), else ``"higher"``."""
    last = name.rsplit(".", 1)[-1].lower()
    return "lower" if any(word in last for word in LOWER_IS_BETTER) else "higher"


def curves(training):
    """A run's training curves from its ``progress.json`` (``training``, or None): ``{"fit": NAME,
    "series": {metric: [[epoch, value], ...]}}``, the learning rate left out; None without epochs."""
    history = (training or {}).get("history") or []
    series = {}
    for entry in history:
        for key, value in (entry.get("logs") or {}).items():
            if key in ("learning_rate", "lr") or _number(value) is None:
                continue
            series.setdefault(key, []).append([entry.get("epoch"), value])
    if not series:
        return None
    return {"fit": training.get("fit"), "fits": training.get("fits"), "series": series}


def run_row(run):
    """What the runs page shows of one run (read from its folder now); its parameters are every
    value the notebook ran with: its declared defaults and the values the run set."""
    params = run.params
    status = run.status
    return {
        "id": run.id,
        "state": status.get("state", "unknown"),
        "started": status.get("started") or status.get("created"),
        "finished": status.get("finished"),
        "notebook": params.get("notebook"),
        "sweep": (params.get("sweep") or {}).get("id"),
        # the notebook's defaults (``runs.start`` records them) with the values this run set
        "parameters": {**(params.get("defaults") or {}), **(params.get("parameters") or {})},
        "metrics": scalar_metrics(run.metrics),
        "curves": curves(progress.read(run.path)),
    }


def _same(values):
    first = values[0]
    return all(v == first for v in values[1:])


def comparison(runs):
    """``runs`` side by side: ``{"runs": [run_row...], "parameters": {"differ": [...], "same": {...}},
    "metrics": [{"name", "better"}], "curves": [metric names]}``. A parameter a run does not set
    counts as different (None) from one that sets it."""
    if len(runs) > MAX_RUNS:
        raise ValueError(f"compare at most {MAX_RUNS} runs at once, not {len(runs)}")
    rows = [run_row(r) for r in runs]
    names = []
    for row in rows:
        names += [k for k in row["parameters"] if k not in names]
    differ = [n for n in names if not _same([row["parameters"].get(n) for row in rows])]
    same = {n: rows[0]["parameters"].get(n) for n in names if n not in differ}
    metrics = []
    for row in rows:
        metrics += [k for k in row["metrics"] if k not in metrics]
    plotted = []
    for row in rows:
        plotted += [k for k in ((row["curves"] or {}).get("series") or {}) if k not in plotted]
    return {
        "runs": rows,
        "parameters": {"differ": differ, "same": same},
        "metrics": [{"name": m, "better": better(m)} for m in metrics],
        "curves": plotted,
    }


def sweep_runs(runs, sweep_id):
    """The runs (of ``runs``, in their order) that ``deepvre run --sweep`` started as sweep ``sweep_id``."""
    return [r for r in runs if (r.params.get("sweep") or {}).get("id") == sweep_id]
