"""The marketplace as a JupyterHub-managed service: the pure builders ``jupyterhub_config.py`` calls.

:func:`hub_service` is the ``c.JupyterHub.services`` entry that runs the service process
(:mod:`deepvre.market.app`, ``python -m deepvre.market``), :func:`hub_role` its role,
:func:`user_scopes` what the ``user`` role adds so that browsers may open it, and
:func:`singleuser_environment` where users' servers find it. The service listens where the entry's
``url`` says (the hub passes it as ``$JUPYTERHUB_SERVICE_URL``). Nothing here starts anything or
imports tornado: the web side is :mod:`.handlers`, uploads :mod:`.uploads`, the process :mod:`.app`.
"""

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import Invalid
from ..site.environment import MARKET_DATABASE_URL, MARKET_DIR, MARKET_URL, Environment

SERVICE_NAME = "marketplace"
DATABASE_URL_ENV = MARKET_DATABASE_URL


def url_host(settings):
    """The service's host in URLs: the address the users' servers reach the hub at
    (``hub.hub_connect_ip``, else ``hub.hub_ip``; ``deepvre.site.addresses``), IPv6 in brackets."""
    from ..site.addresses import hub_address

    host = hub_address(settings)
    return f"[{host}]" if ":" in host else host


def service_port(settings):
    """The configured port, else one free loopback port chosen once per process (the hub's)."""
    from ..site.addresses import service_port as chosen

    return chosen(((settings or {}).get("marketplace") or {}).get("port"), SERVICE_NAME)


def hub_service(settings, state_dir=None):
    """The ``c.JupyterHub.services`` entry that runs the marketplace under the hub.

    The catalog lives under ``<state_dir>/marketplace`` (the hub's state; default
    ``$DEEPVRE_STATE_DIR``) unless the ``marketplace:`` settings name a database and store.
    """
    section = (settings or {}).get("marketplace") or {}
    if section.get("store_url") and urlsplit(section["store_url"]).password:
        raise Invalid("marketplace.store_url: holds a password, and the service's command line is "
                      "readable by every account; give the store's credentials in its environment "
                      "(e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) instead")
    command = [sys.executable, "-m", "deepvre.market"]
    for key in ("store_url", "upload_limit", "processes", "tryit_timeout"):
        if section.get(key):
            command += [f"--{key.replace('_', '-')}", str(section[key])]
    if section.get("tryit_check_interval") is not None:  # 0 turns the check off
        command += ["--tryit-check-interval", str(section["tryit_check_interval"])]
    if section.get("reserved_names") is not None:
        command.append(f"--Catalog.reserved_names={json.dumps(list(section['reserved_names']))}")
    if not section.get("seed_base_models", True):
        command.append("--no-seed")
    port = service_port(settings)
    environment = {}
    if section.get("database_url"):  # may hold a password: other accounts can read a command line
        environment[DATABASE_URL_ENV] = section["database_url"]
    env = Environment()
    state_dir = state_dir or env.state_dir
    if state_dir:
        environment[MARKET_DIR] = str(Path(state_dir) / "marketplace")
    elif env.market_dir:
        environment[MARKET_DIR] = env.market_dir
    return {
        "name": SERVICE_NAME,
        "url": f"http://{url_host(settings)}:{port}",  # where the servers reach the hub
        "command": command,  # it listens at the url: the hub passes it as $JUPYTERHUB_SERVICE_URL
        "oauth_no_confirm": True,
        "display": True,
        "environment": environment,
    }


def hub_role(settings=None):
    """The ``c.JupyterHub.load_roles`` entry for the service: read users and their groups."""
    return {
        "name": "deepvre-marketplace",
        "description": "The marketplace reads who is asking: their groups and admin flag.",
        "scopes": ["read:users", "read:users:groups", "read:groups"],
        "services": [SERVICE_NAME],
    }


def user_scopes(settings=None):
    """Scopes to add to the hub's ``user`` role so that browsers may open the marketplace."""
    return [f"access:services!service={SERVICE_NAME}"]


def singleuser_environment(settings):
    """Environment for the users' servers: where the client finds the service."""
    return {MARKET_URL: f"http://{url_host(settings)}:{service_port(settings)}/services/{SERVICE_NAME}/"}
