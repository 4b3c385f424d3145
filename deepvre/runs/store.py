"""The runs store: one folder per run under the runs directory.

``RUNS_DIR/ID/`` holds:

- ``params.json``: the notebook, its parameters, the backend and profile;
- ``input.ipynb``: a copy of the notebook as it was when the run started;
- ``status.json``: state (queued, running, done, failed, cancelled), pid or
  Slurm job id, started/finished, progress (code cells done/total), error;
- ``output.ipynb``: the executed notebook, saved after every cell by papermill;
- ``metrics.json``: written by the notebook, if it writes one;
- ``run.log``: the notebook's stdout/stderr and the runner's messages;
- ``environment.json``: Python, platform, packages, lock, GPUs (``deepvre.runs.platform``).

A run folder is never overwritten: ids are fresh and folders are made with
``os.mkdir``, which fails on an existing one.
"""

import datetime
import fcntl
import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass

from deepvre import atomic
from deepvre.errors import NotFound
from deepvre.site.environment import Environment

STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL = frozenset({"done", "failed", "cancelled"})
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

PARAMS, STATUS, OUTPUT, INPUT, METRICS, LOG = (
    "params.json", "status.json", "output.ipynb", "input.ipynb", "metrics.json", "run.log",
)


class RunNotFound(NotFound):
    """No run with this id in the runs directory."""


def default_runs_dir():
    """``$DEEPVRE_RUNS_DIR``, else ``~/runs``."""
    return os.path.abspath(os.path.expanduser(Environment().runs_dir or "~/runs"))


def now():
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def check_run_id(run_id):
    """Return ``run_id`` if it is a safe folder name, else raise ValueError."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id) or ".." in run_id:
        raise ValueError(
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' "
            "(at most 128, no '..', no '/')"
        )
    return run_id


def new_run_id(notebook):
    """``<notebook stem>-<UTC time>-<random>``, e.g. ``train-20261123-164618-a3f09c``."""
    stem = os.path.splitext(os.path.basename(notebook))[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:40] or "run"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return check_run_id(f"{stem}-{stamp}-{secrets.token_hex(3)}")


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def write_json(path, data):
    """Write atomically: readers, and a worker killed mid-write, never leave half a file."""
    atomic.write_json(path, data, indent=1, sort_keys=True, default=str)


@contextmanager
def _locked(run_path):
    with open(os.path.join(run_path, ".status.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_status(run_path, **fields):
    """Merge ``fields`` into ``status.json`` under a lock (the worker and the submitter both write)."""
    with _locked(run_path):
        path = os.path.join(run_path, STATUS)
        status = read_json(path, {})
        status.update(fields)
        write_json(path, status)
        return status


@dataclass
class Run:
    """One run folder. ``status`` and ``metrics`` are read from disk on each access."""

    id: str
    path: str

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def params(self):
        return read_json(self.file(PARAMS), {})

    @property
    def status(self):
        return read_json(self.file(STATUS), {})

    @property
    def state(self):
        return self.status.get("state")

    @property
    def metrics(self):
        """The notebook's ``metrics.json`` as a dict, or None if it wrote none (or not JSON)."""
        try:
            data = read_json(self.file(METRICS))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def to_dict(self):
        return {
            "id": self.id, "path": self.path, "params": self.params,
            "status": self.status, "metrics": self.metrics,
            "output": self.file(OUTPUT), "log": self.file(LOG),
        }


def create_run(runs_dir, notebook, parameters, backend, profile=None, kernel_name=None):
    """Make a new run folder in state ``queued`` and return its Run."""
    runs_dir = os.path.abspath(runs_dir or default_runs_dir())
    os.makedirs(runs_dir, exist_ok=True)
    run_id = new_run_id(notebook)
    path = os.path.join(runs_dir, run_id)
    os.mkdir(path)  # FileExistsError rather than overwriting
    shutil.copyfile(notebook, os.path.join(path, INPUT))
    write_json(os.path.join(path, PARAMS), {
        "notebook": os.path.abspath(notebook), "parameters": parameters, "backend": backend,
        "profile": profile, "kernel_name": kernel_name, "created": now(),
    })
    write_json(os.path.join(path, STATUS), {
        "id": run_id, "state": "queued", "backend": backend, "created": now(),
        "progress": {"done": 0, "total": None}, "error": None,
    })
    open(os.path.join(path, LOG), "a").close()
    return Run(run_id, path)


def load(run_id, runs_dir=None):
    """The Run with this id; RunNotFound if there is none, ValueError for an unsafe id."""
    check_run_id(run_id)
    path = os.path.join(os.path.abspath(runs_dir or default_runs_dir()), run_id)
    if not os.path.isfile(os.path.join(path, STATUS)):
        raise RunNotFound(f"no run {run_id!r} in {os.path.dirname(path)}")
    return Run(run_id, path)


def scan(runs_dir=None):
    """Every run in ``runs_dir``, oldest first."""
    runs_dir = os.path.abspath(runs_dir or default_runs_dir())
    if not os.path.isdir(runs_dir):
        return []
    runs = []
    for name in os.listdir(runs_dir):
        if RUN_ID.match(name) and os.path.isfile(os.path.join(runs_dir, name, STATUS)):
            runs.append(Run(name, os.path.join(runs_dir, name)))
    return sorted(runs, key=lambda r: (r.status.get("created") or "", r.id))
