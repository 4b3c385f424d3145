"""Only the Dask clusters that can start from this server are offered (issue 17): a local hub
offered Slurm and Kubernetes, which then failed with "signal only works in main thread"."""

import subprocess
import sys

import pytest

from deepvre_jupyter import backends


def which_sbatch(name, path=None):
    return "/usr/bin/sbatch" if name == "sbatch" else None


def which_nothing(name, path=None):
    return None


@pytest.mark.parametrize(("slurm_site", "environ", "which", "token", "offered"), [
    (False, {}, which_sbatch, False, ["local"]),  # sbatch installed, but not a Slurm site: a local hub
    (True, {}, which_nothing, False, ["local"]),  # a Slurm site, but this server has no sbatch
    (True, {}, which_sbatch, False, ["local", "slurm"]),
    (False, {"SLURM_JOB_ID": "7"}, which_sbatch, False, ["local", "slurm"]),  # a server in a Slurm job
    (False, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, which_nothing, False, ["local"]),  # no service account
    (False, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, which_nothing, True, ["local", "kubernetes"]),
])
def test_offered_clusters(tmp_path, slurm_site, environ, which, token, offered):
    token_file = tmp_path / "token"
    if token:
        token_file.write_text("t")
    assert backends.offered_clusters(slurm_site, environ, which, str(token_file)) == offered


def test_a_scheduler_address_is_always_allowed_and_nonsense_is_an_error(tmp_path):
    assert backends.cluster_refusal("tls://10.1.2.3:8786", False, {}, which_nothing, str(tmp_path / "t")) is None
    with pytest.raises(ValueError, match="must be local, slurm, kubernetes or a scheduler address"):
        backends.cluster_refusal("rm -rf /", False, {}, which_nothing, str(tmp_path / "t"))


def test_slurm_cluster_class_imports_in_a_thread_and_keeps_the_servers_sigint():
    """dask_jobqueue sets a SIGINT handler when imported: from a job's thread that raised, and in
    the main thread it would replace the server's. A fresh interpreter, so the import is the first."""
    script = """
import signal, threading
from deepvre.pipelines import clusters
def mine(*args): pass
signal.signal(signal.SIGINT, mine)
found = []
t = threading.Thread(target=lambda: found.append(clusters.slurm_cluster_class().__name__))
t.start(); t.join()
assert found == ["SLURMCluster"], found
assert signal.getsignal(signal.SIGINT) is mine
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
