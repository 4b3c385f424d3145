"""The hub configuration per deployment mode; ``hub/jupyterhub_config.py`` calls :func:`configure`.

``configure_common`` holds what every mode shares (state files, proxy, authentication, named
servers, services); each mode then sets its spawner: ``configure_local`` here, and
``deepvre_hub.kubernetes.configure(c, settings, state_dir)`` and
``deepvre_hub.slurm.configure(c, settings, state_dir)`` for the other modes. The hub builds on
the core (the marketplace's service definition); nothing below imports the hub.
"""

import json
import logging
import os
import re
import sys
from pathlib import Path

from deepvre.market import service as market
from deepvre.market.catalog import SYSTEM_ACCOUNT
from deepvre.site import environment
from deepvre.site.environment import Environment
from deepvre.site.settings import REPO_ROOT, for_servers

from . import accounts, auth, culler, market_token, mlflow_service, service_accounts

log = logging.getLogger(__name__)


def proxy_command(repo_root=REPO_ROOT):
    """configurable-http-proxy installed into the checkout by npm (``node_modules/.bin``), else on PATH."""
    local = Path(repo_root or "/nonexistent") / "node_modules" / ".bin" / "configurable-http-proxy"
    if repo_root is not None and local.exists():
        return [str(local)]
    return ["configurable-http-proxy"]  # on PATH, e.g. Debian's node-configurable-http-proxy


def read_secret(path):
    return Path(path).read_text().strip()


