"""deepvre in ``mode: slurm`` on a real one-node Slurm (tests/slurmd.py) and a real hub.

One hub for the module; each user's server is a Slurm job submitted through
``sudo -E -u USER sbatch`` (batchspawner) under the user's own OS account.
"""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.hub.hubprocess import HubProcess, run_code, terminal_output, wait_for
from tests.prereqs import require_program, require_proxy, require_root
from tests.slurmd import start_slurm, stop_slurm

pytestmark = pytest.mark.slurm

PASSWORD = "correct-horse-" + secrets.token_hex(4)


def profiles(partition):
    return [
        {"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory": "300M", "walltime": "00:30:00",
         "partition": partition, "default": True},
        {"slug": "gpu-1", "display_name": "1 GPU", "cpu": 1, "memory": "300M", "gpus": 1},
    ]


@pytest.fixture(scope="module")
def slurm():
    """This module's own one-node cluster (tests/slurmd.py in a private folder): other test
    sessions on this machine stop and clean the shared one while these jobs run."""
    require_root()
    for program in ("slurmctld", "slurmd", "munged", "sbatch", "sudo"):
        require_program(program)
    base = tempfile.mkdtemp(prefix="deepvre-slurm-slurmt-")
    os.chmod(base, 0o755)  # the users' sbatch reads slurm.conf
    cluster = start_slurm(base)
    yield cluster
    stop_slurm(cluster)
    shutil.rmtree(base, ignore_errors=True)


def new_name(role):
    return f"slurmt{secrets.token_hex(3)}{role}"


def squeue(slurm, *args):
    out = subprocess.run(["squeue", "-h", *args], env=slurm.env, capture_output=True, text=True, timeout=60, check=False)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, slurm):
    require_proxy()
    process = HubProcess(
        {"mode": "slurm", "profiles": profiles(slurm.partition),
         "slurm": {"poll_interval": 2, "start_timeout": 180}},
        tmp_path_factory.mktemp("slurmhub") / "state", env={"SLURM_CONF": slurm.conf},
    )
    process.start()
    yield process
    process.teardown()


@pytest.fixture(scope="module")
def person(hub):
    admin = hub.login(hub.admin, hub.admin_password)

    def make(role):
        name = new_name(role)
        return (name, *hub.approved_user(admin, name, PASSWORD))

    return make


def job_of(slurm, name):
    """(job id, state, partition, cpus, memory, time limit) of ``name``'s running job."""
    return squeue(slurm, "-u", name, "-o", "%i %T %P %C %m %l").split()


def test_server_is_a_slurm_job_reachable_and_stop_cancels_it(hub, person, slurm):
    name, session, token = person("a")
    page = session.get(f"{hub.url}/hub/spawn/{name}", timeout=30).text
    assert 'value="cpu" checked' in page
    assert "Unavailable: this machine has no GPUs" in page  # gpu-1: the cluster has no gres

    hub.spawn_form(session, name, "cpu")
    hub.wait_ready(token, name, timeout=240)
    job = job_of(slurm, name)
    assert job[1:] == ["RUNNING", slurm.partition, "1", "300M", "30:00"], job
    hub.check_browser_reaches(session, name)  # through the proxy, with the browser's cookie
    out = run_code(hub.server_url(name), token, (
        "import os, getpass\n"
        "print(getpass.getuser(), os.environ['HOME'], os.environ['SLURM_JOB_ID'], os.environ['DEEPVRE_PROFILE'])"
    ))
    assert out.split() == [name, f"/home/{name}", job[0], "cpu"]
    # `deepvre` on PATH in the job's kernels and terminals: sudo's secure_path dropped the hub's PATH
    venv_deepvre = os.path.join(os.path.dirname(sys.executable), "deepvre")
    out = run_code(hub.server_url(name), token, "import shutil; print(shutil.which('deepvre'))")
    assert out.strip() == venv_deepvre, out
    text = terminal_output(hub.server_url(name), token, "command -v deepvre")
    assert venv_deepvre in text, text

    hub.stop_server(token, name)
    wait_for(lambda: not squeue(slurm, "-j", job[0], "-t", "PD,R,CG"), 60, f"job {job[0]} to end")
    assert hub.server_status(session, name, allow_redirects=False).status_code != 200


def test_scancel_from_outside_is_a_stopped_server_with_a_message(hub, person, slurm):
    name, session, token = person("b")
    hub.spawn(token, name, profile="cpu", timeout=240)
    job = job_of(slurm, name)[0]
    subprocess.run(["scancel", job], env=slurm.env, check=True, timeout=60)
    wait_for(lambda: hub.server_model(token, name) is None, 90,
             f"the hub to see the server stopped\n{hub.log_text()[-3000:]}", 0.5)
    page = session.get(f"{hub.url}/hub/spawn/{name}", timeout=30).text
    assert f"Your server&#x27;s Slurm job {job} ended outside the hub (CANCELLED); start it again." in page
    assert f"Slurm job {job} ended outside the hub" in hub.log_text()
    # and it starts again, clearing the message
    hub.spawn(token, name, profile="cpu", timeout=240)
    assert "ended outside the hub" not in session.get(f"{hub.url}/hub/spawn/{name}", timeout=30).text
    hub.stop_server(token, name)


def test_more_gpus_than_the_cluster_has_is_refused(hub, person, slurm):
    name, _, token = person("c")
    r = hub.spawn(token, name, profile="gpu-1", wait=False)
    assert r.status_code == 409, r.text
    assert r.json()["message"] == "Profile 'gpu-1' asks for 1 GPU, but the Slurm cluster has no GPUs."
    assert not squeue(slurm, "-u", name)
    assert hub.server_model(token, name) is None


def test_unreadable_env_refused_at_start_up(tmp_path, slurm):
    require_root()
    env = f"/root/deepvre-slurmtest-{os.getpid()}"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", env], check=True)
    try:
        process = HubProcess({"mode": "slurm", "profiles": profiles(slurm.partition), "slurm": {"env": env}},
                             tmp_path / "state")
        with pytest.raises(RuntimeError, match="the hub exited with"):
            process.start(timeout=60)
        assert (f"deepvre: slurm.env: the single-user environment {env} is not usable by the users' "
                "accounts: /root is a folder of mode 07") in process.log_text()
    finally:
        subprocess.run(["rm", "-rf", env], check=True)


# The sudo rule of a non-root hub (hub/slurm/sudoers.deepvre) is tried in tests/security/test_sudoers.py,
# and a non-root hub using it in tests/security (conftest.py: slurm_hub).
