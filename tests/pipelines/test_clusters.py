"""The cluster factory: LocalCluster, a real scheduler address, real Slurm, Kubernetes spec offline."""

import os
import re
import subprocess
import sys
import time

import pytest

from deepvre.pipelines import clusters
from deepvre.pipelines.dataset import open_split
from deepvre.pipelines.run import preprocess

from .data import class_folders


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return class_folders(str(tmp_path_factory.mktemp("in")), n_per_class=4, corrupt=0)


def test_dashboard_link_through_server_proxy():
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/"}
    assert clusters.dashboard_link("http://127.0.0.1:8787/status", env) == "/user/ana/proxy/8787/status"
    assert clusters.dashboard_link("http://127.0.0.1:41234/status", {}) == "http://127.0.0.1:41234/status"


def test_settings_errors_name_the_key():
    with pytest.raises(ValueError, match=r"dask\.slurm\.memory"):
        clusters.dask_settings({"slurm": {"memory": "lots"}})
    with pytest.raises(ValueError, match="dask"):
        clusters.dask_settings({"clutser": "local"})
    with pytest.raises(ValueError, match="scheduler address"):
        clusters.kind_of("my-cluster")


def test_slurm_kwargs_from_settings(monkeypatch):
    monkeypatch.setenv("HOME", "/home/ana")
    kw = clusters.slurm_cluster_kwargs({"slurm": {"queue": "cpu", "cores": 4, "memory": "16GB",
                                                  "walltime": "02:00:00", "job_extra_directives": ["--gres=gpu:1"]}},
                                       scheduler_host="192.0.2.10")
    assert kw == {"cores": 4, "processes": 1, "memory": "16GB", "walltime": "02:00:00", "queue": "cpu",
                  "job_extra_directives": ["--gres=gpu:1"],
                  "log_directory": "/home/ana/.cache/deepvre/dask-slurm-logs",
                  "scheduler_options": {"dashboard_address": "127.0.0.1:0", "host": "192.0.2.10"},
                  "worker_extra_args": ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"],
                  "job_script_prologue": [f"export {k}={v}" for k, v in clusters.worker_environ().items()]}
    kw = clusters.slurm_cluster_kwargs({"slurm": {"log_directory": "~/scratch/logs"}})
    assert kw["log_directory"] == "/home/ana/scratch/logs"


def test_slurm_scheduler_never_listens_on_every_interface():
    """dask-jobqueue's default (no host, no interface) binds the scheduler to all interfaces and
    its dashboard to :8787; deepvre names one address and keeps the dashboard on loopback."""
    security = object()
    for section, options in (({"host": "10.0.0.1"}, {"host": "10.0.0.1"}),
                           ({"interface": "ib0"}, {"interface": "ib0"}),
                           ({}, {"host": "192.0.2.10"})):
        kw = clusters.slurm_cluster_kwargs({"slurm": section}, scheduler_host="192.0.2.10", security=security)
        assert kw["scheduler_options"] == {"dashboard_address": "127.0.0.1:0", **options}
        assert kw["security"] is security
    default = clusters.slurm_cluster_kwargs({})["scheduler_options"]["host"]
    assert default not in ("", "0.0.0.0", "::")


def test_kubernetes_spec_offline_and_valid():
    import kubernetes_validate

    spec = clusters.kubernetes_cluster_spec(
        {"workers": 3, "kubernetes": {"image": "registry.example/deepvre:1", "namespace": "science",
                                      "resources": {"limits": {"cpu": "2", "memory": "4G"}}}})
    assert spec["kind"] == "DaskCluster" and spec["metadata"]["namespace"] == "science"
    assert spec["spec"]["worker"]["replicas"] == 3
    for part in ("worker", "scheduler"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"x-{part}"}, "spec": spec["spec"][part]["spec"]}
        kubernetes_validate.validate(pod, "1.30", strict=True)
        container = pod["spec"]["containers"][0]
        assert container["image"] == "registry.example/deepvre:1"
        if part == "worker":
            assert container["resources"]["limits"] == {"cpu": "2", "memory": "4G"}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
               "spec": spec["spec"]["scheduler"]["service"]}
    kubernetes_validate.validate(service, "1.30", strict=True)


