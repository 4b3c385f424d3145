"""A Slurm run waiting in Slurm's queue shows Slurm's pending reason and estimated start in its
status (and so on the run page), against the real one-node Slurm of tests/slurmd.py: a job holding
every CPU for 5 minutes makes the run pend for Resources, with an estimated start at that job's
time limit; once the job is cancelled the run starts and the note goes (issue 19, item 1)."""

import datetime as dt
import os
import subprocess
import time

import pytest

from deepvre import runs
from deepvre.runs.backends import slurm as backend
from tests.runs.conftest import wait_for


def first_true(value, timeout):
    """Poll ``value()`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        found = value()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)

pytestmark = pytest.mark.slurm


def test_the_message_in_plain_words():
    assert backend.parse_field("Resources\n") == "Resources" and backend.parse_field("N/A\n") is None
    assert backend.parse_field("") is None and backend.parse_field("None") is None
    assert backend.pending_message("Resources", "2026-12-01T04:05:00") == (
        "Waiting in Slurm's queue: Resources (the CPUs, memory or GPUs it asks for are in use); "
        "expected start 2026-12-01 04:05:00.")
    assert backend.pending_message("Odd", None) == "Waiting in Slurm's queue: Odd; no estimated start from Slurm yet."


def test_a_pending_run_shows_slurms_reason_and_estimated_start(slurm, cli, runs_dir, notebook):
    blocker = subprocess.run(["sbatch", "--parsable", "-c", str(os.cpu_count() or 2), "--time=00:05:00",
                              f"--partition={slurm.partition}", "--output=/dev/null", "--wrap", "sleep 300"],
                             capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    try:
        wait_for(lambda: backend.job_state(blocker) == "RUNNING", 60)
        began = dt.datetime.now()
        code, out, data = cli("run", notebook("metrics"), "--backend", "slurm", "--detach", "--json", "-p", "a", "3")
        assert code == 0, out
        run_id = data[0]["id"]

        def note():
            status = runs.get(run_id, runs_dir).status  # a read of the status asks Slurm
            return status.get("slurm_pending")

        first = first_true(lambda: (lambda n: n if (n or {}).get("reason") else None)(note()), 60)
        assert first["reason"] in ("Resources", "Priority"), first
        assert first["message"].startswith(f"Waiting in Slurm's queue: {first['reason']} ("), first
        # Slurm's scheduler estimates the start at the blocker's time limit (a backfill pass: <= 30 s)
        found = first_true(lambda: (lambda n: n if (n or {}).get("start") else None)(note()), 120)
        start = dt.datetime.fromisoformat(found["start"])
        assert began + dt.timedelta(minutes=4) <= start <= began + dt.timedelta(minutes=6), (began, found)
        assert f"expected start {found['start'].replace('T', ' ')}." in found["message"]
        assert runs.get(run_id, runs_dir).state == "queued"
    finally:
        subprocess.run(["scancel", blocker], check=False)
    # the blocker goes: the run starts and finishes, and the note goes with the queue
    wait_for(lambda: runs.get(run_id, runs_dir).state == "done", 180)
    assert runs.get(run_id, runs_dir).status.get("slurm_pending") is None
    assert runs.get(run_id, runs_dir).metrics["score"] == 8.0
