"""Idle culling: ``jupyterhub-idle-culler`` as a hub-managed service.

Servers holding GPUs get their own, shorter timeout (``culling.gpu_timeout``), and a profile
may set its own ``idle_timeout``. The culler has no per-server flag, so a culler ``--config``
file installs :func:`make_cull_arbiter` as ``c.IdleCuller.cull_arbiter_hook``; it reads the
spawner state (``gpu_ids``, ``profile``), which needs the ``admin:server_state`` scope.
"""

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


def make_cull_arbiter(default_timeout, gpu_timeout, profile_timeouts=None):
    """A ``cull_arbiter_hook(inactive, inactive_limit, server)`` applying per-server limits."""
    profile_timeouts = dict(profile_timeouts or {})

    def cull_arbiter(inactive, inactive_limit, server, **kwargs):
        if inactive is None:
            return False
        return inactive.total_seconds() >= idle_limit(server, default_timeout, gpu_timeout, profile_timeouts)

    return cull_arbiter


def culler_config_text(culling, profiles):
    """The culler's ``--config`` file: installs the arbiter with these settings."""
    timeouts = {p["slug"]: p["idle_timeout"] for p in profiles if p.get("idle_timeout")}
    args = json.dumps([culling["timeout"], culling["gpu_timeout"], timeouts])
    return (
        "# Written by deepvre at hub start: per-server idle limits (GPU servers shorter).\n"
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
