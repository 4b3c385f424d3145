"""Hardware profiles: pure helpers, group visibility, local environment."""

import pytest

from deepvre.site import profiles

CPU = {"slug": "cpu", "display_name": "CPU", "cpu": 2, "memory": "4G", "gpus": 0, "groups": []}
GPU = {"slug": "gpu-1", "display_name": "1 GPU", "cpu": 4, "memory": "16G", "gpus": 1, "gpu_type": "a100", "groups": []}
TEAM = {"slug": "gpu-2", "display_name": "2 GPUs", "gpus": 2, "groups": ["gpu-users", "admins"], "default": True}


@pytest.mark.parametrize("text, expected", [("4G", 4 * 1024**3), ("512M", 512 * 1024**2), ("1.5K", 1536), ("100", 100), (None, None)])
def test_parse_memory(text, expected):
    assert profiles.parse_memory(text) == expected


def test_parse_memory_refuses_nonsense():
    with pytest.raises(ValueError, match="'4 GB'"):
        profiles.parse_memory("4 GB")


def test_visible_profiles_follow_groups():
    all_ = [CPU, GPU, TEAM]
    assert profiles.visible_profiles(all_, []) == [CPU, GPU]
    assert profiles.visible_profiles(all_, ["physics"]) == [CPU, GPU]
    assert profiles.visible_profiles(all_, ["physics", "gpu-users"]) == all_


def test_default_profile():
    assert profiles.default_profile([CPU, GPU, TEAM]) is TEAM
    assert profiles.default_profile([CPU, GPU]) is CPU
    assert profiles.default_profile([]) is None


def test_summary_and_unavailable_reason():
    assert profiles.summary(GPU) == "4 cores · 16G memory · 1 GPU (a100)"
    assert profiles.summary(CPU).endswith("no GPU")
    assert profiles.unavailable_reason(CPU, 0, 0) is None
    assert profiles.unavailable_reason(GPU, 1, 2) is None
    assert profiles.unavailable_reason(GPU, 0, 0) == "this machine has no GPUs"
    assert profiles.unavailable_reason(TEAM, 2, 1) == "needs 2 GPUs, this machine has 1"
    assert profiles.unavailable_reason(TEAM, 1, 4) == "needs 2 GPUs, 1 of 4 free now"


def test_local_environment():
    env = profiles.local_environment(GPU, ["3"])
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
    assert env["DEEPVRE_PROFILE"] == "gpu-1"
    assert env["OMP_NUM_THREADS"] == "4"
    assert env["DEEPVRE_MEM_LIMIT"] == str(16 * 1024**3)
    assert profiles.local_environment(TEAM, ["0", "2"])["CUDA_VISIBLE_DEVICES"] == "0,2"
    # a CPU server sees no GPU at all
    assert profiles.local_environment(CPU, [])["CUDA_VISIBLE_DEVICES"] == ""


def test_check_profiles():
    assert profiles.check_profiles([CPU, GPU]) == []
    assert profiles.check_profiles([CPU, dict(CPU)]) == ["profiles[1].slug: 'cpu' is already used by profiles[0]"]
