"""A real JupyterHub 5.5 behind configurable-http-proxy, running the marketplace as its service.

The hub runs a small generated config: DummyAuthenticator, no spawning; users, groups and tokens
are made through the hub REST API with an admin service token. The service itself is the entry of
``deepvre.market.service.hub_service``, its role ``hub_role``::

    with market_hub(tmp_path, {"processes": 2}) as hub:
        requests.get(hub["market_url"] + "api/models", headers={"Authorization": f"token {hub['tokens']['alice']}"})
"""

import contextlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import requests

from tests.hub.hubprocess import free_port, wait_for
from tests.prereqs import REPO, require

from .conftest import stop_process

CHP = Path(REPO) / "node_modules" / ".bin" / "configurable-http-proxy"

HUB_CONFIG = """
import json, os
from deepvre.market.service import hub_service, hub_role, user_scopes
p = json.loads(os.environ["MARKET_TEST"])
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = p["port"]
c.JupyterHub.hub_port = p["hub_port"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % p["proxy_api_port"]
c.ConfigurableHTTPProxy.command = [p["chp"]]
c.JupyterHub.db_url = "sqlite:///" + p["state"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = p["state"] + "/cookie_secret"
c.JupyterHub.pid_file = p["state"] + "/jupyterhub.pid"
c.ConfigurableHTTPProxy.pid_file = p["state"] + "/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"root"}
settings = {"marketplace": p["marketplace"]}
c.JupyterHub.services = [hub_service(settings), {"name": "test-admin", "api_token": p["admin_token"]}]
c.JupyterHub.load_roles = [
    hub_role(settings),
    {"name": "test-admin", "scopes": ["admin:users", "admin:groups", "tokens", "read:users"], "services": ["test-admin"]},
    {"name": "user", "scopes": ["self", *user_scopes(settings)]},
]
"""


def market_answers(proc, url, log, what):
    """Whether the marketplace at ``url`` answers (its ``api/openapi.yaml``), for ``wait_for``;
    raises with the tail of the file ``log`` when ``proc`` (``what``) has exited."""
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with {proc.returncode}:\n" + Path(log).read_text()[-3000:])
    try:
        return requests.get(url + "api/openapi.yaml", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@contextlib.contextmanager
def market_hub(state, marketplace=None, users=("alice", "bob", "carol"), groups=(("lab", ("carol",)),)):
    """Start the hub with the marketplace (``marketplace``: its settings over a catalog in
    ``state``; no base model seeded unless ``seed_base_models`` says so); yields ``url``, ``market_url`` (through the proxy), ``service_url`` (the service's
    own port), ``tokens`` ({user: token}, with the admin ``root``), ``state`` and ``log``."""
    require(CHP.exists(), "needs node_modules/.bin/configurable-http-proxy (npm install)")
    state = Path(state)
    service_port = free_port()
    params = {
        "port": free_port(), "hub_port": free_port(), "proxy_api_port": free_port(), "chp": str(CHP),
        "state": str(state), "admin_token": secrets.token_hex(16),
        "marketplace": {"port": service_port, "database_url": f"sqlite:///{state}/market.sqlite",
                        "store_url": str(state / "artifacts"), "seed_base_models": False, **(marketplace or {})},
    }
    (state / "jupyterhub_config.py").write_text(HUB_CONFIG)
    log = open(state / "hub.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(state / "jupyterhub_config.py")],
        cwd=state, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # the service's own folder (its seed status) in this hub's state
        env=dict(os.environ, MARKET_TEST=json.dumps(params), DEEPVRE_MARKET_DIR=str(state / "marketplace")),
    )
    url = f"http://127.0.0.1:{params['port']}"
    market_url = f"{url}/services/marketplace/"
    try:
        wait_for(lambda: market_answers(proc, market_url, state / "hub.log", "the hub"), 120,
                 "the hub and the marketplace service")
        admin = {"Authorization": f"token {params['admin_token']}"}
        api = f"{url}/hub/api"
        for name in users:
            requests.post(f"{api}/users/{quote(name, safe='')}", headers=admin, timeout=30).raise_for_status()
        for group, members in groups:
            requests.post(f"{api}/groups/{group}", json={"users": list(members)}, headers=admin, timeout=30).raise_for_status()
        tokens = {}
        for name in (*users, "root"):
            r = requests.post(f"{api}/users/{quote(name, safe='')}/tokens", json={"note": "market tests"}, headers=admin, timeout=30)
            r.raise_for_status()
            tokens[name] = r.json()["token"]
        yield {"url": url, "market_url": market_url, "service_url": f"http://127.0.0.1:{service_port}/services/marketplace/",
               "tokens": tokens, "state": state, "log": state / "hub.log"}
    finally:
        stop_process(proc, log)
