"""Slurm backend: the worker runs as a batch job submitted with ``sbatch``.

``sbatch_script`` is a pure function from a run and a hardware profile to the
batch script. The run folder must be on a file system the compute nodes share;
the job's python is the submitting one (``sys.executable``), so a venv made from
``/usr/bin/python3`` in a shared folder works on every node.

While the job waits in Slurm's queue, each look at it (:func:`alive`, called when a run's status
is read) records Slurm's pending reason and estimated start in ``status.json`` as
``slurm_pending`` (``squeue -o %r`` and ``squeue --start``), with a plain-words line for the run
page; it goes once the job runs.
"""

import os
import shlex
import subprocess
import sys

# The one profile -> Slurm mapping, shared with the hub's Slurm mode and Dask's SLURMCluster.
from ...site import environment
from ...site.slurm_terms import sbatch_options, slurm_settings
from .. import store
from .local import worker_command


def sbatch_script(run_id, run_path, profile=None, python=None, slurm=None):
    """The batch script that executes the run folder ``run_path`` on a compute node.

    ``profile`` is a hardware profile, ``slurm`` the site's ``slurm:`` settings section
    (account, qos, gres name); ``python`` runs the worker (default: this one).
    """
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=deepvre-{run_id}",
        f"#SBATCH --output={os.path.join(run_path, store.LOG)}",
        "#SBATCH --open-mode=append",
        "#SBATCH --ntasks=1",
        *(f"#SBATCH {opt}" for opt in sbatch_options(profile, slurm)),
        f"cd {shlex.quote(run_path)}",
        f"export {environment.RUN_ID}={shlex.quote(run_id)} {environment.RUN_DIR}={shlex.quote(run_path)}",
        "exec " + shlex.join(worker_command(run_path, python)),
    ]
    return "\n".join(lines) + "\n"


def parse_job_id(out):
    """``sbatch --parsable`` prints ``JOBID`` or ``JOBID;CLUSTER``."""
    job = out.strip().split(";")[0]
    if not job.isdigit():
        raise RuntimeError(f"sbatch gave no job id: {out!r}")
    return job


def submit(run, profile=None, slurm=None):
    """Submit the run's batch script; ``slurm`` is the site's ``slurm:`` section (the caller
    loaded it; ``None``: the defaults)."""
    script = run.file("job.sbatch")
    with open(script, "w") as f:
        f.write(sbatch_script(run.id, run.path, profile, python=sys.executable, slurm=slurm_settings(slurm)))
    done = subprocess.run(["sbatch", "--parsable", script], check=False, capture_output=True, text=True)
    if done.returncode:
        store.update_status(run.path, state="failed", error=f"sbatch: {done.stderr.strip()}",
                            finished=store.now())
        raise RuntimeError(f"sbatch failed: {done.stderr.strip()}")
    job = parse_job_id(done.stdout)
    store.update_status(run.path, slurm_job_id=job)
    return job


def job_state(job):
    """The job's Slurm state (PENDING, RUNNING, COMPLETED...), or None once Slurm forgot it."""
    done = subprocess.run(["squeue", "-h", "--states=all", "-j", str(job), "-o", "%T"],
                          check=False, capture_output=True, text=True)
    state = done.stdout.strip()
    return state or None


# Slurm's commonest pending reasons (squeue %r), in plain words
REASONS = {
    "Resources": "the CPUs, memory or GPUs it asks for are in use",
    "Priority": "jobs of a higher priority wait before it",
    "Dependency": "it waits for another job to finish",
    "BeginTime": "its start time has not come yet",
    "JobHeldUser": "its owner holds it",
    "JobHeldAdmin": "an administrator holds it",
    "ReqNodeNotAvail": "the nodes it needs are not available (down, drained or reserved)",
    "PartitionTimeLimit": "its time limit is over the partition's",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "QOSMaxJobsPerUserLimit": "its owner runs as many jobs as the QOS allows",
    "AssocGrpGRES": "the account's GPU limit is reached",
    "AssocMaxJobsLimit": "the account runs as many jobs as it may",
}


def parse_field(text):
    """The first line of ``squeue -h`` output with one field, or None for nothing / N/A / None."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return None if line in ("", "N/A", "None", "Unknown", "(null)") else line


def pending_message(reason, start):
    """The run page's line: ``Waiting in Slurm's queue: <reason> (<plain words>); expected start <start>``."""
    line = "Waiting in Slurm's queue"
    if reason:
        words = REASONS.get(reason)
        line += f": {reason}" + (f" ({words})" if words else "")
    line += f"; expected start {start.replace('T', ' ')}" if start else "; no estimated start from Slurm yet"
    return line + "."


def _squeue(*args):
    return subprocess.run(["squeue", "-h", *args], check=False, capture_output=True, text=True).stdout


def pending(job):
    """``{"reason", "start", "message"}`` of a job waiting in Slurm's queue (``squeue -o %r``, and
    ``squeue --start`` for the estimated start, None while Slurm has none)."""
    reason = parse_field(_squeue("-j", str(job), "-o", "%r"))
    start = parse_field(_squeue("--start", "-j", str(job), "-o", "%S"))
    return {"reason": reason, "start": start, "message": pending_message(reason, start)}


def note_pending(run, job, state):
    """Record (or clear, once the job left the queue) Slurm's word on the waiting job in ``status.json``."""
    known = run.status.get("slurm_pending")
    found = pending(job) if state == "PENDING" else None
    if found != known:
        store.update_status(run.path, slurm_pending=found)


def alive(run):
    job = run.status.get("slurm_job_id")
    if not job:
        return None
    state = job_state(job)
    note_pending(run, job, state)
    return state in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"}


def cancel(run):
    job = run.status.get("slurm_job_id")
    if not job:
        return False
    return subprocess.run(["scancel", str(job)], check=False, capture_output=True).returncode == 0
