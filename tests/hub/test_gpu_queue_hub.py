"""The GPU queue on a real local hub (root, one listed GPU): a GPU spawn that finds the GPU taken
waits, its progress events say its place and an estimate from the holder's idle limit; a release
starts the head at once; stopping a pending spawn cancels it and the next moves up; a quota
refusal and a request for more GPUs than the machine has are refused at once; the order survives
a hub restart (issue 19, item 1)."""

import json
import secrets
import time

import pytest
import requests

from deepvre_hub import usage
from tests.hub.hubprocess import HubProcess, wait_for
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory": "1G", "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "cpu": 1, "gpus": 1},
    {"slug": "gpu-2", "display_name": "2 GPUs", "cpu": 1, "gpus": 2},
]
PASSWORD = "queue-" + secrets.token_hex(6)
ROLES = ("alice", "bob", "carol", "dave", "erin")
GPU_IDLE = 7200  # the culler's limit for GPU servers: the estimate's source (it never culls in the test)


def start_queue_hub(folder, roles=ROLES, **extra):
    """A root hub with one listed GPU, idle culling on (long limits), and approved users
    ``{role: (name, session, token)}``; dave's quota allows no GPU."""
    names = {role: f"q{secrets.token_hex(3)}{role}" for role in roles}
    process = HubProcess({
        "profiles": PROFILES,
        "gpus": {"discovery": "list", "devices": [{"index": "0"}], **extra.pop("gpus", {})},
        "culling": {"enabled": True, "timeout": GPU_IDLE, "gpu_timeout": GPU_IDLE, "every": 3600},
        "hub": {"named_servers": 3, "keep_servers": True},
        "quotas": {"users": {names.get("dave", "nobody"): {"gpus": 0}}},
        **extra,
    }, folder / "state")
    return process, names


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process, names = start_queue_hub(tmp_path_factory.mktemp("queue-hub"))
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        users = {role: (name, *process.approved_user(admin, name, PASSWORD)) for role, name in names.items()}
        yield process, users


def progress_path(user, server=""):
    return f"/users/{user}/servers/{server}/progress" if server else f"/users/{user}/server/progress"


def queue_event(process, token, user, server="", want="Waiting for a GPU", timeout=60):
    """The first progress event of ``user``'s pending spawn whose message has ``want``."""
    deadline = time.monotonic() + timeout
    with requests.get(f"{process.url}/hub/api{progress_path(user, server)}", stream=True, timeout=(10, timeout),
                      headers={"Authorization": f"token {token}"}) as r:
        assert r.status_code == 200, r.text
        seen = []
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append(event.get("message"))
                if want in (event.get("message") or ""):
                    return event["message"]
            assert time.monotonic() < deadline, seen
    raise AssertionError(f"no event with {want!r} for {user}: {seen}")


def queue_post(process, token, user, profile="gpu-1", server=""):
    """A GPU spawn that must queue: the hub answers 202 (still pending after its slow-spawn wait)."""
    r = process.spawn(token, user, profile=profile, server=server, wait=False)
    assert r.status_code == 202, r.text
    assert (process.server_model(token, user, server) or {}).get("pending") == "spawn"
    return r