def test_kubernetes_spec_owned_by_the_user_pod():
    import jsonschema
    import yaml

    environ = {"DEEPVRE_POD_NAME": "jupyter-ana", "DEEPVRE_POD_UID": "0b6c1f9e-0000-4000-8000-00000000000a",
               "DEEPVRE_NAMESPACE": "deepvre"}
    spec = clusters.kubernetes_cluster_spec({"workers": 1}, environ=environ)
    assert spec["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "jupyter-ana",
                                                    "uid": environ["DEEPVRE_POD_UID"], "blockOwnerDeletion": False}]
    assert spec["metadata"]["namespace"] == "deepvre"  # an owner must be in the same namespace
    crd_file = os.path.join(os.path.dirname(__import__("dask_kubernetes").__file__),
                            "operator/deployment/helm/dask-kubernetes-operator/crds/daskcluster.yaml")
    with open(crd_file) as f:
        crd = yaml.safe_load(f)
    version = spec["apiVersion"].split("/")[1]
    jsonschema.validate(spec, next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"])
    outside = clusters.kubernetes_cluster_spec({"kubernetes": {"namespace": "science"}}, environ={})
    assert "ownerReferences" not in outside["metadata"] and outside["metadata"]["namespace"] == "science"


def test_local_cluster(images, tmp_path):
    result = preprocess("images", images, str(tmp_path / "out"), {"size": "8"}, cluster="local",
                        n_workers=1, progress=False)
    assert result.manifest["splits"]["train"]["n"] > 0
    assert result.dashboard.startswith("http://127.0.0.1:")


def test_local_workers_keep_glibc_malloc_defaults():
    """distributed's MALLOC_TRIM_THRESHOLD_ made every image buffer an mmap + page faults (the 1-worker overhead)."""
    with clusters.open_client("local", n_workers=1) as (client, _link):
        env = client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")})
    assert list(env.values()) == [{"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"}]


def test_worker_environ_unsets_malloc_trim_in_remote_workers(tmp_path):
    """What Slurm jobs and Kubernetes pods get: a real `dask worker` (with its nanny) started with it."""
    from distributed import Client, LocalCluster

    spec = clusters.kubernetes_cluster_spec({"kubernetes": {"env": {"EXTRA": "1"}}})
    pod_env = {e["name"]: e["value"] for e in spec["spec"]["worker"]["spec"]["containers"][0]["env"]}
    assert pod_env == {**clusters.worker_environ(), "EXTRA": "1"}
    found = {}
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        for name, extra in (("plain", {}), ("deepvre", clusters.worker_environ())):
            env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
            worker = subprocess.Popen([f"{os.path.dirname(sys.executable)}/dask", "worker", cluster.scheduler_address,
                                       "--nthreads", "1", "--no-dashboard", "--name", name,
                                       "--local-directory", str(tmp_path / name)], env={**env, **extra},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                client.wait_for_workers(1, timeout=120)
                found[name] = list(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values())
            finally:
                worker.terminate()
                worker.wait(timeout=60)
            deadline = time.monotonic() + 60
            while client.scheduler_info(n_workers=-1)["workers"] and time.monotonic() < deadline:
                time.sleep(0.2)
    assert found == {"plain": ["65536"], "deepvre": [None]}  # distributed's default, then ours


def _start(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def test_scheduler_address(images, tmp_path, monkeypatch):
    """A scheduler the user started by hand with their deepvre credentials (docs/security.md)."""
    from deepvre.pipelines.tls import cli_options, user_security

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    tls = cli_options()
    bin_dir = os.path.dirname(sys.executable)
    log = open(tmp_path / "dask.log", "w+")
    scheduler = _start([f"{bin_dir}/dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--no-dashboard", "--protocol", "tls", *tls], log)
    worker = None
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            log.seek(0)
            found = re.search(r"Scheduler at:\s+(tls://127\.0\.0\.1:\d+)", log.read())
            address = found.group(1) if found else time.sleep(0.2)
        assert address, "dask scheduler did not report its address"
        worker = _start([f"{bin_dir}/dask", "worker", address, "--nthreads", "1", "--no-dashboard",
                         "--local-directory", str(tmp_path / "w"), *tls], log)
        from distributed import Client

        with Client(address, timeout=60, security=user_security()) as client:
            client.wait_for_workers(1, timeout=60)
        result = preprocess("images", images, str(tmp_path / "out"), {"size": "8"}, cluster=address, progress=False)
        assert result.written == len(result.manifest["shards"])
        x, _ = open_split(str(tmp_path / "out"), "train")
        assert x.shape[1:] == (8, 8, 3)
    finally:
        for proc in (worker, scheduler):
            if proc:
                proc.terminate()
                proc.wait(timeout=30)


@pytest.mark.slurm
def test_slurm_cluster(images, tmp_path, slurm, monkeypatch):
    settings = {"workers": 1, "slurm": {"queue": slurm.partition, "cores": 1, "memory": "1GB",
                                        "walltime": "00:10:00", "interface": "lo", "host": "127.0.0.1",
                                        "python": sys.executable, "local_directory": str(tmp_path / "w"),
                                        "log_directory": str(tmp_path / "logs")}}
    caller = tmp_path / "caller"
    caller.mkdir()
    monkeypatch.chdir(caller)  # sbatch runs here: the job logs must not land here
    with clusters.open_client("slurm", settings=settings) as (client, _link):
        # the job script's prologue gave the worker glibc's malloc defaults, as local workers have
        env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        result = preprocess("images", images, str(tmp_path / "out"), {"size": "8"}, client=client, progress=False)
    assert list(env.values()) == [None]
    assert result.manifest["splits"]["train"]["n"] > 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the cluster's worker job is cancelled on exit
        jobs = subprocess.run(["squeue", "-h", "-t", "PD,R", "-o", "%j"], env=slurm.env,
                              capture_output=True, text=True, check=True)
        if "dask-worker" not in jobs.stdout.split():
            break
        time.sleep(0.5)
    assert "dask-worker" not in jobs.stdout.split()
    assert os.listdir(caller) == []
    logs = os.listdir(tmp_path / "logs")
    assert any(name.startswith("dask-worker-") and name.endswith(".err") for name in logs), logs
