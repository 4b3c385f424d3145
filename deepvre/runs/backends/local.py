"""Local backend: the worker runs as a detached process on this machine.

The worker starts a new session (``start_new_session=True``): no controlling
terminal, its own process group, so it survives logout and a hub or server
restart. Cancel signals its process group.
"""

import os
import signal
import socket
import subprocess
import sys

from ...site import environment
from .. import store


def worker_command(run_path, python=None):
    """The command line that executes a run folder."""
    return [python or sys.executable, "-m", "deepvre.runs.execute", run_path]


def submit(run, profile=None, slurm=None):
    """Start the worker; return the Popen (the caller may wait on it). ``profile`` and ``slurm``
    are for the Slurm backend."""
    with open(run.file(store.LOG), "ab") as log:
        proc = subprocess.Popen(
            worker_command(run.path), cwd=run.path, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, environment.RUN_ID: run.id, environment.RUN_DIR: run.path},
        )
    store.update_status(run.path, pid=proc.pid, pgid=proc.pid, host=socket.gethostname())
    return proc


def _process(status):
    """The worker's psutil.Process if it still runs; None if gone; False if on another host."""
    import psutil

    pid = status.get("pid")
    if not pid:
        return None
    if status.get("host") and status["host"] != socket.gethostname():
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        created = status.get("pid_created")
        if created and abs(proc.create_time() - created) > 1:
            return None  # the pid was reused
        return proc
    except psutil.NoSuchProcess:
        return None


def alive(run):
    status = run.status
    if not status.get("pid"):
        return None  # not started yet
    proc = _process(status)
    return None if proc is False else proc is not None


def cancel(run, sig=signal.SIGTERM):
    """Signal the worker's process group; return whether there was one to signal."""
    status = run.status
    if _process(status) in (None, False):
        return False
    try:
        os.killpg(status.get("pgid") or status["pid"], sig)
    except ProcessLookupError:
        return False
    return True
