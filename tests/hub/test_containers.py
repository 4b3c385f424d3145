"""Local mode with containers, for real: a root hub (rootful podman) spawns each user's server in
the single-user image through podman's API socket (``local.spawner: container``).

The image is ``make images``' (CI builds it before the tests); when it is missing, it is built
the way tests/images builds it (images/build.py). The hub listens for its API on this machine's
own address (``hub.hub_ip``): loopback inside a container is the container.
"""

import csv
import importlib.util
import io
import json
import os
import secrets
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from deepvre_hub import containers
from tests.hub.hubprocess import HubProcess, run_code, terminal_output
from tests.prereqs import REPO, require, require_program, require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root, pytest.mark.timeout(1800)]

PROFILES = [{"slug": "cpu", "display_name": "CPU", "description": "one core", "cpu": 1, "memory": "1G",
             "default": True}]
PASSWORD = "correct-horse-" + secrets.token_hex(4)


def podman(*args, check=True):
    result = subprocess.run(["podman", *args], env=containers.podman_env(), capture_output=True, text=True, timeout=120)
    if check and result.returncode:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def machine_address():
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("203.0.113.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def singleuser_image(tmp_path):
    """``make images``' single-user image of this version, else built as tests/images builds it."""
    tag = containers.default_image()
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    require_program("mmdebstrap")
    spec = importlib.util.spec_from_file_location("deepvre_images_build", Path(REPO) / "images" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    with open(tmp_path / "build.log", "a") as log:
        try:
            build.build("singleuser-cpu", log)
        except build.BuildError as err:
            pytest.fail(f"{err}\n{(tmp_path / 'build.log').read_text()[-4000:]}")
    return tag


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    require_program("podman")
    address = machine_address()
    require(address is not None, "needs an address other than loopback for the hub API (a default route)")
    require(containers.machine_subid_refusal() is None,
            f"{containers.machine_subid_refusal()} (.ci/run adds the lines)")
    tmp = tmp_path_factory.mktemp("containers")
    image = singleuser_image(tmp)
    process = HubProcess({"profiles": PROFILES, "gpus": {"discovery": "none"}, "hub": {"hub_ip": address},
                          "local": {"spawner": "container", "container": {"image": image}}}, tmp / "state")
    process.users = []
    process.start()
    yield process
    process.teardown()
    for name in process.users:  # the homes outlive the containers
        podman("volume", "rm", "--force", f"deepvre-home-{name}", check=False)


@pytest.fixture(scope="module")
def admin(hub):
    return hub.login(hub.admin, hub.admin_password)


def new_user(hub, admin, role):
    name = f"ctr{secrets.token_hex(3)}{role}"
    hub.users.append(name)
    session, token = hub.approved_user(admin, name, PASSWORD)
    return name, token


def spawned_user(hub, admin, role):
    """A new approved user whose default server (profile cpu) is starting: ``(name, token)``."""
    name, token = new_user(hub, admin, role)
    r = hub.spawn(token, name, profile="cpu")
    assert r.status_code in (201, 202), r.text
    return name, token


@pytest.fixture(scope="module")
def alice(hub, admin):
    return spawned_user(hub, admin, "a")


@pytest.fixture(scope="module")
def bob(hub, admin):
    return spawned_user(hub, admin, "b")


def container_of(name):
    """The inspected container of ``name``'s default server."""
    out = podman("container", "inspect", f"deepvre-{name}")
    return json.loads(out.stdout)[0]


def container_address(name):
    networks = container_of(name)["NetworkSettings"]["Networks"]
    assert list(networks) == [containers.network_name(name)], networks
    return networks[containers.network_name(name)]["IPAddress"]


def test_the_server_runs_in_a_container_reached_through_the_proxy(hub, alice):
    name, token = alice
    out = run_code(hub.server_url(name), token,
                   "import os, urllib.request, urllib.error\n"
                   "print(os.getuid(), os.environ['HOME'], os.environ['DEEPVRE_PROFILE'], os.environ['JUPYTER_IMAGE_SPEC'])\n"
                   "try:\n"
                   "    urllib.request.urlopen(os.environ['DEEPVRE_MARKET_URL'], timeout=10); print('market 200')\n"
                   "except urllib.error.HTTPError as err:\n"
                   "    print('market', err.code)\n")
    uid, home, profile, spec, *market = out.split()
    assert (uid, home, profile) == ("1000", "/home/jovyan", "cpu")
    assert spec == container_of(name)["ImageName"] or spec.endswith(container_of(name)["ImageName"])
    assert market[0] == "market" and market[1].isdigit(), out  # an HTTP answer: the marketplace is reachable


def test_a_runs_environment_record_names_the_containers_image_and_lock(hub, alice):
    """The spawner passes the image and podman's ID of it ($DEEPVRE_IMAGE, $DEEPVRE_IMAGE_ID): the
    environment record a run or a published version takes in the server names the exact image the
    container runs, and the lock that image installed (kept in it at build time)."""
    import hashlib

    name, token = alice
    out = run_code(hub.server_url(name), token,
                   "import json; from deepvre.runs import platform; print(json.dumps(platform.capture()))")
    record = json.loads(out.strip().splitlines()[-1])
    container = container_of(name)
    assert record["container"] == {"in_container": True, "image": container["ImageName"],
                                   "image_digest": f"sha256:{container['Image']}"}, record["container"]
    lock = Path(REPO) / "images" / "singleuser-cpu" / "requirements.lock"
    assert record["lock"]["sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest(), record["lock"]


def test_deepvre_is_on_path_in_a_containers_terminal(hub, alice):
    """The image's /etc/profile sets PATH anew in the terminal's login shell (deepvre_hub.terminals)."""
    name, token = alice
    text = terminal_output(hub.server_url(name), token, "command -v deepvre")
    assert "/opt/deepvre/bin/deepvre" in text, text


def test_the_use_case_notebooks_are_in_a_containers_home(hub, alice):
    """dockerspawner's post_start_cmd copied the image's notebooks into the home volume, as the
    image's user, once (deepvre_hub.examples)."""
    name, token = alice
    out = run_code(hub.server_url(name), token,
                   "import os, pathlib\n"
                   "home = pathlib.Path.home() / 'deepvre-examples'\n"
                   "print(sorted(str(p.relative_to(home)) for p in home.rglob('*.ipynb')))\n"
                   "print(os.stat(home / 'biology' / 'biology.ipynb').st_uid, os.getuid())\n")
    listing, owners = out.strip().splitlines()[-2:]
    assert listing == str(["biology/biology.ipynb", "index.ipynb", "lattice-qcd/lattice-qcd.ipynb",
                           "satellite/satellite.ipynb", "security/security.ipynb"]), out
    file_uid, uid = owners.split()
    assert file_uid == uid == "1000", out


def test_the_profile_becomes_the_containers_limits(alice):
    config = container_of(alice[0])["HostConfig"]
    assert config["Memory"] == 2**30
    assert config["CpuQuota"] == 100_000 and config["CpuPeriod"] == 100_000
    assert config["PidsLimit"] == 4096
    assert config["SecurityOpt"] == ["no-new-privileges"]
    assert set(config["CapAdd"] or []) == set() and "CHOWN" not in (container_of(alice[0])["EffectiveCaps"] or [])


def test_another_users_container_cannot_reach_the_server(hub, alice, bob):
    target = container_address(alice[0])
    assert target != container_address(bob[0])
    # the host (the proxy) reaches it: the refusal below is the network's, not a dead server
    probe = ("import socket\n"
             "try:\n"
             "    socket.create_connection(({!r}, 8888), timeout=5).close(); print('open')\n"
             "except OSError as err:\n"
             "    print('closed', type(err).__name__)\n")
    with socket.create_connection((target, 8888), timeout=5):
        pass
    out = run_code(hub.server_url(bob[0]), bob[1], probe.format(target))
    assert out.startswith("closed"), out
    isolated = json.loads(podman("network", "inspect", containers.network_name(alice[0])).stdout)[0]
    assert isolated["options"] == {"isolate": "true"}


def test_the_api_socket_is_the_hubs_alone(hub, alice):
    sock = hub.state_dir / "podman" / "podman.sock"
    info = os.stat(sock)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 0
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    assert containers.socket_refusal(sock) is None
    out = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c",
                          f"import socket; socket.socket(socket.AF_UNIX).connect({str(sock)!r})"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "PermissionError" in out.stderr, out


def test_the_home_outlives_a_restart_in_a_new_user_namespace(hub, admin):
    """A file written in the home is there, and writable, after the server is stopped and started
    again (its container's user namespace is a new one; podman's U option hands the volume over)."""
    name, token = spawned_user(hub, admin, "h")
    hub.wait_ready(token, name)
    write = "import pathlib; p = pathlib.Path.home() / 'kept.txt'; p.write_text(p.read_text() + 'x' if p.exists() else 'x'); print(p.read_text())"
    assert run_code(hub.server_url(name), token, write).strip() == "x"
    hub.stop_server(token, name)
    r = hub.spawn(token, name, profile="cpu")
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(token, name)
    assert run_code(hub.server_url(name), token, write).strip() == "xx"
    inside, outside, size = Path(f"/proc/{container_of(name)['State']['Pid']}/uid_map").read_text().split()
    assert (inside, size) == ("0", "65536") and int(outside) >= 2**31 - 1  # the containers' ids, no account's
    hub.stop_server(token, name)


def usage_rows(hub, admin, name):
    response = admin.get(f"{hub.url}/hub/usage", params={"format": "csv", "user": name}, timeout=30)
    assert response.status_code == 200, response.text[:300]
    return list(csv.DictReader(io.StringIO(response.text)))


def test_stop_removes_the_container_and_its_network(hub, admin, alice):
    name, token = alice
    [row] = usage_rows(hub, admin, name)  # usage accounting as for local processes: the row is open
    assert (row["profile"], row["end"], row["reason"]) == ("cpu", "", "")
    hub.stop_server(token, name)
    assert podman("container", "exists", f"deepvre-{name}", check=False).returncode == 1
    assert podman("network", "exists", containers.network_name(name), check=False).returncode == 1
    assert podman("volume", "exists", f"deepvre-home-{name}", check=False).returncode == 0  # the home stays
    [row] = usage_rows(hub, admin, name)
    assert row["end"] and row["reason"] == "user", row


def test_a_hub_api_on_loopback_is_refused_at_start(tmp_path):
    """Loopback inside a container is the container: the hub says which setting to change and exits."""
    require_root()
    require_proxy()
    process = HubProcess({"profiles": PROFILES, "gpus": {"discovery": "none"}, "local": {"spawner": "container"}},
                         tmp_path / "state")
    try:
        with pytest.raises(RuntimeError, match="exited"):
            process.start(timeout=60)
        assert "hub.hub_ip: local.spawner is container" in process.log_text()
        assert not (process.state_dir / "podman" / "podman.sock").exists()  # nothing started
    finally:
        process.teardown()
