"""The runs page's data: ``GET /deepvre/api/compare?run=ID&run=ID`` or ``?sweep=SWEEP``.

One call returns several runs side by side (:func:`deepvre.runs.compare.comparison`: parameters
with those that differ, final metrics, training curves), either the runs named or every run of one
sweep (``deepvre run --sweep``). Only this server's runs folder is read: the server's user's own
runs. Every id is checked by :func:`deepvre.runs.store.check_run_id` (no ``/``, no ``..``) before
it names a folder; a bad one is a 400, an unknown one a 404, and nothing is read for either.
"""

import os

from deepvre.errors import NotFound

from . import backends
from .cards import _inside
from .handlers import Base, api

MAX_NAMED = 24  # runs named in one request (a sweep may hold more)


def compare_runs(runs_dir, root, ids=(), sweep=None):
    """The comparison of the runs ``ids``, or of sweep ``sweep``'s runs, in ``runs_dir``; notebook
    paths relative to ``root`` (the workspace) when inside it, else the file name only."""
    from deepvre.runs import compare, store

    if bool(ids) == bool(sweep):
        raise ValueError("name the runs to compare (run=ID, repeated) or one sweep (sweep=ID)")
    if sweep:
        store.check_run_id(sweep)
        runs = compare.sweep_runs(backends.list_runs(runs_dir), sweep)
        if not runs:
            raise NotFound(f"no runs of sweep {sweep!r} in your runs")
    else:
        if len(ids) > MAX_NAMED:
            raise ValueError(f"compare at most {MAX_NAMED} named runs at once (or a whole sweep)")
        for run_id in ids:
            store.check_run_id(run_id)
        runs = [backends.get_run(run_id, runs_dir) for run_id in dict.fromkeys(ids)]
    result = compare.comparison(runs)
    for row in result["runs"]:
        notebook = row["notebook"]
        row["notebook"] = (_inside(root, notebook) or os.path.basename(notebook)) if notebook else None
    recorded = (runs[0].params.get("sweep") or {}) if sweep else {}
    result["sweep"] = {"id": sweep, "axes": recorded.get("axes") or []} if sweep else None
    return result


class Compare(Base):
    @api
    async def get(self):
        """Several runs side by side (``run`` repeated) or one sweep's runs (``sweep``)."""
        return await self.blocking(compare_runs, self.runs_dir(), self.root, self.get_arguments("run"),
                                   self.get_argument("sweep", None))


def routes():
    """``(pattern, handler)`` pairs under ``/deepvre/api/`` (``handlers.handlers`` adds them)."""
    return [(r"compare", Compare)]
