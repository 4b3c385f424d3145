"""Execute one run folder with papermill: the worker every backend starts.

``python -m deepvre.runs.execute RUN_DIR`` reads ``params.json``, runs
``input.ipynb`` with papermill as it is (``deepvre.runs.start`` injected its parameters there
already; cwd = the run folder, ``output.ipynb`` saved after every cell) and keeps
``status.json`` up to date: progress per code cell and the cell executing (``executing``), then done, failed (with the error and the
cell) or cancelled. ``environment.json`` records what it runs on (:mod:`deepvre.runs.platform`). Once the notebook has stopped, ``provenance.json`` records the final
``output.ipynb``'s sha256 and the models the run published (see ``deepvre.runs.provenance``).

Cancel = ``cancel_requested`` in ``status.json``, then SIGTERM to this process.
The kernel lives in a session of its own (jupyter_client starts it so), so the
handler kills it; papermill then stops and the partial ``output.ipynb`` stays.
A SIGTERM without a cancel request (Slurm's time limit, a shutdown) is a failure.
"""

import logging
import os
import shutil
import signal
import socket
import sys

from . import store
from .admission import admit_run
from .kernels import PrivateKernelManager
from .platform import ENVIRONMENT, capture, record_run_data
from .provenance import write_provenance
from .tracking import log_run


class RunCancelled(Exception):
    """The run was cancelled before its kernel started."""


def _kill_descendants():
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    return children


def _progress_hooks(run_path):
    progress = {"done": 0, "total": None}

    def on_notebook_start(notebook, **_):
        progress["total"] = sum(
            1 for c in notebook.cells if c.cell_type == "code" and c.source.strip()
        )
        store.update_status(run_path, progress=dict(progress))

    def on_cell_start(cell, cell_index, **_):  # the run page shows the cell executing
        store.update_status(run_path, executing=cell_index)

    def on_cell_executed(cell, cell_index, execute_reply, **_):
        if execute_reply and execute_reply.get("content", {}).get("status") == "ok":
            progress["done"] += 1
            store.update_status(run_path, progress=dict(progress), cell=cell_index)

    return {"on_notebook_start": on_notebook_start, "on_cell_start": on_cell_start,
            "on_cell_executed": on_cell_executed}


def _error_of(err):
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        return f"{err.ename}: {err.evalue}", err.cell_index
    return f"{type(err).__name__}: {err}", None


def output_folder(run_path, parameters, defaults=None):
    """The notebook's ``output_dir`` inside the run folder ``run_path`` (``parameters``' value, else
    its default, which ``deepvre.runs.start`` recorded in ``params.json``), or None without one."""
    output_dir = parameters.get("output_dir") or (defaults or {}).get("output_dir")
    return os.path.join(run_path, output_dir) if isinstance(output_dir, str) and output_dir else None


def collect_metrics(run_path, parameters, defaults=None):
    """Copy ``OUTPUT_DIR/metrics.json`` into the run folder if the notebook wrote it there.

    The use-case notebooks write into their ``output_dir`` (:func:`output_folder`), relative to
    their working directory, the run folder.
    """
    if os.path.exists(os.path.join(run_path, store.METRICS)):
        return
    folder = output_folder(run_path, parameters, defaults)
    found = os.path.join(folder, store.METRICS) if folder else None
    if found and os.path.isfile(found):
        shutil.copyfile(found, os.path.join(run_path, store.METRICS))


def execute_run(run_path):
    """Run the notebook of the run folder ``run_path``; return the final state."""
    import papermill
    import psutil

    run_path = os.path.abspath(run_path)
    params = store.read_json(os.path.join(run_path, store.PARAMS))
    cancelled = []

    def on_sigterm(signum, frame):
        cancelled.append(signum)
        if not _kill_descendants():
            raise RunCancelled()

    signal.signal(signal.SIGTERM, on_sigterm)
    if not admit_run(run_path, params):  # the hub's quotas and GPU queue (deepvre.runs.admission)
        return store.read_json(os.path.join(run_path, store.STATUS), {}).get("state", "failed")
    me = psutil.Process()
    store.update_status(
        run_path, state="running", pid=me.pid, pid_created=me.create_time(),
        host=socket.gethostname(), started=store.now(), error=None,
    )
    store.write_json(os.path.join(run_path, ENVIRONMENT), capture())  # what it ran on (deepvre.runs.platform)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        stream=sys.stderr)
    state, error, cell = "done", None, None
    try:
        papermill.execute_notebook(
            os.path.join(run_path, store.INPUT),
            os.path.join(run_path, store.OUTPUT),
            kernel_name=params.get("kernel_name"),
            cwd=run_path,
            request_save_on_cell_execute=True,
            progress_bar=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
            kernel_manager_class=PrivateKernelManager,  # channels no other account can reach
            **_progress_hooks(run_path),
        )
    except Exception as err:  # noqa: BLE001  (every failure is recorded, RunCancelled too)
        if cancelled and store.read_json(os.path.join(run_path, store.STATUS), {}).get("cancel_requested"):
            state = "cancelled"
        elif cancelled:  # SIGTERM from elsewhere: Slurm's time limit, a shutdown
            state, error = "failed", "terminated (SIGTERM) before the notebook finished, e.g. by a time limit"
        else:
            state = "failed"
            error, cell = _error_of(err)
        if error:
            print(f"deepvre run failed: {error}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    collect_metrics(run_path, params.get("parameters") or {}, params.get("defaults"))
    record_run_data(run_path)  # the data it preprocessed, in environment.json (deepvre.runs.platform)
    write_provenance(run_path, state)
    log_run(run_path, state)  # to MLflow when settings say so (deepvre.runs.tracking); never fails the run
    store.update_status(run_path, state=state, finished=store.now(), error=error, error_cell=cell)
    print(f"deepvre run {os.path.basename(run_path)}: {state}", file=sys.stderr, flush=True)
    return state


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m deepvre.runs.execute RUN_DIR", file=sys.stderr)
        return 2
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    return 0 if execute_run(argv[0]) == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
