"""One user cannot take the machine (issue 13: "named servers are unlimited, so one user can
take every GPU"): a real local hub (root) caps the named servers per user (``hub.named_servers``)
and the GPUs per user over all their servers (``gpus.per_user``), and says so."""

import secrets

import pytest

from deepvre_hub import gpus
from tests.hub.hubprocess import HubProcess
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory": "1G", "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "cpu": 1, "gpus": 1},
]
PASSWORD = "quota-" + secrets.token_hex(6)


def test_the_allocator_caps_gpus_per_user_over_their_servers():
    alloc = gpus.GpuAllocator(["0", "1", "2"])
    assert alloc.allocate("alice/", 1, per_user=2) == ["0"]
    assert alloc.allocate("alice/b", 1, per_user=2) == ["1"]
    with pytest.raises(gpus.GpuQuotaExceeded, match=r"at most 2 GPUs per user; this profile needs 1 and your "
                                                     r"other servers hold 2 \(GPU 0 \(alice/\), GPU 1 \(alice/b\)\)"):
        alloc.allocate("alice/c", 1, per_user=2)
    assert alloc.free() == ["2"]  # a refused request holds nothing, and others still get the GPU
    assert alloc.allocate("alicex/", 1, per_user=2) == ["2"]  # a name that starts like alice's is not alice
    assert alloc.allocate("alice/b", 1, per_user=2) == ["1"]  # restarting a server that holds one is fine


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process = HubProcess({
        "profiles": PROFILES,
        "gpus": {"discovery": "list", "devices": [{"index": "0"}, {"index": "1"}], "per_user": 1},
        "hub": {"named_servers": 1},
    }, tmp_path_factory.mktemp("quota-hub") / "state")
    process.start()
    admin = process.login(process.admin, process.admin_password)
    users = {}
    for role in ("alice", "bob"):
        name = f"quota{secrets.token_hex(3)}{role}"
        users[role] = (name, *process.approved_user(admin, name, PASSWORD))
    yield process, users
    process.teardown()


def test_a_user_gets_one_gpu_and_one_named_server_and_is_told_why_not_more(hub):
    process, users = hub
    alice, _, alice_token = users["alice"]
    bob, _, bob_token = users["bob"]
    assert process.spawn(alice_token, alice, profile="gpu-1").status_code in (201, 202)

    # a second GPU for alice, on a named server, while a GPU is still free: refused, with the reason
    r = process.spawn(alice_token, alice, profile="gpu-1", server="more", wait=False)
    assert r.status_code == 409, r.text
    assert "GPU limit: at most 1 GPU per user" in r.json()["message"]
    # the free GPU is still there for bob
    assert process.spawn(bob_token, bob, profile="gpu-1").status_code in (201, 202)

    # one named server each: "more" (refused above, but made) counts; a second name is refused
    r = process.spawn(alice_token, alice, profile="cpu", server="another", wait=False)
    assert r.status_code == 400 and "maximum of 1 named servers" in r.json()["message"], r.text
    process.stop_server(alice_token, alice)
    process.stop_server(bob_token, bob)
