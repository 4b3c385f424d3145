"""GPU discovery and the exclusive allocator (pure), plus discovery through a fake nvidia-smi."""

import pytest

from deepvre_hub import gpus

SMI_OUTPUT = (
    "0, GPU-aaaa, NVIDIA A100-SXM4-40GB, 40960 MiB\n"
    "1, GPU-bbbb, NVIDIA A100-SXM4-40GB, 40960 MiB\n"
)


def test_parse_nvidia_smi():
    found = gpus.parse_nvidia_smi(SMI_OUTPUT)
    assert [g.index for g in found] == ["0", "1"]
    assert found[1] == gpus.Gpu("1", "GPU-bbbb", "NVIDIA A100-SXM4-40GB", "40960 MiB", "/dev/nvidia1")
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        gpus.parse_nvidia_smi("No devices were found\n")


def test_device_nodes_follow_the_drivers_minor_numbers(tmp_path):
    """nvidia-smi's index orders by PCI bus; the device node is named by the driver's minor."""
    for bus, minor in (("0000:3b:00.0", 1), ("0000:86:00.0", 0)):
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(f"Model: \t NVIDIA A100\nDevice Minor: \t {minor}\n")
    found = gpus.parse_nvidia_smi("0, GPU-a, A100, 40960 MiB, 00000000:3B:00.0\n"
                                  "1, GPU-b, A100, 40960 MiB, 00000000:86:00.0\n"
                                  "2, GPU-c, A100, 40960 MiB, 00000000:AF:00.0\n", driver_gpus=str(tmp_path))
    assert [g.device for g in found] == ["/dev/nvidia1", "/dev/nvidia0", "/dev/nvidia2"]  # the last: no entry
    listed = gpus.discover_gpus({"discovery": "list", "devices": [{"index": "0"}, {"index": "1", "device": "/dev/x"}]})
    assert [g.device for g in listed] == ["/dev/nvidia0", "/dev/x"]


def test_discovery_with_fake_nvidia_smi_on_path(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n[ \"$1\" = --query-gpu=index,uuid,name,memory.total,pci.bus_id ] || exit 3\n"
                   f"cat <<'END'\n{SMI_OUTPUT}END\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert [g.uuid for g in gpus.discover_gpus({"discovery": "nvidia-smi"})] == ["GPU-aaaa", "GPU-bbbb"]


def test_discovery_without_nvidia_smi_or_failing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpus.discover_gpus({"discovery": "nvidia-smi"}) == []
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    smi.chmod(0o755)
    assert gpus.discover_gpus({"discovery": "nvidia-smi"}) == []


def test_discovery_from_list_or_none():
    listed = gpus.discover_gpus({"discovery": "list", "devices": [{"index": "2", "name": "T4"}, {"index": "5"}]})
    assert [(g.index, g.name) for g in listed] == [("2", "T4"), ("5", "")]
    assert gpus.discover_gpus({"discovery": "none"}) == []


def test_allocation_is_exclusive():
    alloc = gpus.GpuAllocator(["0", "1", "2"])
    a = alloc.allocate("alice/", 1)
    b = alloc.allocate("bob/train", 2)
    assert a == ["0"] and b == ["1", "2"]
    assert not set(a) & set(b)
    assert alloc.free() == []
    assert alloc.allocate("carol/", 0) == []


def test_refusal_says_how_many_are_free():
    alloc = gpus.GpuAllocator(["0", "1"])
    alloc.allocate("alice/", 1)
    with pytest.raises(gpus.NoFreeGpus) as info:
        alloc.allocate("bob/", 2)
    message = str(info.value)
    assert "needs 2 GPUs, 1 of 2 free now" in message and "GPU 0 (alice/)" in message
    assert alloc.free() == ["1"], "a refused request must not hold anything"


def test_release_frees_only_the_owners_gpus():
    alloc = gpus.GpuAllocator(["0", "1"])
    alloc.allocate("alice/", 1)
    alloc.allocate("bob/", 1)
    assert alloc.release("alice/") == ["0"]
    assert alloc.release("alice/") == []
    assert alloc.free() == ["0"] and alloc.held_by("bob/") == ["1"]


def test_restore_rebuilds_after_restart():
    before = gpus.GpuAllocator(["0", "1", "2"])
    held = {"alice/": before.allocate("alice/", 1), "bob/x": before.allocate("bob/x", 2)}
    after = gpus.GpuAllocator(["0", "1", "2"])
    for owner, ids in held.items():
        after.restore(owner, ids)
    assert after.holders == before.holders
    with pytest.raises(gpus.NoFreeGpus):
        after.allocate("carol/", 1)


def test_restore_ignores_unknown_and_conflicting_ids():
    alloc = gpus.GpuAllocator(["0", "1"])
    assert alloc.restore("alice/", ["0", "7"]) == ["0"]
    assert alloc.restore("bob/", ["0"]) == []
    assert alloc.holders == {"0": "alice/"}


def test_machine_gpus_asks_nvidia_smi_once_per_settings(tmp_path, monkeypatch):
    """The hub's device locking at start and the spawners' allocator share one discovery."""
    calls = tmp_path / "calls"
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho x >> {calls}\ncat <<'END'\n{SMI_OUTPUT}END\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(gpus, "_DISCOVERED", {})
    settings = {"discovery": "nvidia-smi", "nvidia_smi": str(smi)}
    first = gpus.machine_gpus(settings)
    assert gpus.machine_gpus(dict(settings)) is first and [g.index for g in first] == ["0", "1"]
    assert calls.read_text().count("x") == 1
    gpus.machine_gpus({**settings, "per_user": 1})  # another section: asked again
    assert calls.read_text().count("x") == 2
