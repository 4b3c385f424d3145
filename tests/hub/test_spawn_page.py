"""The spawn page and profile choice of ``DeepvreSpawner``, without a running hub."""

from types import SimpleNamespace

import pytest
from tornado import web

from deepvre_hub.spawner import DeepvreSpawner

PROFILES = [
    {"slug": "cpu", "display_name": "CPU <b>small</b>", "description": "for <script>x</script>", "gpus": 0, "groups": []},
    {"slug": "gpu-2", "display_name": "2 GPUs", "gpus": 2, "groups": [], "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1, "groups": ["team"]},
]
ONE_GPU = {"discovery": "list", "devices": [{"index": "0"}]}


def spawner(groups=(), personal=False, gpu_settings=ONE_GPU, options=None):
    user = SimpleNamespace(name="alice", groups=[SimpleNamespace(name=g) for g in groups], url="/user/alice/")
    s = DeepvreSpawner(user=user, profiles=PROFILES, gpu_settings=gpu_settings, personal_mode=personal)
    s.user_options = options or {}
    return s


def test_page_shows_profiles_free_gpus_and_reasons():
    page = spawner().render_options_form()
    assert "GPUs free now: 1 of 1" in page
    # the default profile cannot start (2 GPUs on a 1-GPU machine): the first available is chosen
    assert 'value="cpu" checked' in page
    assert 'value="gpu-2" disabled' in page and "Unavailable: needs 2 GPUs, this machine has 1" in page
    assert "gpu-1" not in page
    assert "Personal mode" not in page


def test_page_escapes_text_and_says_personal_mode():
    page = spawner(personal=True).render_options_form()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;small" in page
    assert "Personal mode" in page


def test_group_members_see_their_profile():
    assert 'value="gpu-1"' in spawner(groups=["team"]).render_options_form()


def test_chosen_profile_checks_groups_server_side():
    assert spawner(options={"profile": "cpu"}).chosen_profile()["slug"] == "cpu"
    assert spawner().chosen_profile()["slug"] == "gpu-2"
    with pytest.raises(web.HTTPError, match="Unknown hardware profile 'gpu-1'"):
        spawner(options={"profile": "gpu-1"}).chosen_profile()
    assert spawner(groups=["team"], options={"profile": "gpu-1"}).chosen_profile()["slug"] == "gpu-1"


def test_form_data_becomes_options():
    assert spawner().options_from_form({"profile": ["gpu-2"]}) == {"profile": "gpu-2"}
