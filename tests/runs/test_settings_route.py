"""``deepvre run --backend slurm --settings X`` hands X's ``slurm:`` section and profile to the Slurm
backend as arguments, not through ``$DEEPVRE_SETTINGS`` (issue 14). Offline: a stand-in ``sbatch``
on PATH answers a job id, and the batch script the backend wrote is read back."""

import os

import yaml

from deepvre import runs
from deepvre.site import environment

SITE = {"slurm": {"account": "proj-42", "qos": "high", "gres_name": "gpgpu"},
        "profiles": [{"slug": "gpu-1", "display_name": "1 GPU", "cpu": 2, "memory": "1G", "gpus": 1,
                      "partition": "gpu", "walltime": "00:10:00"}]}


def test_run_settings_slurm_section_reaches_the_batch_script(cli, runs_dir, notebook, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 4242\n")
    (bin_dir / "squeue").write_text("#!/bin/sh\necho PENDING\n")
    for tool in ("sbatch", "squeue"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(environment.SETTINGS, raising=False)
    settings = tmp_path / "site.yaml"
    settings.write_text(yaml.safe_dump(SITE))

    code, out, data = cli("run", notebook("metrics"), "--backend", "slurm", "--detach",
                          "--profile", "gpu-1", "--settings", settings, "--json")
    assert code == 0, out
    run = runs.get(data[0]["id"], runs_dir)
    assert run.status["slurm_job_id"] == "4242"
    with open(run.file("job.sbatch")) as f:
        script = f.read().splitlines()
    for option in ("--partition=gpu", "--account=proj-42", "--qos=high", "--cpus-per-task=2", "--mem=1024M",
                   "--gres=gpgpu:1", "--time=00:10:00"):
        assert f"#SBATCH {option}" in script, option
    assert environment.SETTINGS not in os.environ  # no hidden bus: the CLI set nothing


def test_profile_needs_a_settings_file(cli, runs_dir, notebook, monkeypatch):
    monkeypatch.delenv(environment.SETTINGS, raising=False)
    code, out, _ = cli("run", notebook("metrics"), "--profile", "gpu-1")
    assert code == 2 and "--profile needs --settings" in out
