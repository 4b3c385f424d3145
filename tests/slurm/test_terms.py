"""The pure Slurm pieces: profile -> sbatch terms (one mapping, three users), GPUs, the env check."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from deepvre.pipelines import clusters
from deepvre.runs.backends import slurm as runner_slurm
from deepvre.site import slurm_terms
from deepvre_hub import slurm
from tests.prereqs import require

GPU = {"slug": "gpu-2", "display_name": "2 GPUs", "cpu": 4, "memory": "16G", "gpus": 2,
       "gpu_type": "nvidia-a100", "partition": "gpu", "walltime": "04:00:00"}
SITE = slurm_terms.slurm_settings({"partition": "cpu", "account": "proj1", "walltime": "08:00:00",
                             "gpu_types": {"nvidia-a100": "a100"}, "extra_options": ["--constraint=ib"]})


def test_profile_to_sbatch_options_with_site_defaults():
    assert slurm_terms.sbatch_options(GPU, SITE) == [
        "--partition=gpu", "--account=proj1", "--cpus-per-task=4", "--mem=16384M",
        "--gres=gpu:a100:2", "--time=04:00:00", "--constraint=ib",
    ]
    cpu = {"slug": "cpu", "cpu": 0.5, "memory": "512M"}
    assert slurm_terms.sbatch_options(cpu, SITE) == [
        "--partition=cpu", "--account=proj1", "--cpus-per-task=1", "--mem=512M", "--time=08:00:00",
        "--constraint=ib",
    ]
    assert slurm_terms.sbatch_options({"slug": "g", "gpus": 1}) == ["--gres=gpu:1"]
    assert slurm_terms.sbatch_options({"slug": "x", "gpus": 0}) == []


def test_the_runner_and_dask_use_the_same_mapping():
    assert runner_slurm.sbatch_options is slurm_terms.sbatch_options
    script = runner_slurm.sbatch_script("r1", "/runs/r1", GPU, python="/venv/bin/python", slurm=SITE)
    directives = [ln for ln in script.splitlines() if ln.startswith("#SBATCH ")]
    assert directives[-7:] == [f"#SBATCH {o}" for o in slurm_terms.sbatch_options(GPU, SITE)]
    kw = clusters.slurm_cluster_kwargs({}, profile=GPU, slurm=SITE)
    assert kw["queue"] == "gpu" and kw["account"] == "proj1" and kw["cores"] == 4
    assert kw["memory"] == "16384MiB" and kw["walltime"] == "04:00:00"
    assert kw["job_extra_directives"] == ["--gres=gpu:a100:2", "--constraint=ib"]
    # keys set in dask.slurm win; the site section fills the rest
    kw = clusters.slurm_cluster_kwargs({"slurm": {"queue": "dask", "job_extra_directives": ["--exclusive"]}},
                                       slurm=SITE)
    assert kw["queue"] == "dask" and kw["account"] == "proj1" and kw["walltime"] == "08:00:00"
    assert kw["job_extra_directives"] == ["--constraint=ib", "--exclusive"]


def test_batchspawner_traits_fill_its_template_slots():
    traits = slurm_terms.batchspawner_traits(GPU, SITE)
    assert traits == {"req_partition": "gpu", "req_nprocs": "4", "req_memory": "16384M",
                      "req_gres": "gpu:a100:2", "req_runtime": "04:00:00",
                      "req_options": "--account=proj1 --constraint=ib"}
    assert slurm_terms.batchspawner_traits({"slug": "x"})["req_gres"] == ""


def test_the_commands_run_as_a_user_come_from_command_dir():
    """A non-root hub runs root's wrappers (hub/slurm/slurm-command.in), named by the sudo rule."""
    from traitlets.config import Config

    assert slurm.slurm_command(slurm_terms.slurm_settings(), "squeue") == "squeue"
    site = slurm_terms.slurm_settings({"command_dir": "/usr/local/libexec/deepvre"})
    assert slurm.slurm_command(site, "squeue") == "/usr/local/libexec/deepvre/squeue"
    assert slurm.in_command_dir("scancel {job_id}", "/w") == "/w/scancel {job_id}"
    with pytest.raises(slurm_terms.SlurmSettingsError, match="cannot place 'srun'"):
        slurm.in_command_dir("srun x", "/w")
    with pytest.raises(slurm_terms.SlurmSettingsError, match=r"slurm\.command_dir"):
        slurm_terms.slurm_settings({"command_dir": "libexec"})
    c = Config()
    slurm.configure(c, {"slurm": {"command_dir": "/usr/local/libexec/deepvre"}}, "/nonexistent")
    assert c.DeepvreSlurmSpawner.batch_submit_cmd == "/usr/local/libexec/deepvre/sbatch --parsable"
    assert c.DeepvreSlurmSpawner.batch_query_cmd == "/usr/local/libexec/deepvre/squeue -h -j {job_id} -o '%T %B'"
    assert c.DeepvreSlurmSpawner.batch_cancel_cmd == "/usr/local/libexec/deepvre/scancel {job_id}"
    c = Config()
    slurm.configure(c, {"slurm": {}}, "/nonexistent")
    assert "batch_submit_cmd" not in c.DeepvreSlurmSpawner  # batchspawner's own: sbatch on PATH


