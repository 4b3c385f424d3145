"""Batch runs in the GPU queue, the quotas and the usage accounting, on a real local hub (root,
one listed GPU, a quota of one GPU each): ``deepvre run --profile gpu-1`` in alice's server waits
behind bob's GPU server (its place in status.json), starts with the GPU when bob's server stops
(CUDA_VISIBLE_DEVICES in its kernel), a second run is refused by the quota with the limit named
and never starts, and the run's row (kind run, GPU, reason done) is on the usage page
(issue 19, items 1 and 2: batch runs)."""

import json
import os
import pwd
import secrets
from pathlib import Path

import pytest

from deepvre_hub import usage
from tests.hub.hubprocess import HubProcess, run_code, wait_for
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory": "2G", "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "cpu": 1, "gpus": 1},
]
PASSWORD = "runs-" + secrets.token_hex(6)

# A notebook that records the GPUs its kernel sees, then works for `seconds`
NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "seconds = 1", "outputs": [],
         "execution_count": None, "id": "p"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "id": "w",
         "source": "import json, os, time\n"
                   "json.dump({'cuda': os.environ.get('CUDA_VISIBLE_DEVICES')}, open('seen.json', 'w'))\n"
                   "time.sleep(seconds)"},
    ],
}


def start_runs_hub(folder, roles=("alice", "bob")):
    names = {role: f"r{secrets.token_hex(3)}{role}" for role in roles}
    process = HubProcess({
        "profiles": PROFILES,
        "gpus": {"discovery": "list", "devices": [{"index": "0"}]},
        "quotas": {"default": {"gpus": 1, "servers": 2}},
        "hub": {"keep_servers": True},
    }, folder / "state")
    return process, names


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process, names = start_runs_hub(tmp_path_factory.mktemp("runs-hub"))
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        users = {role: (name, *process.approved_user(admin, name, PASSWORD)) for role, name in names.items()}
        yield process, users, admin


def start_run(process, user, token, seconds, tag):
    """``deepvre run gpu.ipynb --detach --profile gpu-1`` in a kernel of ``user``'s server; returns
    the run's folder (read here as root)."""
    code = f"""
import json, os, subprocess
os.chdir(os.path.expanduser('~'))
open('gpu.ipynb', 'w').write({json.dumps(json.dumps(NOTEBOOK))})
open('gpu-settings.yaml', 'w').write({json.dumps(json.dumps({"profiles": PROFILES}))})
done = subprocess.run(['deepvre', 'run', 'gpu.ipynb', '--detach', '--profile', 'gpu-1', '--settings',
                       'gpu-settings.yaml', '-p', 'seconds', '{seconds}', '--runs-dir', 'runs-{tag}'],
                      capture_output=True, text=True, timeout=120)
assert done.returncode == 0, done.stdout + done.stderr
print([d for d in os.listdir('runs-{tag}') if os.path.isdir(os.path.join('runs-{tag}', d))][0])
"""
    run_id = run_code(process.server_url(user), token, code).strip().splitlines()[-1]
    return Path(pwd.getpwnam(user).pw_dir) / f"runs-{tag}" / run_id


