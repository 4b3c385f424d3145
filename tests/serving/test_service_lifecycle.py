"""Model services as the Models panel starts them, tried from the outside: a real ``jupyter server``
process with the deepvre extension, a real DEEPaaS (``deepvre serve``) per service, requests over
HTTP with the server's token.

A service is "starting" until its own API answers, then "ready"; serving a model again returns the
same service; its log's tail and its stop are in the API; it ends with its server (stopped, or
killed) and a restarted server serves it once, not twice.
"""

import json
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psutil
import pytest
import requests

from tests.extension.conftest import colours_market, colours_model  # noqa: F401 (fixtures)
from tests.hub.hubprocess import free_port, wait_for

JUPYTER = Path(sys.executable).parent / "jupyter"
TOKEN = "lifecycle-test-token"
AUTH = {"Authorization": f"token {TOKEN}"}


class Server:
    """``jupyter server`` with deepvre on ``port``, its catalog the colours market; restartable."""

    def __init__(self, root, market):
        self.root, self.market, self.port, self.proc = root, market, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"
        self.runs = 0

    def start(self):
        self.runs += 1
        env = dict(os.environ, DEEPVRE_MARKET_DIR=str(self.market))
        for var in ("DEEPVRE_MARKET_URL", "DEEPVRE_MARKET_TOKEN", "JUPYTERHUB_USER", "DEEPVRE_SERVER_SETTINGS"):
            env.pop(var, None)
        (self.root / "home").mkdir(exist_ok=True)
        self.log = open(self.root / f"server-{self.runs}.log", "w")
        self.proc = subprocess.Popen(
            [str(JUPYTER), "server", "--no-browser", "--allow-root", f"--port={self.port}", "--ip=127.0.0.1",
             f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={self.root / 'home'}",
             "--ServerApp.jpserver_extensions={'deepvre_jupyter': True}",
             f"--DeepvreExtension.cache_dir={self.root / 'cache'}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(self.up, 120, f"jupyter server on {self.port} ({self.root}/server-{self.runs}.log)")

    def up(self):
        assert self.proc.poll() is None, (self.root / f"server-{self.runs}.log").read_text()[-3000:]
        try:
            return requests.get(f"{self.url}/api/status", headers=AUTH, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def api(self, method, path, body=None, params=None):
        r = requests.request(method, f"{self.url}/deepvre/api/{path}", headers=AUTH, params=params,
                             data=None if body is None else json.dumps(body), timeout=300)
        return r.status_code, r.json() if r.content else {}

    def get(self, url, **kw):
        """``url`` (a path as the API gives it) through this server, with its token."""
        return requests.get(self.url + urllib.parse.urlsplit(url).path, headers=AUTH, timeout=60, **kw)

    def services(self):
        """The DEEPaaS launcher processes this server started (its children)."""
        return [p for p in psutil.Process(self.proc.pid).children(recursive=True)
                if "deepvre.serving.launch" in " ".join(p.cmdline())]

    def stop(self, signum=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def server(tmp_path, colours_market):  # noqa: F811
    srv = Server(tmp_path, colours_market)
    srv.start()
    yield srv
    for proc in srv.services() if srv.proc.poll() is None else []:
        proc.kill()
    srv.stop(signal.SIGKILL)


def gone(processes):
    """True when none of ``processes`` (psutil) runs any more (a zombie counts as gone)."""
    def alive(p):
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    return not any(alive(p) for p in processes)


def serve_ready(server):
    status, svc = server.api("POST", "serve", {"model": "colours"})
    assert status == 201 and svc["state"] == "ready", svc
    return svc


def test_a_service_is_starting_until_its_api_answers_and_is_served_once(server):
    status, svc = server.api("POST", "serve", {"model": "colours", "version": "1.0.0", "wait": False})
    assert status == 201 and svc["state"] == "starting", svc  # DEEPaaS takes seconds to load TensorFlow
    assert svc["ref"] == "colours:1.0.0" and svc["ready_at"] is None
    seen = []

    def ready():
        _, view = server.api("GET", f"serve/{svc['ref']}")
        seen.append(view["state"])
        assert view["state"] in ("starting", "ready"), view
        return view if view["state"] == "ready" else None

    view = wait_for(ready, 180, "the service to be ready")
    assert seen[0] == "starting" and view["ready_at"] >= view["started"]
    # ready means its API answers, through this server, now
    models = server.get(view["url"] + "models/")
    assert models.status_code == 200 and [m["name"] for m in models.json()["models"]] == ["colours"], models.text
    # serving it again, by version or as the latest, is the same service
    [launcher] = server.services()
    for body in ({"model": "colours"}, {"model": "colours", "version": "1.0.0"}, {"model": "colours", "wait": False}):
        status, again = server.api("POST", "serve", body)
        assert status == 201 and (again["id"], again["pid"], again["state"]) == (view["id"], launcher.pid, "ready"), again
    assert len(server.services()) == 1 and len(server.api("GET", "serve")[1]["services"]) == 1
    # its log's tail
    status, logged = server.api("GET", f"serve/{svc['ref']}", params={"tail": "3"})
    assert status == 200 and 1 <= len(logged["log"].splitlines()) <= 3, logged
    full = server.api("GET", f"serve/{svc['ref']}")[1]["log"]
    assert "DEEPaaS for colours on unix:" in full and full.endswith(logged["log"])
    assert server.api("GET", f"serve/{svc['ref']}", params={"tail": "0"})[0] == 400
    assert server.api("GET", "serve/nothing:1.0.0")[0] == 404
    # stop: the process (and what it started) and its socket's folder go
    children = launcher.children(recursive=True)
    socket_folder = Path(launcher.cmdline()[launcher.cmdline().index("--socket") + 1]).parent
    status, stopped = server.api("DELETE", f"serve/{svc['ref']}")
    assert status == 200 and stopped["state"] == "stopped", stopped
    wait_for(lambda: gone([launcher, *children]), 30, "the service's processes to end")
    assert not socket_folder.exists()
    assert server.get(view["url"] + "models/").status_code == 404
    # and served again: a new one
    again = serve_ready(server)
    assert again["id"] != view["id"] and server.get(again["url"] + "models/").status_code == 200


def test_a_service_that_cannot_start_says_why(tmp_path, colours_market):  # noqa: F811
    """A service whose model's files are damaged in the store: "exited (code)" with its log's tail,
    not "starting" forever, and the server keeps working."""
    import shutil

    market = tmp_path / "market"
    shutil.copytree(colours_market, market)
    damaged = [f for f in (market / "artifacts").rglob("*") if f.is_file()]
    assert damaged
    for f in damaged:
        f.write_bytes(b"damaged")
    srv = Server(tmp_path, market)
    srv.start()
    try:
        status, svc = srv.api("POST", "serve", {"model": "colours"})
        assert status == 201 and svc["state"].startswith("exited") and svc["state"] != "exited (0)", svc
        assert "IntegrityError" in svc["error"] and "is corrupt" in svc["error"], svc["error"]
        assert srv.api("GET", "serve")[1]["services"][0]["state"] == svc["state"]
        assert srv.services() == []
    finally:
        srv.stop(signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_services_end_with_their_server_and_a_restarted_server_serves_once(server, signum):
    """The hub stops a server with SIGINT, then SIGTERM, then SIGKILL (and so on a hub's Ctrl-C):
    after each, its services are gone; the restarted server knows no stale service, and serving
    twice starts one."""
    first = serve_ready(server)
    launchers = server.services()
    assert [p.pid for p in launchers] == [first["pid"]]
    processes = [*launchers, *launchers[0].children(recursive=True)]
    server.stop(signum)
    wait_for(lambda: gone(processes), 60, f"the services to end after the server's {signum.name}")
    server.start()
    assert server.api("GET", "serve")[1]["services"] == []
    second = serve_ready(server)
    third = serve_ready(server)
    assert third["pid"] == second["pid"] != first["pid"] and len(server.services()) == 1
    assert server.get(second["url"] + "models/").status_code == 200
