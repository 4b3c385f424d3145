"""A real OpenID Connect provider (npm oidc-provider) and a real JupyterHub +
configurable-http-proxy on loopback, the hub configured by deepvre_hub.oidc.configure."""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urljoin

import pytest
import requests

from tests.prereqs import REPO, require, require_program

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_JS = os.path.join(HERE, "oidc_server", "server.mjs")
CHP = os.path.join(REPO, "node_modules", ".bin", "configurable-http-proxy")
VENV_BIN = os.path.dirname(sys.executable)
ACCESS_TOKEN_TTL = 6  # seconds: short, so the tests see the hub refresh tokens
CLIENT_SECRET_ENV = "DEEPVRE_TEST_OIDC_SECRET"
ENTITLEMENT = "urn:mace:egi.eu:group:{}:role=member#aai.egi.eu"
# alice is a member, carol an admin (by the admins subgroup), mallory in another VO only.
ACCOUNTS = {
    "alice": {"preferred_username": "alice",
              "eduperson_entitlement": [ENTITLEMENT.format("vo.deepvre.eu"),
                                        "urn:mace:egi.eu:group:vo.deepvre.eu:role=vm_operator#aai.egi.eu"]},
    "carol": {"preferred_username": "carol",
              "eduperson_entitlement": [ENTITLEMENT.format("vo.deepvre.eu:admins")]},
    "mallory": {"preferred_username": "mallory",
                "eduperson_entitlement": [ENTITLEMENT.format("vo.other.eu")]},
    # a name that is no OS account name as it is (local mode maps it: deepvre_hub.accounts)
    "dave": {"preferred_username": "Dave.Smith@egi.eu",
             "eduperson_entitlement": [ENTITLEMENT.format("vo.deepvre.eu")]},
}
TIMEOUT = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what, timeout=TIMEOUT, proc=None, log=None):
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited ({proc.returncode})\n{tail(log)}")
        try:
            result = check()
        except requests.RequestException:
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout} s\n{tail(log)}")


def tail(path, n=4000):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()[-n:]


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def auth_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("auth-oidc")


@pytest.fixture(scope="session")
def hub_port():
    return free_port()


@pytest.fixture(scope="session")
def oidc_provider(auth_tmp, hub_port):
    """The provider's issuer URL, with one client for the hub and the ACCOUNTS."""
    node = require_program("node")
    require(os.path.exists(os.path.join(REPO, "node_modules", "oidc-provider")),
            "needs npm oidc-provider in node_modules (npm install)")
    secret = secrets.token_urlsafe(16)
    config = {
        "clients": [{
            "client_id": "deepvre-hub",
            "client_secret": secret,
            "redirect_uris": [f"http://127.0.0.1:{hub_port}/hub/oauth_callback"],
            "grant_types": ["authorization_code", "refresh_token"],
        }],
        "accounts": ACCOUNTS,
        "access_token_ttl": ACCESS_TOKEN_TTL,
    }
    config_path = auth_tmp / "provider.json"
    config_path.write_text(json.dumps(config))
    log = auth_tmp / "provider.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([node, SERVER_JS, str(config_path)], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def issuer():
            m = re.search(r"listening (http://\S+)", tail(log))
            return m and m.group(1)
        url = wait_for(issuer, "oidc provider", proc=proc, log=log)
        yield {"issuer": url, "client_id": "deepvre-hub", "client_secret": secret, "log": log}
    finally:
        stop(proc)


HUB_CONFIG = """\
import json
from deepvre_hub import oidc

settings = json.load(open({settings!r}))
oidc.configure(c, settings, state_dir={state_dir!r})

c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_api_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {state_dir!r} + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {state_dir!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {state_dir!r} + "/cookie_secret"
c.JupyterHub.redirect_to_server = False
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.JupyterHub.services = [{{"name": "auth-tests", "api_token": {api_token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "auth-tests",
    "scopes": ["admin:users", "admin:auth_state", "admin:server_state", "servers", "list:users"],
    "services": ["auth-tests"],
}}]
"""


