"""Batch runs of notebooks: papermill underneath, executed locally or on Slurm.

The one runner used by ``deepvre run``, the Jupyter extension and DEEPaaS ``train``::

    from deepvre import runs
    run = runs.start("train.ipynb", {"epochs": 2}, detach=True)
    runs.get(run.id).status["state"]      # queued, running, done, failed, cancelled
    runs.cancel(run.id)

Each run is a folder ``RUNS_DIR/ID`` (see ``deepvre.runs.store``); ``RUNS_DIR`` is
``$DEEPVRE_RUNS_DIR`` or ``~/runs``.
"""

import signal
import time

from . import parameters as notebook_parameters
from . import store
from .backends import get_backend
from .parameters import ParameterError
from .store import TERMINAL, Run, RunNotFound, default_runs_dir

__all__ = [
    "ParameterError", "Run", "RunNotFound", "cancel", "default_runs_dir", "get", "list_runs", "start",
    "wait",
]


def start(notebook, parameters=None, backend="local", detach=False, runs_dir=None, profile=None,
          allow_unknown=False, kernel_name=None, slurm=None, declared=None, injected=False, sweep=None):
    """Run ``notebook`` with ``parameters``; return its Run.

    The values are checked against the notebook's declared parameters
    (:func:`deepvre.runs.parameters.check`: a string for a number is parsed by its type; an
    undeclared name is a ParameterError unless ``allow_unknown``) and injected once, into the
    run's ``input.ipynb``. ``declared`` is the notebook's :func:`~deepvre.runs.parameters.inspect`
    when the caller has read it already; ``injected`` says ``notebook`` already holds these
    values (written by :func:`~deepvre.runs.parameters.inject`), so it runs as it is.
    ``profile`` is a hardware profile (dict) whose Slurm terms the slurm backend uses, with the
    site's ``slurm:`` settings section ``slurm`` (account, qos, gres name; ``None``: defaults).
    ``sweep`` (``deepvre run --sweep``: :func:`deepvre.runs.sweep.record`) goes into ``params.json``,
    which groups the sweep's runs. Without ``detach`` this returns when the run has finished
    (whatever its state).
    """
    module = get_backend(backend)
    declared = notebook_parameters.inspect(notebook) if declared is None else declared
    parameters = notebook_parameters.check(declared, dict(parameters or {}), allow_unknown)
    run = store.create_run(runs_dir, notebook, parameters, backend, profile, kernel_name)
    if parameters and not injected:
        notebook_parameters.inject(run.file(store.INPUT), run.file(store.INPUT), parameters,
                                   kernel_name=kernel_name, replace=True)
    # the worker reads a default (output_dir's) here, not from the notebook again
    params = store.read_json(run.file(store.PARAMS))
    store.write_json(run.file(store.PARAMS),
                     {**params, "defaults": {name: f["value"] for name, f in declared.items()},
                      **({"sweep": sweep} if sweep else {})})
    submitted = module.submit(run, profile, slurm=slurm)
    if not detach:
        try:
            if hasattr(submitted, "wait"):
                submitted.wait()
            wait(run)
        except KeyboardInterrupt:
            cancel(run.id, runs_dir)
            raise
    return run


def refresh(run):
    """Mark a run whose worker or job vanished without finishing as failed; return its status."""
    status = run.status
    if status.get("state") in TERMINAL:
        return status
    alive = get_backend(status.get("backend", "local")).alive(run)
    if alive is False:
        status = run.status  # the worker may have finished meanwhile
        if status.get("state") not in TERMINAL and status.get("cancel_requested"):
            status = store.update_status(run.path, state="cancelled", finished=store.now())
        elif status.get("state") not in TERMINAL:
            job = status.get("slurm_job_id")
            where = f"Slurm job {job}" if job else f"worker process {status.get('pid')}"
            status = store.update_status(
                run.path, state="failed", finished=store.now(),
                error=f"{where} ended without finishing the run (see run.log)",
            )
    return status


def get(run_id, runs_dir=None):
    """The Run ``run_id`` (status refreshed); RunNotFound if none, ValueError for an unsafe id."""
    run = store.load(run_id, runs_dir)
    refresh(run)
    return run


def list_runs(runs_dir=None):
    """Every run in ``runs_dir``, oldest first, statuses refreshed."""
    runs = store.scan(runs_dir)
    for run in runs:
        refresh(run)
    return runs


def wait(run, timeout=None, interval=0.5):
    """Poll until the run reaches a final state; return its status (TimeoutError after ``timeout`` s)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = refresh(run)
        if status.get("state") in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run.id} still {status.get('state')} after {timeout} s")
        time.sleep(interval)


def cancel(run_id, runs_dir=None, timeout=60):
    """Stop a queued or running run; return its final status (unchanged if it had finished)."""
    run = store.load(run_id, runs_dir)
    status = run.status
    if status.get("state") in TERMINAL:
        return status
    store.update_status(run.path, cancel_requested=store.now())
    backend = get_backend(status.get("backend", "local"))
    backend.cancel(run)
    deadline = time.monotonic() + timeout
    while backend.alive(run) and time.monotonic() < deadline:
        time.sleep(0.2)
    if backend.alive(run) and status.get("backend", "local") == "local":
        backend.cancel(run, signal.SIGKILL)
    status = refresh(run)
    if status.get("state") not in TERMINAL:
        status = store.update_status(run.path, state="cancelled", finished=store.now())
    return status
