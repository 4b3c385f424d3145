"""What a profile becomes in a container (``deepvre_hub.containers``' pure builders), and the
settings and addresses the container spawner accepts: no podman, no GPU needed."""

import os
import socket
import stat

import pytest

from deepvre.site.settings import SettingsError, validate_settings
from deepvre_hub import containers

GPU_2 = {"slug": "gpu-2", "display_name": "2 GPUs", "cpu": 8, "memory": "32G", "gpus": 2}
CPU = {"slug": "cpu", "display_name": "CPU", "cpu": 1.5, "memory": "512M"}


def test_settings_default_to_processes_and_describe_every_container_key():
    local = validate_settings({})["local"]
    assert local["spawner"] == "process"
    assert local["container"] == {"image": None, "socket": None, "start_service": True, "gpu_devices": "cdi",
                                  "home_volumes": True, "pids_limit": 4096, "user_namespace": "auto"}
    with pytest.raises(SettingsError, match=r"local\.spawner"):
        validate_settings({"local": {"spawner": "docker"}})
    with pytest.raises(SettingsError, match=r"local\.container\.registry: unknown key"):
        validate_settings({"local": {"container": {"registry": "x"}}})


def test_profile_limits_become_the_containers_cores_and_bytes():
    assert containers.container_limits(CPU) == (1.5, 512 * 2**20)
    assert containers.container_limits(GPU_2) == (8.0, 32 * 2**30)
    assert containers.container_limits({"slug": "bare"}) == (None, None)


def test_gpus_become_cdi_names_or_device_nodes():
    assert containers.gpu_devices([], "cdi") == []
    assert containers.gpu_devices(["1", "3"], "cdi") == ["nvidia.com/gpu=1", "nvidia.com/gpu=3"]
    assert containers.gpu_devices(["1"], "nodes") == [
        "/dev/nvidia1:/dev/nvidia1:rwm", "/dev/nvidiactl:/dev/nvidiactl:rwm",
        "/dev/nvidia-uvm:/dev/nvidia-uvm:rwm", "/dev/nvidia-uvm-tools:/dev/nvidia-uvm-tools:rwm"]
    with pytest.raises(ValueError):
        containers.gpu_devices(["0"], "magic")


def test_host_config_drops_every_capability_and_carries_the_devices():
    config = containers.host_config(GPU_2, ["0", "1"], "cdi", pids_limit=100)
    assert config == {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
                      "devices": ["nvidia.com/gpu=0", "nvidia.com/gpu=1"], "pids_limit": 100}
    assert "pids_limit" not in containers.host_config(CPU, [], pids_limit=0)


def test_host_config_is_what_docker_py_sends(tmp_path):
    """docker-py turns the options into the API's HostConfig (the devices as podman receives them)."""
    import docker

    client = docker.APIClient(base_url=f"unix://{tmp_path / 'none.sock'}", version="1.41")
    sent = client.create_host_config(**containers.host_config(GPU_2, ["2"], "nodes"), mem_limit=2**30,
                                     cpu_period=100_000, cpu_quota=150_000)
    assert sent["CapDrop"] == ["ALL"] and sent["SecurityOpt"] == ["no-new-privileges"]
    assert {"PathOnHost": "/dev/nvidia2", "PathInContainer": "/dev/nvidia2", "CgroupPermissions": "rwm"} in sent["Devices"]
    assert sent["Memory"] == 2**30 and sent["CpuQuota"] == 150_000 and sent["PidsLimit"] == 4096


def test_each_container_gets_a_user_namespace_of_its_own_and_its_home_follows_it():
    assert containers.create_kwargs("auto") == {"host_config": {"UsernsMode": "auto:size=65536"}}
    assert containers.create_kwargs("host") == {}
    # never podman's U option (a chown by path): the hub hands the home over (hand_over)
    assert containers.home_volume("auto") == {"deepvre-home-{username}": {"bind": "/home/jovyan", "mode": "rw"}}
    assert containers.home_volume("host")["deepvre-home-{username}"]["mode"] == "rw"
    assert containers.host_id(["0:2147483647:65536"], 1000) == 2147484647
    assert containers.host_id(["0:5000:10", "10:9000:5"], 12) == 9002
    with pytest.raises(ValueError):
        containers.host_id(["0:5000:10"], 1000)
    assert containers.image_user("1000") == (1000, 100) and containers.image_user("1000:1000") == (1000, 1000)
    assert containers.image_user("") == (0, 0)
    with pytest.raises(ValueError, match="jovyan"):
        containers.image_user("jovyan")


