"""``connect()`` picks the marketplace, and never falls back silently inside a hub: a server with
``$JUPYTERHUB_API_TOKEN`` but no reachable marketplace says so (``deepvre.errors.Unavailable``)
instead of opening a private local catalog that nobody else sees."""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deepvre.errors import Unavailable
from deepvre.market import client
from deepvre.market.catalog import Catalog
from deepvre.market.client import HTTPMarket, LocalMarket, connect


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("JUPYTERHUB_API_TOKEN", "DEEPVRE_MARKET_URL", "DEEPVRE_MARKET_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(tmp_path / "market"))
    monkeypatch.setattr(client, "_ANSWERED", set())
    return monkeypatch


def _serve(status):
    """A loopback HTTP server answering every GET with ``status``; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/services/marketplace/"


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/services/marketplace/"


def test_outside_a_hub_the_local_catalog(env):
    assert isinstance(connect(), LocalMarket)


def test_inside_a_hub_without_a_marketplace_url_is_an_error(env, tmp_path):
    env.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    with pytest.raises(Unavailable, match=r"\$DEEPVRE_MARKET_URL is unset"):
        connect()
    assert not (tmp_path / "market").exists()  # no private catalog was made
    catalog = Catalog(database_url=f"sqlite:///{tmp_path / 'own.sqlite'}", store_url=str(tmp_path / "own"))
    assert isinstance(connect(catalog=catalog), LocalMarket)  # a catalog asked for explicitly


@pytest.mark.parametrize("answer", ["closed", 502])
def test_inside_a_hub_a_marketplace_that_does_not_answer_is_an_error(env, answer):
    env.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    server = None
    if answer == "closed":
        url = _closed_port_url()
    else:  # the proxy's answer while the service is down
        server, url = _serve(answer)
    env.setenv("DEEPVRE_MARKET_URL", url)
    try:
        with pytest.raises(Unavailable, match=f"the marketplace at {url} does not answer"):
            connect()
    finally:
        if server:
            server.shutdown()


def test_inside_a_hub_an_answering_marketplace(env):
    server, url = _serve(200)
    env.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    env.setenv("DEEPVRE_MARKET_URL", url)
    env.setenv("DEEPVRE_MARKET_TOKEN", "market-token")
    try:
        market = connect()
        assert isinstance(market, HTTPMarket)
        assert market.session.headers["Authorization"] == "token market-token"  # never the server's own
    finally:
        server.shutdown()


def test_a_marketplace_gone_mid_session_is_unavailable(env):
    market = HTTPMarket(_closed_port_url(), "t")
    with pytest.raises(Unavailable):
        market.search("x")


def test_the_cli_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DEEPVRE_MARKET_URL", "DEEPVRE_MARKET_TOKEN")}
    env.update(JUPYTERHUB_API_TOKEN="server-token", DEEPVRE_MARKET_DIR=str(tmp_path / "market"))
    out = subprocess.run([str(Path(sys.executable).parent / "deepvre"), "market", "list", "--json"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    answer = json.loads(out.stdout)
    assert answer["error"] == "Unavailable" and "DEEPVRE_MARKET_URL" in answer["errors"][0]
    assert not (tmp_path / "market").exists()


def test_a_store_url_with_a_password_never_reaches_the_command_line():
    """Every account reads a process's command line: credentials in marketplace.store_url
    (sftp://user:pw@..., an fsspec URL) are refused where the hub builds the service's command."""
    from deepvre.errors import Invalid
    from deepvre.market import service

    with pytest.raises(Invalid, match="marketplace.store_url: holds a password"):
        service.hub_service({"marketplace": {"store_url": "sftp://market:s3cret@files.example/catalog"}})
    entry = service.hub_service({"marketplace": {"store_url": "s3://bucket/catalog"}})
    assert entry["command"][-2:] == ["--store-url", "s3://bucket/catalog"]


def test_the_check_is_made_once_per_process(env):
    """The panel connects once per request: only the first connect to a marketplace probes it."""
    server, url = _serve(200)
    env.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    env.setenv("DEEPVRE_MARKET_URL", url)
    probes = []
    real = HTTPMarket.check
    env.setattr(HTTPMarket, "check", lambda self, *a, **k: (probes.append(self.url), real(self, *a, **k)))
    try:
        connect(), connect(), connect()
    finally:
        server.shutdown()
    assert len(probes) == 1
