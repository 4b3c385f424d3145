"""Idle culling: per-server limits (GPU servers shorter) and the culler service definition."""

from datetime import UTC, datetime, timedelta

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


def test_a_maximum_lifetime_stops_busy_servers_too():
    now = datetime.now(UTC).replace(tzinfo=None)
    lifetimes = culler.lifetimes({"max_age": 7200, "gpu_max_age": 3600}, [{"slug": "short", "max_age": 60}])
    arbiter = culler.make_cull_arbiter(3600, 600, {}, lifetimes)

    def started(seconds_ago):
        return (now - timedelta(seconds=seconds_ago)).isoformat() + "Z"

    busy = timedelta(seconds=5)
    assert arbiter(inactive=busy, inactive_limit=600, server={**server(), "started": started(7300)}) is True
    assert arbiter(inactive=busy, inactive_limit=600, server={**server(), "started": started(3700)}) is False
    assert arbiter(inactive=busy, inactive_limit=600, server={**server(["0"], "gpu-1"), "started": started(3700)}) is True
    assert arbiter(inactive=busy, inactive_limit=600, server={**server(["0"], "short"), "started": started(70)}) is True
    assert arbiter(inactive=busy, inactive_limit=600, server={**server(["0"], "short"), "started": started(50)}) is False
    # without settings (the earlier config files), no lifetime
    assert culler.make_cull_arbiter(3600, 600)(inactive=busy, inactive_limit=600,
                                               server={**server(), "started": started(10**6)}) is False
    assert culler.max_age(server(), culler.lifetimes({}, [])) is None
    assert culler.parse_started("2026-12-01T02:30:00.123456Z") == datetime(2026, 12, 1, 2, 30, 0, 123456)


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
    old = {**server(), "started": (datetime.now(UTC) - timedelta(hours=3)).isoformat()}
    assert hook(inactive=timedelta(seconds=1), inactive_limit=120, server=old) is False  # no max_age set
    service, _ = culler.culler_service({**CULLING, "max_age": 7200}, profiles, tmp_path)
    exec(compile((tmp_path / "idle_culler_config.py").read_text(), "idle_culler_config.py", "exec"), namespace)  # noqa: S102
    assert namespace["c"].IdleCuller.cull_arbiter_hook(inactive=timedelta(seconds=1), inactive_limit=120,
                                                       server=old) is True


def test_culling_off(tmp_path):
    assert culler.culler_service({**CULLING, "enabled": False}, [], tmp_path) == (None, None)
