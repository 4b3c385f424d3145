"""The local hub, for real: JupyterHub + configurable-http-proxy + single-user servers as OS accounts.

One hub for the whole module (with a fake ``nvidia-smi`` listing 2 GPUs on its PATH).
"""

import ast
import json
import os
import secrets

import pytest

from tests.hub.hubprocess import HubProcess, run_code
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

TEAM = f"hubt{secrets.token_hex(2)}-team"
PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "description": "one core", "cpu": 1, "memory": "1G", "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "description": "one GPU", "cpu": 1, "gpus": 1},
    {"slug": "gpu-team", "display_name": "Team GPU", "gpus": 1, "groups": [TEAM]},
]
FAKE_NVIDIA_SMI = """#!/bin/sh
# fake nvidia-smi: two GPUs
echo "0, GPU-11111111-aaaa-bbbb-cccc-000000000000, NVIDIA A100-SXM4-40GB, 40960 MiB"
echo "1, GPU-22222222-aaaa-bbbb-cccc-000000000001, NVIDIA A100-SXM4-40GB, 40960 MiB"
"""
PASSWORD = "correct-horse-" + secrets.token_hex(4)


def new_name(role):
    return f"hubt{secrets.token_hex(3)}{role}"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    tmp = tmp_path_factory.mktemp("hub")
    fake_bin = tmp / "bin"
    fake_bin.mkdir()
    (fake_bin / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (fake_bin / "nvidia-smi").chmod(0o755)
    process = HubProcess(
        {"profiles": PROFILES, "gpus": {"discovery": "nvidia-smi", "queue": {"enabled": False}},  # the queue: test_gpu_queue_hub
         "hub": {"keep_servers": True, "named_servers": 5}},
        tmp / "state", env={"PATH": f"{fake_bin}:{os.environ['PATH']}"},
    )
    process.start()
    yield process
    process.teardown()


@pytest.fixture(scope="module")
def admin(hub):
    return hub.login(hub.admin, hub.admin_password)


@pytest.fixture(scope="module")
def person(hub, admin):
    """``person(role)`` -> (name, session, token) of a new, approved user."""

    def make(role):
        name = new_name(role)
        return (name, *hub.approved_user(admin, name, PASSWORD))

    return make


def test_signup_needs_admin_approval_then_login(hub, admin):
    name = new_name("a")
    hub.accounts.append(name)
    r = hub.signup(name, PASSWORD)
    assert r.status_code == 200 and "error" not in r.url
    refused = hub.login(name, PASSWORD, check=False)
    assert "has not been authorized by an administrator yet" in refused.last_response.text
    assert not any(c.name.startswith("jupyterhub-session") for c in refused.cookies)
    hub.authorize(admin, name)
    session = hub.login(name, PASSWORD)
    assert session.get(f"{hub.url}/hub/home", timeout=30).status_code == 200
    wrong = hub.login(name, PASSWORD + "x", check=False)
    assert "Invalid username or password" in wrong.last_response.text


def test_spawn_with_profile_status_kernel_and_stop(hub, person):
    name, session, token = person("b")
    page = session.get(f"{hub.url}/hub/spawn/{name}", timeout=30).text
    assert "GPUs free now: 2 of 2" in page
    assert 'value="cpu" checked' in page and 'value="gpu-1"' in page
    assert "gpu-team" not in page, "a group-restricted profile is shown to a non-member"
    assert hub.spawn(token, name, profile="gpu-team").status_code == 400

    hub.spawn_form(session, name, "cpu")
    hub.wait_ready(token, name)
    hub.check_browser_reaches(session, name)  # the cookie works after the single-user OAuth handshake

    out = run_code(hub.server_url(name), token, (
        "import os, getpass\n"
        "print(getpass.getuser(), os.environ['HOME'], repr(os.environ['CUDA_VISIBLE_DEVICES']),"
        " os.environ['DEEPVRE_PROFILE'], 6 * 7)"
    ))
    assert out.split() == [name, f"/home/{name}", "''", "cpu", "42"]
    assert oct(os.stat(f"/home/{name}").st_mode & 0o777) == "0o700"

    hub.stop_server(token, name)
    assert hub.server_status(session, name, allow_redirects=False).status_code != 200


def test_other_user_cannot_reach_server_or_files(hub, person):
    alice, _, alice_token = person("c")
    bob, bob_session, bob_token = person("d")
    hub.spawn(alice_token, alice)
    hub.spawn(bob_token, bob)
    run_code(hub.server_url(alice), alice_token, "open('secret.txt', 'w').write('alice-secret-42')")

    # bob's hub cookie and token do not open alice's server
    r = bob_session.get(f"{hub.server_url(alice)}api/contents/secret.txt", timeout=60)
    assert r.status_code in (403, 404) or "/hub/login" in r.url, r.status_code
    assert "alice-secret-42" not in r.text
    r = hub.server_status(bob_session, alice, allow_redirects=False)
    assert r.status_code != 200
    r = hub.api(bob_token, "GET", f"/users/{alice}")
    assert r.status_code == 404  # bob may not even see alice
    r = bob_session.get(f"{hub.server_url(alice)}api/contents/secret.txt", timeout=60,
                        headers={"Authorization": f"token {bob_token}"})
    assert r.status_code in (403, 404) and "alice-secret-42" not in r.text

    # bob's own kernel runs as bob and cannot read alice's home
    out = run_code(hub.server_url(bob), bob_token, (
        f"import getpass\n"
        f"try:\n    print(open('/home/{alice}/secret.txt').read())\n"
        f"except PermissionError as e:\n    print(getpass.getuser(), 'denied')\n"
    ))
    assert out.split() == [bob, "denied"]
    # alice still reads her own
    assert run_code(hub.server_url(alice), alice_token, "print(open('secret.txt').read())").strip() == "alice-secret-42"


@pytest.fixture(scope="module")
def gpu_user(hub, person):
    """A user with two GPU servers running (``gpu-a``, ``gpu-b``); returns (name, session, token)."""
    name, session, token = person("g")
    for server in ("gpu-a", "gpu-b"):
        r = hub.spawn(token, name, profile="gpu-1", server=server)
        assert r.status_code in (201, 202), r.text
    return name, session, token


def devices(hub, name, token, server):
    return run_code(hub.server_url(name, server), token, "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])").strip()


def test_two_gpu_servers_get_distinct_devices_third_refused(hub, gpu_user):
    name, session, token = gpu_user
    got = {server: devices(hub, name, token, server) for server in ("gpu-a", "gpu-b")}
    assert sorted(got.values()) == ["0", "1"]

    r = hub.spawn(token, name, profile="gpu-1", server="gpu-c", wait=False)
    assert r.status_code == 409
    assert "No free GPU" in r.json()["message"] and "0 of 2 free" in r.json()["message"]
    page = session.get(f"{hub.url}/hub/spawn/{name}/gpu-c", timeout=30).text
    assert "GPUs free now: 0 of 2" in page
    assert "Unavailable: needs 1 GPU, 0 of 2 free now" in page
    # a CPU server is still fine, and sees no GPU
    hub.spawn(token, name, profile="cpu", server="cpu")
    assert devices(hub, name, token, "cpu") == ""
    hub.stop_server(token, name, "cpu")


def test_hub_restart_keeps_servers_and_gpu_allocations(hub, gpu_user):
    name, _, token = gpu_user
    before = {server: devices(hub, name, token, server) for server in ("gpu-a", "gpu-b")}
    hub.restart()
    assert "Initialized 0 spawners" not in hub.log_text().rsplit("Using Spawner", 1)[-1]
    # the servers still run, reachable through the (new) proxy, with the same devices
    for server in ("gpu-a", "gpu-b"):
        assert (hub.server_model(token, name, server) or {}).get("ready")
        assert devices(hub, name, token, server) == before[server]
    # the rebuilt allocation still refuses a third GPU server
    r = hub.spawn(token, name, profile="gpu-1", server="gpu-c", wait=False)
    assert r.status_code == 409, r.text
    # users and passwords survived: the admin logs in with the first-start password
    hub.login(hub.admin, hub.admin_password)
    # freeing gpu-a gives exactly its device to the next GPU server
    hub.stop_server(token, name, "gpu-a")
    assert hub.spawn(token, name, profile="gpu-1", server="gpu-c").status_code in (201, 202)
    assert devices(hub, name, token, "gpu-c") == before["gpu-a"]


MARKET_PUBLISH = """
import json, zipfile
from deepvre.market.client import HTTPMarket, connect
market = connect()
assert isinstance(market, HTTPMarket), market
with zipfile.ZipFile('model.keras', 'w') as z:
    z.writestr('config.json', json.dumps({'class_name': 'Sequential', 'config': {'name': 'tiny', 'layers': []}}))
    z.writestr('metadata.json', '{}')
open('training.ipynb', 'w').write('{}')
files = {'model.keras': 'model.keras', 'training.ipynb': 'training.ipynb'}
for doc in json.loads(DOCS):
    market.publish(doc, files)
print(sorted(e['name'] for e in market.search()))
"""


def test_marketplace_from_kernels_with_the_servers_token(hub, person):
    """The client in a user's kernel finds the marketplace ($DEEPVRE_MARKET_URL) and calls it with
    the server's own token; another user's kernel lists public models but gets 404 for a private one."""
    from tests.market.conftest import make_document

    alice, _, alice_token = person("m")
    bob, _, bob_token = person("n")
    hub.spawn(alice_token, alice)
    hub.spawn(bob_token, bob)
    public, private = f"{alice}-public", f"{alice}-private"
    docs = [make_document(public), make_document(private, visibility="private")]
    published = run_code(hub.server_url(alice), alice_token, f"DOCS = {json.dumps(json.dumps(docs))}\n" + MARKET_PUBLISH)
    assert ast.literal_eval(published.strip()) == sorted([private, public])  # alice sees both

    out = run_code(hub.server_url(bob), bob_token, (
        "import os\n"
        "from deepvre.market.client import connect\n"
        "from deepvre.market.catalog import NotFound\n"
        "market = connect()\n"
        "print(sorted(e['name'] for e in market.search()))\n"
        f"try:\n    market.show({private!r})\n    print('visible')\n"
        "except NotFound as e:\n    print('404', e)\n"
        "print(os.environ['DEEPVRE_MARKET_URL'])\n"
    ))
    lines = out.strip().splitlines()
    assert ast.literal_eval(lines[0]) == [public]
    assert lines[1].startswith("404")
    assert lines[2].endswith("/services/marketplace/")
