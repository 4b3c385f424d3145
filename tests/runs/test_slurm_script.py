"""The sbatch script builder and a profile's Slurm terms (pure, no cluster)."""

import shlex

import pytest
from deepvre.runs.backends.slurm import parse_job_id, sbatch_options, sbatch_script

GPU = {"slug": "gpu-1", "cpu": 4, "memory": "16G", "gpus": 1, "partition": "gpu",
       "walltime": "08:00:00"}


def test_profile_terms():
    assert sbatch_options(GPU) == [
        "--partition=gpu", "--cpus-per-task=4", "--mem=16384M", "--gres=gpu:1", "--time=08:00:00",
    ]
    assert sbatch_options({"gpus": 2, "gpu_type": "a100", "cpu": 0.5, "memory": "512M"}) == [
        "--cpus-per-task=1", "--mem=512M", "--gres=gpu:a100:2",
    ]
    assert sbatch_options(None) == [] and sbatch_options({"gpus": 0}) == []


def test_bad_memory_is_named():
    with pytest.raises(ValueError, match="profile memory 'lots'"):
        sbatch_options({"memory": "lots"})


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
