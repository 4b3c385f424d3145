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


def slurm_spawner(gpus_per_node, groups=(), options=None, end_message=""):
    from deepvre.site.slurm_terms import slurm_settings
    from deepvre_hub.slurm import make_spawner_class

    user = SimpleNamespace(name="alice", groups=[SimpleNamespace(name=g) for g in groups], url="/user/alice/")
    s = make_spawner_class()(user=user, profiles=PROFILES,
                             slurm_settings=slurm_settings({"gpus_per_node": gpus_per_node}))
    s.user_options, s.end_message = options or {}, end_message
    return s


def test_slurm_page_is_the_same_form_with_slurms_gpu_terms():
    """The Slurm spawner shares the form and the server-side choice; it does not pretend to know
    which GPUs are free (Slurm queues the job), only the most a node has."""
    page = slurm_spawner(2).render_options_form()
    assert "GPUs per node: up to 2; Slurm queues" in page and "free now" not in page
    assert 'value="gpu-2" checked' in page and "gpu-1" not in page
    page = slurm_spawner(1, end_message="job 7 ended <TIMEOUT>").render_options_form()
    assert 'value="gpu-2" disabled' in page and "&lt;TIMEOUT&gt;" in page and "deepvre-server-ended" in page
    with pytest.raises(web.HTTPError, match="Unknown hardware profile 'gpu-1'"):
        slurm_spawner(2, options={"profile": "gpu-1"}).chosen_profile()
    s = slurm_spawner(2, groups=["team"], options={"profile": "gpu-1", "partition": "gpu", "gres": "gpu:8"})
    assert s.reduce_user_options()["slug"] == "gpu-1" and s.user_options == {"profile": "gpu-1"}