def test_queue_progress_release_cancel_and_refusals(hub):
    process, users = hub
    (alice, _, alice_t), (bob, _, bob_t), (carol, _, carol_t) = users["alice"], users["bob"], users["carol"]
    (dave, _, dave_t), (erin, erin_session, erin_t) = users["dave"], users["erin"]
    assert process.spawn(alice_t, alice, profile="gpu-1").status_code in (201, 202)
    queue_post(process, bob_t, bob)
    queue_post(process, carol_t, carol)
    first = queue_event(process, bob_t, bob)
    assert first.startswith("Waiting for a GPU: 1st in the queue; a GPU frees up by "), first
    assert f"if {alice}'s server stays idle (idle limit {GPU_IDLE // 60} min)." in first
    assert queue_event(process, carol_t, carol).startswith("Waiting for a GPU: 2nd in the queue;")

    # refusals that waiting would not cure come at once: a quota, more GPUs than the machine has
    r = process.spawn(dave_t, dave, profile="gpu-1", wait=False)
    assert r.status_code == 429 and r.json()["message"].startswith("GPUs at once (your limit): 0 of 0"), r.text
    r = process.spawn(erin_t, erin, profile="gpu-2", wait=False)
    assert r.status_code == 409 and "needs 2 GPUs, 0 of 1 free now" in r.json()["message"], r.text
    assert process.server_model(erin_t, erin) is None and process.server_model(dave_t, dave) is None

    # the spawn page offers the busy GPU profile, saying it will wait; not the one the machine cannot give
    form = erin_session.get(f"{process.url}/hub/spawn/{erin}", timeout=30).text
    assert 'value="gpu-1">' in form and 'value="gpu-2" disabled' in form, form
    assert "Needs 1 GPU, 0 free now: your server will wait in the GPU queue (2 waiting now)" in form
    assert "Unavailable: needs 2 GPUs, this machine has 1" in form

    # bob stops his pending spawn: cancelled, and carol moves up
    process.stop_server(bob_t, bob)
    assert queue_event(process, carol_t, carol).startswith("Waiting for a GPU: 1st in the queue;")
    page = process.spawn_form(erin_session, erin, "gpu-1")  # erin queues from the spawn page
    assert f"/hub/spawn-pending/{erin}" in page.url, page.url
    assert (process.server_model(erin_t, erin) or {}).get("pending") == "spawn"
    assert queue_event(process, erin_t, erin).startswith("Waiting for a GPU: 2nd in the queue;")

    # alice's release starts carol (the head), erin still waits, now first
    process.stop_server(alice_t, alice)
    process.wait_ready(carol_t, carol, timeout=120)
    assert (process.server_model(erin_t, erin) or {}).get("pending") == "spawn"
    assert queue_event(process, erin_t, erin).startswith("Waiting for a GPU: 1st in the queue;")
    process.stop_server(carol_t, carol)
    process.wait_ready(erin_t, erin, timeout=120)

    book = usage.UsageBook(usage.default_url(process.state_dir))
    gpu_rows = {r["user"]: r for r in book.rows(users=[alice, bob, carol, dave, erin]) if r["gpus"]}
    assert set(gpu_rows) == {alice, carol, erin}  # bob's cancelled wait and the refusals hold no row
    assert gpu_rows[carol]["gpu_ids"] == gpu_rows[erin]["gpu_ids"] == "0"
    process.stop_server(erin_t, erin)
    wait_for(lambda: "waits for 1 GPU(s)" in process.log_text(), 5, "the queue in the hub log")


def test_the_queue_keeps_its_order_across_a_hub_restart(hub):
    """JupyterHub drops pending spawns at a restart; the queue's places stay (usage database): the
    first to wait is first again when the users spawn again, whatever order they come back in."""
    process, users = hub
    (alice, _, alice_t), (bob, _, bob_t), (carol, _, carol_t) = users["alice"], users["bob"], users["carol"]
    assert process.spawn(alice_t, alice, profile="gpu-1").status_code in (201, 202)
    queue_post(process, bob_t, bob)
    queue_post(process, carol_t, carol)
    process.restart()
    assert (process.server_model(alice_t, alice) or {}).get("ready")  # keep_servers: alice keeps her GPU
    assert process.server_model(bob_t, bob) is None and process.server_model(carol_t, carol) is None
    queue_post(process, carol_t, carol)  # carol comes back first: still behind bob's kept place
    assert queue_event(process, carol_t, carol).startswith("Waiting for a GPU: 2nd in the queue;")
    queue_post(process, bob_t, bob)
    assert queue_event(process, bob_t, bob).startswith("Waiting for a GPU: 1st in the queue;")
    process.stop_server(alice_t, alice)
    process.wait_ready(bob_t, bob, timeout=120)
    assert (process.server_model(carol_t, carol) or {}).get("pending") == "spawn"
    process.stop_server(bob_t, bob)
    process.wait_ready(carol_t, carol, timeout=120)
    process.stop_server(carol_t, carol)
    book = usage.UsageBook(usage.default_url(process.state_dir))
    assert book.queued() == []  # nobody waits: no place is kept
