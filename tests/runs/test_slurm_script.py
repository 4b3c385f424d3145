"""The sbatch script builder (pure, no cluster); the profile -> sbatch mapping is tested in tests/slurm."""

import shlex

import pytest

from deepvre.runs.backends.slurm import parse_job_id, sbatch_script

GPU = {"slug": "gpu-1", "cpu": 4, "memory": "16G", "gpus": 1, "partition": "gpu",
       "walltime": "08:00:00"}


def test_script_runs_the_worker_with_the_given_python_in_the_run_folder():
    script = sbatch_script("nb-1", "/runs/nb 1", GPU, python="/venv/bin/python")
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --gres=gpu:1" in lines and "#SBATCH --partition=gpu" in lines
    assert "#SBATCH --job-name=deepvre-nb-1" in lines
    assert "#SBATCH --output=/runs/nb 1/run.log" in lines
    assert shlex.split(lines[-1]) == ["exec", "/venv/bin/python", "-m", "deepvre.runs.execute", "/runs/nb 1"]
    # every directive comes before the first command, or sbatch ignores it
    first_cmd = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_cmd:])


def test_job_id_parsing():
    assert parse_job_id("42\n") == "42" and parse_job_id("42;cluster") == "42"
    with pytest.raises(RuntimeError):
        parse_job_id("sbatch: error")
