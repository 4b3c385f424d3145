"""Idle culling: per-server limits (GPU servers shorter) and the culler service definition."""

from datetime import timedelta

from deepvre_hub import culler

CULLING = {"enabled": True, "timeout": 3600, "gpu_timeout": 600, "every": 60}


def server(gpu_ids=None, profile="cpu"):
    state = {"pid": 1, "profile": profile}
    if gpu_ids:
        state["gpu_ids"] = gpu_ids
    return {"name": "", "state": state}


def test_gpu_servers_get_the_shorter_limit():
    arbiter = culler.make_cull_arbiter(3600, 600, {"long-gpu": 7200})
    idle = timedelta(seconds=900)
    assert arbiter(inactive=idle, inactive_limit=600, server=server(["0"], "gpu-1")) is True
    assert arbiter(inactive=idle, inactive_limit=600, server=server()) is False
    assert arbiter(inactive=timedelta(seconds=3601), inactive_limit=600, server=server()) is True
    # a profile's own idle_timeout wins, even for a GPU server
    assert arbiter(inactive=timedelta(seconds=3601), inactive_limit=600, server=server(["0"], "long-gpu")) is False
    # without the state (no admin:server_state scope) the site timeout applies
    assert arbiter(inactive=idle, inactive_limit=600, server={"name": ""}) is False
    assert arbiter(inactive=None, inactive_limit=600, server=server()) is False


def test_service_definition(tmp_path):
    profiles = [{"slug": "quick", "idle_timeout": 120}]
    service, role = culler.culler_service(CULLING, profiles, tmp_path)
    assert service["name"] == role["services"][0] == "idle-culler"
    assert "--timeout=120" in service["command"] and "--cull-every=60" in service["command"]
    assert "admin:server_state" in role["scopes"] and "delete:servers" in role["scopes"]
    config = (tmp_path / "idle_culler_config.py").read_text()
    namespace = {"c": type("C", (), {"IdleCuller": type("I", (), {})})()}
    exec(compile(config, "idle_culler_config.py", "exec"), namespace)  # noqa: S102 (our own file, as the culler loads it)
    hook = namespace["c"].IdleCuller.cull_arbiter_hook
    assert hook(inactive=timedelta(seconds=130), inactive_limit=120, server=server(profile="quick")) is True
    assert hook(inactive=timedelta(seconds=130), inactive_limit=120, server=server()) is False


def test_culling_off(tmp_path):
    assert culler.culler_service({**CULLING, "enabled": False}, [], tmp_path) == (None, None)