def configure_common(c, settings, state_dir):
    """Settings every mode shares: state in ``state_dir``, the proxy, auth, named servers, services."""
    hub = settings["hub"]
    state_dir = Path(state_dir)
    c.JupyterHub.ip = hub["ip"]
    c.JupyterHub.port = hub["port"]
    # where the servers call the hub (deepvre.site.addresses; Slurm mode checks the nodes reach it)
    c.JupyterHub.hub_ip = hub.get("hub_ip") or "127.0.0.1"
    if hub.get("hub_connect_ip"):
        c.JupyterHub.hub_connect_ip = hub["hub_connect_ip"]
    c.JupyterHub.hub_port = hub["hub_port"]
    c.JupyterHub.db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state_dir / "jupyterhub.pid")
    c.JupyterHub.allow_named_servers = hub["named_servers"] > 0
    c.JupyterHub.named_server_limit_per_user = hub["named_servers"]
    c.JupyterHub.concurrent_spawn_limit = hub["concurrent_spawn_limit"]  # the GPU queue's waiting spawns count
    c.JupyterHub.cleanup_servers = not hub["keep_servers"]
    c.ConfigurableHTTPProxy.command = proxy_command()
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub['proxy_api_port']}"
    c.ConfigurableHTTPProxy.pid_file = str(state_dir / "proxy.pid")
    token_file = state_dir / "proxy_token"
    if token_file.exists():
        c.ConfigurableHTTPProxy.auth_token = read_secret(token_file)
    c.Spawner.default_url = "/lab"
    auth.configure(c, settings)

    services, roles = [], []
    service, role = culler.culler_service(settings["culling"], settings.get("profiles") or [], state_dir)
    if service:
        services.append(service)
        roles.append(role)
    services.append(market.hub_service(settings, state_dir))
    roles.append(market.hub_role(settings))
    if mlflow_service.enabled(settings):
        services.append(mlflow_service.hub_service(settings, state_dir))
    # browsers open it with the users' OAuth logins; their servers with a token for it alone
    roles.append({"name": "user", "scopes": ["self", *market.user_scopes(settings),
                                             *mlflow_service.user_scopes(settings)]})
    c.Spawner.server_token_scopes = list(SERVER_SCOPES)
    c.Spawner.environment = {**market.singleuser_environment(settings),
                             market_token.ENV: market_token.token_for(market.user_scopes(settings)),
                             **mlflow_service.singleuser_environment(settings),
                             environment.SERVER_SETTINGS: json.dumps(for_servers(settings))}
    group = (settings.get("accounts") or {}).get("group") or accounts.MARKER_GROUP
    try:
        service_accounts.apply(services, settings, state_dir, group)
    except service_accounts.ServiceAccountError as err:
        print(f"deepvre: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


# JupyterHub's default scopes of a server's own token (the ``server`` role)
SERVER_SCOPES = ["users:activity!user", "access:servers!server"]


def configure_local(c, settings, state_dir):
    """Local mode: ``DeepvreSpawner`` processes on this machine, isolated by OS account as root;
    with ``local.spawner: container``, containers through podman (``deepvre_hub.containers``)."""
    if (settings.get("local") or {}).get("spawner") == "container":
        from . import containers

        containers.configure(c, settings, state_dir)
        configure_usage(c, settings, state_dir, "ContainerSpawner")
        log.info("deepvre: each server runs in a container of %s (%s podman)", c.DockerSpawner.image,
                 "rootful" if accounts.hub_is_root() else "rootless")
        return
    from . import spawner

    c.JupyterHub.spawner_class = spawner.DeepvreSpawner
    c.Spawner.cmd = spawner.singleuser_command()
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 120
    c.DeepvreSpawner.profiles = settings.get("profiles") or []
    c.DeepvreSpawner.gpu_settings = settings["gpus"]
    c.DeepvreSpawner.culling = settings["culling"]  # the GPU queue's estimate
    c.DeepvreSpawner.enforce_limits = settings["hub"]["enforce_limits"]
    configure_usage(c, settings, state_dir)
    if settings["hub"]["enforce_limits"] != "off" and accounts.hub_is_root():
        from . import limits

        limits.sweep()  # empty cgroups of servers stopped before this start
    if settings["gpus"].get("restrict_devices", True) and accounts.hub_is_root():
        restrict_gpu_devices(settings["gpus"])
    c.DeepvreSpawner.personal_home_template = str(Path(state_dir) / "homes" / "{username}")
    account_settings = settings.get("accounts") or {}
    c.DeepvreSpawner.account_group = account_settings.get("group") or accounts.MARKER_GROUP
    c.DeepvreSpawner.allowed_existing_accounts = list(account_settings.get("allow_existing") or [])
    person = settings["hub"].get("personal_user") or ""
    c.DeepvreSpawner.personal_user = person
    if accounts.hub_is_root():
        log.info("deepvre: hub runs as root: each user's server runs under the user's own OS account")
    else:
        log.warning(
            "deepvre: PERSONAL MODE: the hub is not root (uid %d), so every server runs under this one "
            "account, beside the hub's secrets: only the admins%s may log in and start servers",
            os.geteuid(), f" and {person!r}" if person else "",
        )
        previous = c.Authenticator.post_auth_hook if "post_auth_hook" in c.Authenticator else None
        c.Authenticator.post_auth_hook = auth.personal_login_hook(person or None, previous)
        if settings["auth"]["type"] == "native":
            c.JupyterHub.authenticator_class = auth.native_authenticator_class()  # shows the refusal


def configure_usage(c, settings, state_dir, spawner="DeepvreSpawner"):
    """The usage accounting (created or migrated now), the quotas (for the ``spawner`` class), the
    page ``/hub/usage``, the gauges on ``/hub/metrics`` and the batch runs' admission
    (``/hub/api/deepvre/runs``)."""
    from . import run_admission, usage, usage_metrics, usage_page

    url = usage.default_url(state_dir)
    try:
        usage.book(url)
    except (usage.UsageDatabaseError, OSError) as err:
        print(f"deepvre: usage accounting ({url}): {err}", file=sys.stderr)
        raise SystemExit(2) from None
    usage_metrics.register(url)
    c[spawner].usage_db_url = url
    c[spawner].quotas = settings["quotas"]
    c[spawner].notify = settings["notify"]  # told when a queued server is ready (deepvre_hub.notify)
    c[spawner].public_hub_url = settings["notify"]["public_url"]
    extra = list(c.JupyterHub.extra_handlers) if "extra_handlers" in c.JupyterHub else []
    c.JupyterHub.extra_handlers = (extra + usage_page.handlers(url, settings["quotas"])
                                   + run_admission.handlers(settings, url))  # batch runs: /hub/api/deepvre/runs


def restrict_gpu_devices(gpu_settings):
    """At hub start, lock every GPU's device node (``gpus.restrict_devices``): servers get theirs."""
    from . import gpu_devices, gpus

    nodes = [g.device for g in gpus.machine_gpus(gpu_settings)]
    try:
        locked = gpu_devices.lock(nodes)
    except (gpu_devices.DevicesUnrestricted, OSError) as err:
        log.error("deepvre: GPU device nodes cannot be restricted (%s): GPU servers will not start", err)
        return
    log.info("deepvre: GPU device nodes open only to the account of the server holding them: %s",
             ", ".join(locked) or "none on this machine")


# Every hub user name, in every mode, is one of these (lower case: authenticators normalize names).
# Names reach URLs (the hub API, services) and paths, where '/', '?', '#', '%', a space or a trailing
# newline would make them name another user: ``alice?x`` looked up as ``/users/alice?x`` is alice.
SAFE_USERNAME = r"[a-z0-9_][a-z0-9_.@+|:=~-]{0,254}"


def username_pattern(existing=None):
    """``Authenticator.username_pattern``: the whole name matches :data:`SAFE_USERNAME` and the
    mode's own pattern ``existing`` (e.g. OS account names), if any, and is not the marketplace's
    system account (``deepvre``, the owner of the base models). ``\\A``/``\\Z`` anchor it
    (JupyterHub uses ``re.match``, and ``$`` alone accepts a trailing newline)."""
    own = rf"(?=(?:{existing})\Z)" if existing else ""
    return rf"\A(?!{re.escape(SYSTEM_ACCOUNT)}\Z){own}(?:{SAFE_USERNAME})\Z"


def refuse_system_account(c, settings):
    """Nobody signs up, logs in or is made (admin panel, REST API) as the system account: it is
    left out of the user name pattern and blocked; naming it as the admin is a settings error."""
    for key in ("admin", "personal_user"):
        if settings["hub"].get(key) == SYSTEM_ACCOUNT:
            print(f"deepvre: hub.{key}: {SYSTEM_ACCOUNT!r} is the marketplace's system account (the owner "
                  "of the base models) and cannot be a hub user; choose another name", file=sys.stderr)
            raise SystemExit(2)
    blocked = set(c.Authenticator.blocked_users) if "blocked_users" in c.Authenticator else set()
    c.Authenticator.blocked_users = blocked | {SYSTEM_ACCOUNT}


def configure(c, settings, state_dir):
    """Configure the hub for ``settings['mode']``."""
    configure_common(c, settings, state_dir)
    mode = settings["mode"]
    if mode == "local":
        configure_local(c, settings, state_dir)
    elif mode == "slurm":
        from . import slurm

        slurm.configure(c, settings, state_dir)
    else:
        from . import kubernetes

        kubernetes.configure(c, settings, state_dir)
    existing = c.Authenticator.username_pattern if "username_pattern" in c.Authenticator else None
    c.Authenticator.username_pattern = username_pattern(existing)
    refuse_system_account(c, settings)


def load_for_hub():
    """Settings and state folder for ``jupyterhub_config.py`` (from ``DEEPVRE_SETTINGS`` / ``DEEPVRE_STATE_DIR``)."""
    from deepvre.site.settings import SettingsError, load_settings, state_dir

    try:
        settings = load_settings()
    except SettingsError as err:
        print(f"deepvre: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    # `deepvre hub up --port/--ip` override the file
    env = Environment()
    if env.hub_port:
        settings["hub"]["port"] = int(env.hub_port)
    if env.hub_ip:
        settings["hub"]["ip"] = env.hub_ip
    return settings, state_dir(settings)