def test_hand_over_chowns_the_whole_home_and_nothing_a_symlink_names(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (chown to other uids)")
    home, outside = tmp_path / "home", tmp_path / "outside"
    (home / "a" / "b" / "c").mkdir(parents=True)
    (home / "a" / "b" / "c" / "f").write_text("x")
    (home / ".hidden").write_text("y")
    outside.mkdir()
    (outside / "g").write_text("z")
    (home / "a" / "link").symlink_to(outside)
    (home / "a" / "glink").symlink_to(outside / "g")
    containers.hand_over(home, 4321, 4322)
    owned = [p for p in [home, *home.rglob("*")] if (p.lstat().st_uid, p.lstat().st_gid) != (4321, 4322)]
    assert owned == []
    assert (outside.stat().st_uid, (outside / "g").stat().st_uid) == (0, 0)


def test_userns_auto_needs_subordinate_ids_for_containers():
    enough = "ana:100000:65536\ncontainers:2147483647:2147483648\n"
    assert containers.subid_refusal({"/etc/subuid": enough, "/etc/subgid": enough}) is None
    why = containers.subid_refusal({"/etc/subuid": enough, "/etc/subgid": "ana:100000:65536\n"})
    assert why.startswith("/etc/subgid:") and "containers:2147483647:2147483648" in why
    assert "user_namespace: host" in containers.subid_refusal({"/etc/subuid": None, "/etc/subgid": enough})
    assert containers.subid_refusal({"/etc/subuid": "containers:1:100\n", "/etc/subgid": enough})


def test_the_container_numbers_its_cdi_gpus_from_zero():
    env = containers.container_environment(GPU_2, ["2", "3"], "cdi")
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["DEEPVRE_PROFILE"] == "gpu-2"
    assert containers.container_environment(GPU_2, ["2", "3"], "nodes")["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert containers.container_environment(CPU, [], "cdi")["CUDA_VISIBLE_DEVICES"] == ""


def test_the_image_and_its_id_reach_the_servers_environment():
    image = "localhost/deepvre/singleuser-cpu:0.1.0"
    assert containers.image_environment(image, "ab" * 32) == {"DEEPVRE_IMAGE": image, "DEEPVRE_IMAGE_ID": "sha256:" + "ab" * 32}
    assert containers.image_environment(image, "sha256:" + "ab" * 32)["DEEPVRE_IMAGE_ID"] == "sha256:" + "ab" * 32
    assert containers.image_environment(image) == {"DEEPVRE_IMAGE": image}  # not inspected: the reference only


def test_each_user_has_an_isolated_network_of_their_own():
    assert containers.network_name("alice") == "deepvre-alice"
    # distinct hub names never share a network
    names = ["a_b", "a-b", "a.b", "a@b", "a_2db"]
    assert len({containers.network_name(n) for n in names}) == len(names)
    assert containers.network_spec("alice")["options"] == {"isolate": "true"}


def test_image_and_socket_defaults(tmp_path):
    assert containers.image({"image": None}).startswith("localhost/deepvre/singleuser-cpu:")
    assert containers.image({"image": "x/y:1"}) == "x/y:1"
    assert containers.api_socket({}, tmp_path) == tmp_path / "podman" / "podman.sock"
    assert containers.service_command("/s/p.sock") == ["podman", "system", "service", "--time=0", "unix:///s/p.sock"]


@pytest.mark.parametrize(("hub", "refused"), [
    ({}, "loopback"),
    ({"hub_ip": "127.0.0.1"}, "loopback"),
    ({"hub_ip": "localhost"}, "loopback"),
    ({"hub_ip": "0.0.0.0"}, "every interface"),
    ({"hub_ip": "127.0.0.1", "hub_connect_ip": "192.0.2.2"}, "nothing of the hub's listens"),
    ({"hub_ip": "192.0.2.2"}, None),
    ({"hub_ip": "0.0.0.0", "hub_connect_ip": "192.0.2.2"}, None),
])
def test_the_containers_must_reach_the_hub_elsewhere_than_loopback(hub, refused):
    why = containers.address_refusal({"hub": hub})
    assert (why is None) if refused is None else (refused in why), why


def socket_at(path, mode):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    os.chmod(path, mode)
    return s


def test_a_socket_other_accounts_could_use_is_refused(tmp_path):
    os.chmod(tmp_path, 0o700)
    with socket_at(tmp_path / "ok.sock", 0o600), socket_at(tmp_path / "all.sock", 0o666), \
            socket_at(tmp_path / "group.sock", 0o660):
        assert containers.socket_refusal(tmp_path / "ok.sock") is None
        assert "every account" in containers.socket_refusal(tmp_path / "all.sock")
        # the hub's own group may connect; another group (not root's) may not
        assert containers.socket_refusal(tmp_path / "group.sock", gid=os.stat(tmp_path / "group.sock").st_gid) is None
        if os.geteuid() == 0:
            os.chown(tmp_path / "group.sock", -1, 4242)
            assert "group 4242" in containers.socket_refusal(tmp_path / "group.sock", gid=0)
    (tmp_path / "file").write_text("")
    assert "not a socket" in containers.socket_refusal(tmp_path / "file")
    assert "no socket" in containers.socket_refusal(tmp_path / "missing.sock")
    os.chmod(tmp_path, 0o777)
    with socket_at(tmp_path / "swap.sock", 0o600):
        assert "writable by others" in containers.socket_refusal(tmp_path / "swap.sock")
    os.chmod(tmp_path, 0o700)
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o700
