"""Parameter sweeps: ``--sweep key=v1,v2`` expanded to every combination, and their metrics table."""

import itertools
import math
import re

from . import parameters

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_sweep(specs):
    """``["lr=0.1,0.01", "epochs=1,2"]`` to ``{"lr": ["0.1", "0.01"], "epochs": ["1", "2"]}``."""
    axes = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not NAME.match(key):
            raise ValueError(f"--sweep {spec!r}: expected NAME=VALUE1,VALUE2,...")
        if key in axes:
            raise ValueError(f"--sweep {spec!r}: {key!r} is swept twice")
        items = [v.strip() for v in values.split(",")]
        if not values.strip() or any(v == "" for v in items):
            raise ValueError(f"--sweep {spec!r}: empty value")
        axes[key] = items
    return axes


def expand(axes):
    """The cartesian product of ``{name: [values]}`` as a list of ``{name: value}``, in order."""
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


def combinations(declared, given, axes, allow_unknown=False):
    """The checked values of every run: the texts ``given`` (``-p``) with each combination of
    ``axes``'s texts, parsed and checked by the notebook's ``declared`` parameters, all before
    any run starts (so a bad value does not stop a sweep halfway). One run when nothing is swept."""
    return [parameters.check(declared, parameters.from_texts(declared, {**given, **combo}), allow_unknown)
            for combo in (expand(axes) if axes else [{}])]


def record(notebook, axes):
    """What each run of one sweep records in its ``params.json`` (``sweep``): a fresh id, in a run
    id's form, and the swept names. The runs page groups a sweep's runs by it."""
    from .store import new_run_id

    return {"id": f"sweep-{new_run_id(notebook)}", "axes": list(axes)}


def _cell(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def metrics_table(rows, swept):
    """A text table: one row per run with its id, state, swept values and scalar metrics.

    ``rows`` are dicts with ``id``, ``state``, ``parameters`` and ``metrics`` (or None).
    """
    metric_names = []
    for row in rows:
        for key, value in (row.get("metrics") or {}).items():
            if key not in metric_names and (value is None or isinstance(value, (int, float, str))):
                metric_names.append(key)
    header = ["run", "state", *swept, *metric_names]
    body = [
        [row["id"], row["state"], *(_cell(row["parameters"].get(k)) for k in swept),
         *(_cell((row.get("metrics") or {}).get(k)) for k in metric_names)]
        for row in rows
    ]
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *body]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
