"""The hostile review of the batch runs' admission (``/hub/api/deepvre/runs``, issue 19 items 1-3), on a
real local hub as root with two listed GPUs and a quota of one GPU at once per user.

A quota check leaves out "the server's own earlier row (it is being replaced)": the open row of the
same user with the same server name. A run's row holds its run id as its server name, so before the
fix a run named like one of the user's named servers did not count that server's GPU, nor a named
server named like a run that run's GPU: bob held both GPUs with a quota of one, from his own
server with its own token. Now only a row of the same kind (server or run) is left out. And a hub
user without an OS account could name a root process as the run's.
"""

import os

import pytest
import requests

from deepvre_hub import accounts, usage
from tests.hub.hubprocess import HubProcess, wait_for
from tests.hub.test_run_admission_hub import PROFILES
from tests.prereqs import require_proxy, require_root
from tests.security import test_run_admission

pytestmark = [pytest.mark.hub, pytest.mark.root]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process = HubProcess({
        "profiles": PROFILES,
        "gpus": {"discovery": "list", "devices": [{"index": "0"}, {"index": "1"}]},
        "quotas": {"default": {"gpus": 1}},
        "hub": {"keep_servers": False, "named_servers": 2},
    }, tmp_path_factory.mktemp("runs-review-hub") / "state")
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        bob = "rvrunsbob"
        yield process, (bob, *process.approved_user(admin, bob, "review-runs-pw"))


def as_server(process, user, token, calls, server=""):
    """:func:`tests.security.test_run_admission.as_server`, from ``user``'s server ``server``."""
    real = process.server_url
    process.server_url = lambda name: real(name, server)
    try:
        return test_run_admission.as_server(process, user, token, calls)
    finally:
        process.server_url = real


def gpus_held(process, user):
    book = usage.UsageBook(usage.default_url(process.state_dir))
    return sum(r["gpus"] for r in book.rows(users=[user]) if r["end"] is None)


def test_a_run_named_like_a_server_counts_its_gpu(hub):
    process, (bob, _, token) = hub
    # bob's named server "x" holds one GPU: his quota is spent
    assert process.spawn(token, bob, profile="gpu-1", server="x").status_code in (201, 202)
    try:
        assert gpus_held(process, bob) == 1
        # a run named "x", from that server with its own token, is refused like any other
        answers = as_server(process, bob, token, [("POST", "", {"run": "x", "profile": "gpu-1", "pid": "$PID"}),
                                                  ("DELETE", "/x", {"state": "cancelled"})], server="x")
        assert answers[0][0] == 429 and "GPUs at once (your limit): 1 of 1 held" in answers[0][1], answers
        assert gpus_held(process, bob) == 1
    finally:
        process.stop_server(token, bob, "x")


def test_a_server_named_like_a_run_counts_its_gpu(hub):
    process, (bob, _, token) = hub
    # a GPU run "y" is admitted (from his CPU server); a named server "y" is then refused
    assert process.spawn(token, bob, profile="cpu").status_code in (201, 202)
    answers = as_server(process, bob, token, [("POST", "", {"run": "y", "profile": "gpu-1", "pid": 0})])
    assert answers[0][0] == 400  # a pid is required (checked before anything is taken)
    pid = wait_for(lambda: _server_pid(process, bob), 30, "bob's server process")  # alive as long as it is
    answers = as_server(process, bob, token, [("POST", "", {"run": "y", "profile": "gpu-1", "pid": pid})])
    assert answers[0][0] == 200, answers
    assert gpus_held(process, bob) == 1
    r = process.spawn(token, bob, profile="gpu-1", server="y", wait=False)
    wait_for(lambda: (process.server_model(token, bob, "y") or {}).get("pending") is None, 60, "the spawn decided")
    assert not (process.server_model(token, bob, "y") or {}).get("ready"), r.text
    assert gpus_held(process, bob) == 1
    assert "GPUs at once (your limit)" in process.log_text()
    answers = as_server(process, bob, token, [("DELETE", "/y", {"state": "done"})])
    assert answers[0][0] == 204, answers
    assert gpus_held(process, bob) == 0
    process.stop_server(token, bob)


def _server_pid(process, user):
    """The pid of ``user``'s default server process (it lives as long as the server)."""
    import psutil

    for proc in psutil.process_iter(["username", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["username"] == user and any("jupyterhub-singleuser" in part for part in cmdline):
            return proc.pid
    return None


def test_a_user_without_an_os_account_cannot_hold_gpus_with_a_root_process(hub):
    """Was an open hole: the pid check wanted a process of the user's OS account, and for a hub user
    without one (never started a server) took the hub's own uid, root: carol's API token and the
    hub's pid held a GPU for as long as the hub ran, beyond any culling, with no server at all."""
    process, _ = hub
    admin = process.login(process.admin, process.admin_password)
    carol = "rvrunscarol"
    _, carol_t = process.approved_user(admin, carol, "review-runs-pw")
    assert not accounts.exists(carol)  # never started a server: no OS account yet
    for pid in (process.process.pid, os.getpid()):  # the hub's and another root process
        r = requests.post(f"{process.url}/hub/api/deepvre/runs", headers={"Authorization": f"token {carol_t}"},
                          json={"run": f"hold{pid}", "profile": "gpu-1", "pid": pid}, timeout=30)
        assert r.status_code == 403, r.text
    assert gpus_held(process, carol) == 0
    assert "admitted with GPUs" not in process.log_text().split(carol, 1)[-1]
