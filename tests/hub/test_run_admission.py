"""The pure parts of the batch runs' admission: a run counts towards the GPU limits and not
towards servers at once; a run's process check; the client asks only where it should
(deepvre_hub.run_admission, deepvre.runs.admission). The real hub: test_run_admission_hub.py."""

import datetime as dt
import os

from deepvre.runs import admission
from deepvre_hub import quotas, run_admission

NOW = dt.datetime(2026, 12, 1, 12, 0)


def row(kind, gpus=0, server="s"):
    return {"user": "alice", "server": server, "kind": kind, "gpus": gpus, "gpu_ids": "0" if gpus else "",
            "start": NOW - dt.timedelta(hours=1), "end": None}


def test_runs_count_towards_gpus_not_servers():
    limits = {"servers": 1, "gpus": 1}
    one_server = [row("server")]
    assert quotas.check(limits, one_server, 0, NOW, "your").startswith("Servers at once")
    assert quotas.check(limits, one_server, 1, NOW, "your", kind="run") is None  # a run is no server
    gpu_run = [row("run", 1, "20261201-x")]
    assert quotas.check(limits, gpu_run, 0, NOW, "your") is None  # a CPU server beside a GPU run
    message = quotas.check(limits, gpu_run, 1, NOW, "your", kind="run")
    assert message.startswith("GPUs at once (your limit): 1 of 1 held (alice/20261201-x (GPU 0))"), message
    assert quotas.check({"gpu_hours_per_week": 0.5}, gpu_run, 1, NOW, "your", kind="run").startswith(
        "GPU-hours this week (your limit): 1.0 of 0.5")


def test_a_runs_name_and_its_process():
    assert run_admission.owner_of("alice", "r1") == "alice/run:r1"
    assert run_admission.process_alive(os.getpid(), os.geteuid())
    assert not run_admission.process_alive(os.getpid(), os.geteuid() + 12345)
    assert not run_admission.process_alive(2**22 + 7)
    assert run_admission.RUN_ID.fullmatch("gpu-20261201-025048-9d856b")
    assert not run_admission.RUN_ID.fullmatch("../x") and not run_admission.RUN_ID.fullmatch("a/b")


def test_the_client_asks_only_inside_a_hub_for_a_local_run_with_a_profile():
    env = {"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api"}
    local = {"backend": "local", "profile": {"slug": "gpu-1", "gpus": 1}}
    assert admission.wanted(local, env)
    assert not admission.wanted({**local, "backend": "slurm"}, env)  # Slurm's own queue
    assert not admission.wanted({**local, "profile": None}, env)
    assert not admission.wanted(local, {})  # outside a hub
