"""Idle culling: ``jupyterhub-idle-culler`` as a hub-managed service.

Servers holding GPUs get their own, shorter timeout (``culling.gpu_timeout``), and a profile
may set its own ``idle_timeout``. The culler has no per-server flag, so a culler ``--config``
file installs :func:`make_cull_arbiter` as ``c.IdleCuller.cull_arbiter_hook``; it reads the
spawner state (``gpu_ids``, ``profile``), which needs the ``admin:server_state`` scope.

A server may also have a maximum lifetime (``culling.max_age``, ``culling.gpu_max_age``, a
profile's ``max_age``): the arbiter stops it once it is that old, idle or not. The GPU queue's
"at the latest" estimate comes from it, and the accounting row ends as ``lifetime``.
"""

import datetime
import json
import sys
from pathlib import Path

CONFIG_NAME = "idle_culler_config.py"  # in the state folder
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers", "admin:server_state"]


def idle_limit(server, default_timeout, gpu_timeout, profile_timeouts):
    """Seconds this server (a hub API server model) may stay idle."""
    state = server.get("state") or {}
    slug = state.get("profile")
    if slug in profile_timeouts:
        return profile_timeouts[slug]
    if state.get("gpu_ids"):
        return min(gpu_timeout, default_timeout)
    return default_timeout


def max_age(server, lifetimes):
    """Seconds this server may run in all, or None (no limit). ``lifetimes``: :func:`lifetimes`."""
    state = server.get("state") or {}
    slug = state.get("profile")
    if slug in lifetimes["profiles"]:
        return lifetimes["profiles"][slug]
    limits = [lifetimes["default"]] + ([lifetimes["gpu"]] if state.get("gpu_ids") else [])
    limits = [v for v in limits if v]
    return min(limits) if limits else None


def lifetimes(culling, profiles):
    """The maximum lifetimes of the settings: ``{"default", "gpu", "profiles": {slug: seconds}}``."""
    return {"default": culling.get("max_age"), "gpu": culling.get("gpu_max_age"),
            "profiles": {p["slug"]: p["max_age"] for p in profiles if p.get("max_age")}}


def parse_started(text):
    """A hub API date (``2026-12-01T02:30:00.123456Z``) as a naive UTC datetime, or None."""
    if not text:
        return None
    moment = datetime.datetime.fromisoformat(text)
    return moment.astimezone(datetime.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def past_max_age(server, started, now, lifetimes_):
    """Whether the server started at ``started`` (naive UTC) has reached its maximum lifetime at ``now``."""
    limit = max_age(server, lifetimes_)
    return bool(limit and started and (now - started).total_seconds() >= limit)


def make_cull_arbiter(default_timeout, gpu_timeout, profile_timeouts=None, max_ages=None):
    """A ``cull_arbiter_hook(inactive, inactive_limit, server)`` applying per-server limits: the
    idle limit, and the maximum lifetime (``max_ages``: :func:`lifetimes`; None: none)."""
    profile_timeouts = dict(profile_timeouts or {})
    max_ages = max_ages or {"default": None, "gpu": None, "profiles": {}}

    def cull_arbiter(inactive, inactive_limit, server, **kwargs):
        if inactive is None:
            return False
        if inactive.total_seconds() >= idle_limit(server, default_timeout, gpu_timeout, profile_timeouts):
            return True
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        return past_max_age(server, parse_started(server.get("started")), now, max_ages)

    return cull_arbiter


def culler_config_text(culling, profiles):
    """The culler's ``--config`` file: installs the arbiter with these settings."""
    timeouts = {p["slug"]: p["idle_timeout"] for p in profiles if p.get("idle_timeout")}
    args = json.dumps([culling["timeout"], culling["gpu_timeout"], timeouts, lifetimes(culling, profiles)])
    return (
        "# Written by deepvre at hub start: per-server idle limits (GPU servers shorter) and lifetimes.\n"
        "import json\n"
        "from deepvre_hub.culler import make_cull_arbiter\n"
        f"c.IdleCuller.cull_arbiter_hook = make_cull_arbiter(*json.loads({args!r}))\n"
    )


def config_path(state_dir):
    return Path(state_dir) / CONFIG_NAME


def culler_service(culling, profiles, state_dir):
    """The hub-managed service definition and its role, or ``(None, None)`` when culling is off.

    The culler's own ``--timeout`` is the shortest limit, so it looks at every server that
    might be due; the arbiter then applies each server's real limit.
    """
    if not culling.get("enabled", True):
        return None, None
    config = config_path(state_dir)
    config.write_text(culler_config_text(culling, profiles))
    config.chmod(0o644)  # root's; its service account reads it
    limits = [culling["timeout"], culling["gpu_timeout"]] + [p["idle_timeout"] for p in profiles if p.get("idle_timeout")]
    service = {
        "name": "idle-culler",
        "command": [
            sys.executable, "-m", "jupyterhub_idle_culler",
            f"--timeout={min(limits)}",
            f"--cull-every={culling['every']}",
            f"--config={config}",
        ],
    }
    role = {"name": "idle-culler", "scopes": SCOPES, "services": ["idle-culler"]}
    return service, role