def status(folder):
    try:
        return json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def test_a_run_queues_behind_a_server_a_second_is_refused_and_rows_show(hub):
    process, users, admin = hub
    (alice, alice_s, alice_t), (bob, _, bob_t) = users["alice"], users["bob"]
    assert process.spawn(alice_t, alice, profile="cpu").status_code in (201, 202)
    assert process.spawn(bob_t, bob, profile="gpu-1").status_code in (201, 202)

    # bob's server holds the GPU: alice's run waits, its place in its status
    first = start_run(process, alice, alice_t, 60, "a")  # long enough for the second to find it
    queued = wait_for(lambda: status(first).get("gpu_queue") and status(first), 60, "the run in the GPU queue")
    assert queued["state"] == "queued" and queued["gpu_queue"]["place"] == 1, queued
    assert queued["gpu_queue"]["message"].startswith("Waiting for a GPU: 1st in the queue"), queued
    assert not (first / "output.ipynb").exists()  # nothing ran yet

    # bob's server stops: the run takes the GPU at once and its kernel sees it
    process.stop_server(bob_t, bob)
    running = wait_for(lambda: status(first).get("state") == "running" and status(first), 60, "the run admitted")
    assert running["gpu_ids"] == ["0"] and not running.get("gpu_queue"), running
    wait_for(lambda: (first / "seen.json").exists(), 90, "the notebook's record")
    assert json.loads((first / "seen.json").read_text()) == {"cuda": "0"}

    # her spawn page counts the run's GPU, not the run as a server
    form = alice_s.get(f"{process.url}/hub/spawn/{alice}/more", timeout=30).text
    assert "Your limits: GPUs at once: 1 of 1; servers at once: 1 of 2" in form or (
        "servers at once: 1 of 2" in form and "GPUs at once: 1 of 1" in form), form

    # while it holds the GPU, a second run of alice is refused by her quota: the limit named, never started
    second = start_run(process, alice, alice_t, 1, "b")
    refused = wait_for(lambda: status(second).get("state") == "failed" and status(second), 60, "the refusal")
    assert refused["error"].startswith("Not started: GPUs at once (your limit): 1 of 1 held"), refused
    assert f"{alice}/{first.name} (GPU 0)" in refused["error"], refused
    assert not (second / "output.ipynb").exists() and not (second / "seen.json").exists()

    # the first run ends: its row closes as done, and the GPU is free again for bob's server
    wait_for(lambda: status(first).get("state") == "done", 120, "the run's end")
    book = usage.UsageBook(usage.default_url(process.state_dir))
    rows = wait_for(lambda: [r for r in book.rows(users=[alice]) if r["kind"] == "run" and r["end"]], 30,
                    "the run's closed row")
    assert [(r["server"], r["profile"], r["gpus"], r["gpu_ids"], r["reason"]) for r in rows] == [
        (first.name, "gpu-1", 1, "0", "done")]
    assert process.spawn(bob_t, bob, profile="gpu-1").status_code in (201, 202)  # not held by a leftover
    assert (process.server_model(bob_t, bob) or {}).get("ready")

    # the usage page: alice sees her run; the admin sees it beside bob's GPU servers
    page = alice_s.get(f"{process.url}/hub/usage", timeout=30).text
    assert f"run {first.name}" in page and bob not in page
    page = admin.get(f"{process.url}/hub/usage", timeout=30).text
    assert f"run {first.name}" in page and bob in page
    process.stop_server(bob_t, bob)
    process.stop_server(alice_t, alice)
    assert "admitted with GPUs [0]" in process.log_text()
    assert os.path.exists(first / "output.ipynb")


def test_a_restarted_hub_keeps_a_runs_gpu(hub):
    """The hub restarts while alice's run holds the GPU: the run keeps it (deepvre_runs in the usage
    database), so bob's GPU server waits until the run ends, and the run's row ends as done."""
    process, users, _ = hub
    (alice, _, alice_t), (bob, _, bob_t) = users["alice"], users["bob"]
    if not (process.server_model(alice_t, alice) or {}).get("ready"):
        assert process.spawn(alice_t, alice, profile="cpu").status_code in (201, 202)
    run = start_run(process, alice, alice_t, 45, "c")
    held = wait_for(lambda: status(run).get("state") == "running" and status(run), 90, "the run admitted")
    assert held["gpu_ids"] == ["0"]
    process.restart()
    r = process.spawn(bob_t, bob, profile="gpu-1", wait=False)
    assert r.status_code == 202, r.text  # the GPU is the run's still: bob's server waits
    assert (process.server_model(bob_t, bob) or {}).get("pending") == "spawn"
    assert f"run {alice}/run:{run.name} keeps GPUs [0] across the restart" in process.log_text()
    wait_for(lambda: status(run).get("state") == "done", 180, "the run's end")
    process.wait_ready(bob_t, bob, timeout=120)
    book = usage.UsageBook(usage.default_url(process.state_dir))
    (row,) = [r for r in book.rows(users=[alice]) if r["server"] == run.name]
    assert (row["kind"], row["gpu_ids"], row["reason"]) == ("run", "0", "done"), row
    assert book.admitted_runs() == []
    process.stop_server(bob_t, bob)
    process.stop_server(alice_t, alice)
