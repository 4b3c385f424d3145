"""The Slurm backend against a real one-node Slurm on loopback (tests/slurmd.py)."""

import os
import subprocess
import sys

import psutil
import pytest
import yaml

from deepvre import runs
from tests.runs.conftest import read_text, wait_for

pytestmark = pytest.mark.slurm


def test_sbatch_sweep_runs_the_notebook_with_the_venv_python(slurm, cli, runs_dir, notebook):
    code, out, _ = cli("run", notebook("metrics"), "--backend", "slurm", "--sweep", "a=5,6")
    assert code == 0, out
    done = runs.list_runs(runs_dir)
    assert sorted(r.params["parameters"]["a"] for r in done) == [5, 6]
    for run in done:
        status = run.status
        assert status["state"] == "done" and status["backend"] == "slurm"
        assert status["slurm_job_id"].isdigit()
        assert run.metrics["score"] == run.params["parameters"]["a"] * 2.0 + 2
        assert run.metrics["python"] == sys.executable
        log = read_text(run.file("run.log"))
        assert "papermill" in log and f"deepvre run {run.id}: done" in log
    table = out[out.index("run  "):].splitlines()
    score = table[0].split().index("score")
    for run in done:
        row = next(line for line in table if line.startswith(run.id)).split()
        assert row[1] == "done" and float(row[score]) == run.metrics["score"]


def test_profile_terms_reach_slurm_and_scancel_stops_the_run(slurm, cli, runs_dir, notebook, tmp_path,
                                                             monkeypatch):
    monkeypatch.delenv("DEEPVRE_SETTINGS", raising=False)  # only --settings names the file here
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"profiles": [
        {"slug": "small", "display_name": "Small", "cpu": 1, "memory": "100M", "walltime": "00:10:00",
         "partition": slurm.partition}]}))
    code, out, data = cli("run", notebook("gated"), "--backend", "slurm", "--detach",
                          "--profile", "small", "--settings", settings, "--json")
    assert code == 0, out
    run = runs.get(data[0]["id"], runs_dir)
    job = run.status["slurm_job_id"]
    wait_for(lambda: os.path.exists(run.file("kernel.pid")) and run.state == "running")
    shown = subprocess.run(["squeue", "-h", "-j", job, "-o", "%P %C %m %l %T"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert shown == [slurm.partition, "1", "100M", "10:00", "RUNNING"]
    kernel = psutil.Process(int(read_text(run.file("kernel.pid"))))
    code, out, _ = cli("runs", "cancel", run.id)
    assert code == 0 and out.strip() == f"{run.id}: cancelled"
    wait_for(lambda: not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE, 60)
    assert runs.get(run.id, runs_dir).state == "cancelled" and run.metrics is None
