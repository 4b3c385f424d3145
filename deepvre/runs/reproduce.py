"""Re-run a published version's lineage and compare: ``deepvre market verify NAME:VERSION``.

The version's executed notebook (its artifact) runs again through :func:`deepvre.runs.start`, with
the parameters papermill injected into it at training time (its ``metadata.papermill.parameters``:
the seed among them) and ``publish=False``; the input files the lineage names
(``deepvre.inputs``, sha256 each) are checked first. The outcome is one of:

- ``could not run``: the lineage has no notebook, an input file is missing or changed (each named),
  or the re-run failed (its error);
- ``drifted``: a metric differs from the published one by more than its tolerance (each named, with
  the difference), or is missing;
- ``verified``: every compared metric is within its tolerance.

Tolerances are what the notebook declares in its metadata, ``{"deepvre": {"verify": {"tolerance":
{"transfer.accuracy": 0.1, ...}}}}``: those of them the version published, each within that absolute
difference (a notebook that publishes two models declares the metrics of both). Undeclared, every
published number but timings (names with ``seconds``) is compared within :data:`DEFAULT_TOLERANCE`,
and the reason says so.
"""

import json
import os
import tempfile

from ..checksums import file_sha256
from . import platform

DEFAULT_TOLERANCE = 1e-6


def declared_tolerance(notebook):
    """``{metric: tolerance}`` the notebook (a dict) declares, or None."""
    found = ((notebook.get("metadata") or {}).get("deepvre") or {}).get("verify", {}).get("tolerance")
    return dict(found) if isinstance(found, dict) and found else None


def numbers(metrics):
    """A metrics.json's numbers as the catalog keeps them (flattened; the comparison blocks left out)."""
    from ..training.report import flatten, report_keys, to_python

    flat = flatten(to_python({k: v for k, v in (metrics or {}).items() if k not in report_keys(metrics or {})}))
    return {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def compare(published, reproduced, tolerance=None):
    """``(result, reason, table)``: each compared metric's published and reproduced values, their
    difference and tolerance (a pure function). ``tolerance``: ``{metric: absolute}``; None: every
    published number but timings, within :data:`DEFAULT_TOLERANCE`."""
    published, reproduced = numbers(published), numbers(reproduced)
    note = ""
    if tolerance is not None:  # a notebook publishing two models declares both's: this one's apply
        tolerance = {k: v for k, v in tolerance.items() if k in published}
        if not tolerance:
            note = "; the notebook's tolerances name none of this version's metrics"
    if not tolerance:
        tolerance = {k: DEFAULT_TOLERANCE for k in published if "seconds" not in k}
        note = f" (the notebook declares no tolerance{note}: every number but timings within {DEFAULT_TOLERANCE:g})"
    table, drifted = {}, []
    for metric, allowed in sorted(tolerance.items()):
        a, b = published.get(metric), reproduced.get(metric)
        difference = None if a is None or b is None else b - a
        table[metric] = {"published": a, "reproduced": b, "difference": difference, "tolerance": float(allowed)}
        if b is None:
            drifted.append(f"{metric}: the re-run did not report it")
        elif abs(difference) > allowed:
            drifted.append(f"{metric}: {b:.6g} against {a:.6g} published, off by {difference:+.4g} "
                           f"(tolerance {allowed:g})")
    if drifted:
        return "drifted", "; ".join(drifted) + note, table
    return "verified", f"{len(table)} metrics within their tolerance{note}", table


def check_inputs(inputs):
    """The input files ``{path: sha256}`` that are missing or changed, each ``(path, "missing" or
    "changed")``. The record the marketplace keeps says only "changed or missing" (:func:`reproduce`):
    a lineage is its publisher's, and must not learn which files exist on the verifier's machine."""
    problems = []
    for path, digest in sorted((inputs or {}).items()):
        if not os.path.isfile(path):
            problems.append((path, "missing"))
        elif file_sha256(path) != digest:
            problems.append((path, "changed"))
    return problems


def reproduce(market, name, version, runs_dir=None, kernel_name=None, workdir=None):
    """Re-run ``name:version`` and compare (see the module docstring); returns ``{"result", "reason",
    "metrics", "environment", "run", "differences"}`` (``differences``: :func:`platform.diff` from the
    published environment to this one; ``inputs``: ``{path: "missing" or "changed"}``, for this user only)."""
    from .. import runs

    entry = market.show(name, version)
    section = entry["metadata"].get("deepvre") or {}
    environment = platform.capture()
    outcome = {"name": name, "version": entry["version"], "metrics": {}, "environment": environment, "run": None,
               "differences": platform.diff(section.get("environment") or {}, environment)}

    def done(result, reason, **more):
        return {**outcome, "result": result, "reason": reason, **more}

    notebook_name = (section.get("training") or {}).get("notebook")
    if not notebook_name or notebook_name not in entry["files"]:
        return done("could not run", "the lineage names no executed notebook to re-run")
    problems = check_inputs(section.get("inputs"))
    if problems:
        return done("could not run", f"{len(problems)} input files changed or missing (sha256 against the "
                    f"lineage): " + ", ".join(path for path, _ in problems), inputs=dict(problems))
    with tempfile.TemporaryDirectory(prefix=f"deepvre-verify-{name}-") as scratch:  # the run keeps its copy
        workdir = workdir or scratch
        market.pull(name, entry["version"], workdir, overwrite=True)
        notebook = os.path.join(workdir, f"verify-{name}.ipynb")  # the run's id starts with it
        os.replace(os.path.join(workdir, notebook_name), notebook)
        with open(notebook) as fh:
            nb = json.load(fh)
        parameters = dict(((nb.get("metadata") or {}).get("papermill") or {}).get("parameters") or {})
        parameters.update(publish=False, executed_notebook="")  # a check never publishes
        run = runs.start(notebook, parameters, runs_dir=runs_dir, allow_unknown=True, kernel_name=kernel_name)
    status = run.status
    if status.get("state") != "done":
        return done("could not run", f"the re-run {run.id} {status.get('state')}: {status.get('error')}", run=run.path)
    folder = (section.get("training") or {}).get("output")
    path = os.path.realpath(os.path.join(run.path, folder, "metrics.json") if folder else run.file("metrics.json"))
    if not path.startswith(os.path.realpath(run.path) + os.sep):  # the lineage is its publisher's word
        return done("could not run", f"the lineage's training.output {folder!r} leaves the run's folder", run=run.path)
    try:
        with open(path) as fh:
            reproduced = json.load(fh)
    except (OSError, ValueError) as err:
        return done("could not run", f"the re-run {run.id} wrote no metrics.json ({err})", run=run.path)
    published = section.get("metrics") or {}
    result, reason, table = compare(published, reproduced, declared_tolerance(nb))
    return done(result, reason, metrics=table, run=run.path)


def claim(outcome):
    """What ``deepvre market verify`` sends the marketplace (:mod:`deepvre.market.verifications`)."""
    return {k: outcome[k] for k in ("result", "reason", "metrics", "environment")}
