"""Nobody jumps the GPU queue (issue 19, item 1), on a real local hub (root, one listed GPU):
not with a second named server, a re-spawn, a CPU profile, a ``priority`` in the start request,
nor by touching another user's pending spawn; an anonymous local process can neither read a
queued spawn's progress nor cancel it. Only an admin's group priority (``gpus.queue.priorities``)
puts a request ahead. One user cannot fill the hub's pending spawns (``hub.concurrent_spawn_limit``,
which counts waiting spawns) for everyone else: her places are her servers, at most 1 + named_servers."""

import pytest
import requests

from tests.hub.hubprocess import wait_for
from tests.hub.test_gpu_queue_hub import PASSWORD, progress_path, queue_event, queue_post, start_queue_hub
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]
SPAWN_LIMIT = 6  # hub.concurrent_spawn_limit: more than one user's servers (1 + named_servers 3)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process, names = start_queue_hub(tmp_path_factory.mktemp("queue-jump-hub"), roles=("alice", "bob", "carol", "erin"),
                                     gpus={"queue": {"priorities": {"staff": 10}}},
                                     hub={"named_servers": 3, "keep_servers": True, "concurrent_spawn_limit": SPAWN_LIMIT})
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        users = {role: (name, *process.approved_user(admin, name, PASSWORD)) for role, name in names.items()}
        admin_token = process.token(admin)
        assert process.api(admin_token, "POST", "/groups/staff").status_code == 201
        r = process.api(admin_token, "POST", "/groups/staff/users", json={"users": [names["erin"]]})
        assert r.status_code == 200, r.text
        yield process, users


def place(process, token, user, server=""):
    message = queue_event(process, token, user, server)
    return message.split(": ", 1)[1].split(" in the queue", 1)[0]


def test_a_user_cannot_jump_the_gpu_queue(hub):
    process, users = hub
    (alice, _, alice_t), (bob, _, bob_t), (carol, _, carol_t) = users["alice"], users["bob"], users["carol"]
    assert process.spawn(alice_t, alice, profile="gpu-1").status_code in (201, 202)
    queue_post(process, bob_t, bob)
    # carol: a start request that names a priority (dropped: only the profile is kept) ...
    r = process.api(carol_t, "POST", f"/users/{carol}/server", json={"profile": "gpu-1", "priority": 99})
    assert r.status_code == 202, r.text
    assert place(process, carol_t, carol) == "2nd"
    # ... a second named server (behind her first) ...
    queue_post(process, carol_t, carol, server="x")
    assert (place(process, carol_t, carol, "x"), place(process, bob_t, bob)) == ("3rd", "1st")
    # ... a re-spawn while pending (the hub answers "already starting": no new request, her place unchanged),
    # a cancel and re-spawn (last) ...
    assert process.spawn(carol_t, carol, profile="gpu-1", wait=False).status_code == 202
    assert place(process, carol_t, carol) == "2nd"
    process.stop_server(carol_t, carol)
    queue_post(process, carol_t, carol)
    assert (place(process, carol_t, carol), place(process, carol_t, carol, "x")) == ("3rd", "2nd")
    # ... a CPU profile starts at once and takes no GPU: bob still heads the queue
    assert process.spawn(carol_t, carol, profile="cpu", server="c").status_code in (201, 202)
    assert place(process, bob_t, bob) == "1st"
    # ... and she cannot touch bob's pending spawn: neither read its progress nor cancel it
    for method in ("GET", "DELETE"):
        path = progress_path(bob) if method == "GET" else f"/users/{bob}/server"
        assert process.api(carol_t, method, path).status_code in (403, 404)
        assert requests.request(method, f"{process.url}/hub/api{path}", timeout=30).status_code in (401, 403)
    assert (process.server_model(bob_t, bob) or {}).get("pending") == "spawn"
    # the GPU goes to bob, the head
    process.stop_server(alice_t, alice)
    process.wait_ready(bob_t, bob, timeout=120)
    assert place(process, carol_t, carol, "x") == "1st"


def test_only_an_admins_group_priority_goes_ahead(hub):
    process, users = hub
    (carol, _, carol_t), (erin, _, erin_t), (bob, _, bob_t) = users["carol"], users["erin"], users["bob"]
    queue_post(process, erin_t, erin)  # erin is in the admin's group "staff" (priority 10): ahead of carol's two
    assert (place(process, erin_t, erin), place(process, carol_t, carol, "x")) == ("1st", "2nd")
    process.stop_server(bob_t, bob)
    process.wait_ready(erin_t, erin, timeout=120)
    for server in ("x", "", "c"):
        process.stop_server(carol_t, carol, server)
    process.stop_server(erin_t, erin)
    wait_for(lambda: not process.server_model(carol_t, carol, "x"), 30, "carol's queued server to go")


def test_one_user_cannot_fill_the_hubs_pending_spawns(hub):
    process, users = hub
    (alice, _, alice_t), (bob, _, bob_t), (carol, _, carol_t) = users["alice"], users["bob"], users["carol"]
    assert process.spawn(alice_t, alice, profile="gpu-1").status_code in (201, 202)
    servers = ("", "x", "c", "y")  # her default and three named servers ("x" and "c" from the tests above)
    try:
        for server in servers:  # carol waits with every server she may have
            queue_post(process, carol_t, carol, server=server)
        r = process.spawn(carol_t, carol, profile="gpu-1", server="w", wait=False)
        assert r.status_code == 400 and "named server" in r.text, r.text  # no fifth place
        # the others still start: bob's CPU server (4 pending of the limit of 6), and he may queue too
        assert process.spawn(bob_t, bob, profile="cpu").status_code in (201, 202)
        queue_post(process, bob_t, bob, server="g")
        assert place(process, bob_t, bob, "g") == "5th"
    finally:
        for server in servers:
            process.stop_server(carol_t, carol, server)
        for server in ("", "g"):
            process.stop_server(bob_t, bob, server)
        process.stop_server(alice_t, alice)