@pytest.fixture(scope="session")
def hub(oidc_provider, auth_tmp, hub_port):
    """A running hub logging in through the provider: its URL, API token and state dir."""
    jupyterhub = os.path.join(VENV_BIN, "jupyterhub")
    require(os.path.exists(CHP), "needs configurable-http-proxy in node_modules (npm install)")
    require(os.path.exists(jupyterhub), "needs jupyterhub in the venv")
    state_dir = auth_tmp / "hub"
    state_dir.mkdir()
    settings = {"mode": "local", "oidc": {
        "issuer": oidc_provider["issuer"],
        "client_id": oidc_provider["client_id"],
        "client_secret_env": CLIENT_SECRET_ENV,
        "callback_url": f"http://127.0.0.1:{hub_port}/hub/oauth_callback",
        "scopes": ["openid", "profile", "eduperson_entitlement", "offline_access"],
        # oidc-provider grants offline_access (a refresh token) only with prompt=consent.
        "authorize_params": {"prompt": "consent"},
        "username_claim": "preferred_username",
        "login_service": "Test provider",
        "groups": {
            "claim": "eduperson_entitlement",
            "pattern": r"^urn:mace:egi\.eu:group:(?P<group>[^#]+?):role=member#aai\.egi\.eu$",
            "rename": {"vo.deepvre.eu:admins": "deepvre-admins"},
        },
        "allowed_groups": ["vo.deepvre.eu"],
        "admin_groups": ["deepvre-admins"],
        "refresh_age": 300,
    }}
    (state_dir / "settings.json").write_text(json.dumps(settings))
    api_token = secrets.token_hex(16)
    (state_dir / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
        settings=str(state_dir / "settings.json"), state_dir=str(state_dir), port=hub_port,
        hub_api_port=free_port(), proxy_api_port=free_port(), chp=CHP,
        singleuser=os.path.join(VENV_BIN, "jupyterhub-singleuser"), api_token=api_token,
    ))
    env = {k: v for k, v in os.environ.items() if k != "JUPYTERHUB_CRYPT_KEY"}
    env[CLIENT_SECRET_ENV] = oidc_provider["client_secret"]
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    log = state_dir / "hub.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([jupyterhub, "-f", str(state_dir / "jupyterhub_config.py")],
                                cwd=state_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{hub_port}"
    try:
        wait_for(lambda: requests.get(url + "/hub/api", timeout=5).ok, "hub", proc=proc, log=log)
        yield {"url": url, "token": api_token, "state_dir": state_dir, "log": log,
               "issuer": oidc_provider["issuer"], "provider_log": oidc_provider["log"]}
    finally:
        stop(proc)


def api(hub, method, path, **kwargs):
    """The hub REST API as the tests' admin service."""
    r = requests.request(method, hub["url"] + "/hub/api" + path, timeout=60,
                         headers={"Authorization": f"token {hub['token']}"}, **kwargs)
    return r


def login(hub, name):
    """The authorization-code flow, driven over HTTP: the hub's login, the provider's
    login and consent forms, back to the hub's callback. Returns (session, last response)."""
    s = requests.Session()
    r = s.get(hub["url"] + "/hub/oauth_login", timeout=60)
    for _ in range(5):
        if not r.url.startswith(hub["issuer"]):
            break
        r.raise_for_status()
        action = re.search(r'<form[^>]*action="([^"]+)"', r.text).group(1)
        prompt = re.search(r'name="prompt" value="(\w+)"', r.text).group(1)
        data = {"prompt": prompt}
        if prompt == "login":
            data.update(login=name, password="any")
        r = s.post(urljoin(r.url, action), data=data, timeout=60)
    return s, r


@pytest.fixture(scope="session")
def user_servers_stopped(hub):
    """Stops the servers the tests started when the session ends."""
    started = []
    yield started
    for name in started:
        api(hub, "DELETE", f"/users/{name}/server")