def test_bad_settings_name_the_key():
    with pytest.raises(slurm_terms.SlurmSettingsError, match=r"slurm\.walltime"):
        slurm_terms.slurm_settings({"walltime": "forever"})
    with pytest.raises(slurm_terms.SlurmSettingsError, match=r"slurm\.partitions: unknown key"):
        slurm_terms.slurm_settings({"partitions": "cpu"})
    with pytest.raises(ValueError, match="profile memory 'lots'"):
        slurm_terms.sbatch_options({"slug": "x", "memory": "lots"})


def test_gpus_from_sinfo_and_refusal():
    assert slurm_terms.gpus_of_gres("(null)") == 0
    assert slurm_terms.gpus_of_gres("gpu:a100:2(S:0-1),gpu:v100:1,mps:100") == 3
    out = "n1 gpu:4(S:0)\nn2 (null)\nn1 gpu:4(S:0)\nn3 gpu:a100:2\n"
    assert slurm_terms.gpus_per_node(out) == 4
    assert slurm_terms.gpus_per_node("") == 0
    assert slurm_terms.gpu_refusal(GPU, 4) is None
    assert slurm_terms.gpu_refusal(GPU, 0) == "Profile 'gpu-2' asks for 2 GPUs, but the Slurm cluster has no GPUs."
    assert slurm_terms.gpu_refusal(GPU, 1, "gpu") == (
        "Profile 'gpu-2' asks for 2 GPUs, but no node of partition 'gpu' of the Slurm cluster has more than 1.")
    assert slurm_terms.cluster_gpus_per_node({"gpus_per_node": 8}) == 8


def fake_env(root, python_target=None):
    """A folder shaped like a venv: bin/{python,jupyterhub-singleuser,batchspawner-singleuser}."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for name in slurm.SERVER_BINARIES:
        if name == "python" and python_target:
            (bin_dir / name).symlink_to(python_target)
        else:
            (bin_dir / name).write_text("#!/bin/sh\n")
            (bin_dir / name).chmod(0o755)
    return root


@pytest.fixture
def open_tmp():
    """A temporary folder others can enter (pytest's own tmp_path sits under a 0700 folder)."""
    path = tempfile.mkdtemp(prefix="deepvre-slurmtest-", dir="/tmp")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path)


def test_this_venv_is_readable_by_other_accounts():
    assert slurm.unreadable_reason(sys.prefix) is None


def test_env_in_a_closed_folder_is_refused(open_tmp):
    tmp_path = open_tmp
    assert slurm.unreadable_reason(str(fake_env(tmp_path / "open"))) is None
    closed = tmp_path / "closed"
    env = fake_env(closed / "venv")
    closed.chmod(0o700)
    reason = slurm.unreadable_reason(str(env))
    assert reason.startswith(f"the single-user environment {env} is not usable by the users' accounts: "
                             f"{closed} is a folder of mode 0700")
    assert "/usr/bin/python3" in reason
    assert "does not exist" in slurm.unreadable_reason(str(tmp_path))


def test_venv_under_root_is_refused():
    """A real venv under /root (mode 0700 here, as Debian makes it)."""
    require(not os.stat("/root").st_mode & 0o001, "needs /root closed to others (Debian's mode 0700)")
    env = f"/root/deepvre-slurmtest-{os.getpid()}"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", env], check=True)
    try:
        assert "/root is a folder of mode 07" in slurm.unreadable_reason(env)
    finally:
        subprocess.run(["rm", "-rf", env], check=True)


def test_venv_linking_to_a_python_under_root_is_refused(open_tmp):
    """Made in an open folder, but from pyenv's Python under /root: its python link is closed."""
    tmp_path = open_tmp
    target = tmp_path / "private" / "python3"
    target.parent.mkdir()
    target.write_text("#!/bin/sh\n")
    target.parent.chmod(0o700)
    reason = slurm.unreadable_reason(str(fake_env(tmp_path / "venv", python_target=target)))
    assert f"{target.parent} is a folder of mode 0700" in reason
