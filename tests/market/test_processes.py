"""The marketplace service as several processes, started with the command the hub runs."""

import os
import signal
import subprocess

import psutil
import pytest
import requests

from deepvre.market.app import MarketplaceApp
from deepvre.market.service import hub_service
from tests.hub.hubprocess import free_port, wait_for


def test_one_process_by_default():
    assert MarketplaceApp().processes == 1
    assert MarketplaceApp(processes=3).processes == 3
    entry = hub_service({"marketplace": {"port": 1234, "processes": 2}})
    assert entry["command"][-2:] == ["--processes", "2"]
    assert entry["url"] == "http://127.0.0.1:1234"  # the service listens there: $JUPYTERHUB_SERVICE_URL


def test_the_command_line_flags_are_traits(monkeypatch):
    """The flags the hub, the tests and the benchmarks pass set the app's and the catalog's traits."""
    monkeypatch.delenv("JUPYTERHUB_SERVICE_URL", raising=False)
    monkeypatch.setenv("DEEPVRE_MARKET_DATABASE_URL", "sqlite:///from-env.sqlite")
    app = MarketplaceApp()
    app.initialize(["--standalone", "--ip", "0.0.0.0", "--port=8765", "--processes", "2", "--token-file", "/t",
                    "--store-url", "/s", "--upload-limit", "1000"])
    assert (app.standalone, app.ip, app.port, app.processes, app.token_file) == (True, "0.0.0.0", 8765, 2, "/t")
    assert app.config.Catalog == {"store_url": "/s", "upload_limit": 1000, "database_url": "sqlite:///from-env.sqlite"}
    assert app.tryit_timeout == 60
    command = hub_service({"marketplace": {"port": 1234, "tryit_timeout": 2.5}})["command"]
    assert command[-2:] == ["--tryit-timeout", "2.5"]
    app = MarketplaceApp()
    app.initialize(command[3:])  # what the hub runs: [python, -m, deepvre.market, ...]
    assert app.tryit_timeout == 2.5
    app = MarketplaceApp()
    app.initialize(["--database-url", "sqlite:///given.sqlite"])  # given beats the environment
    assert app.config.Catalog.database_url == "sqlite:///given.sqlite"
    assert (app.standalone, app.ip, app.port, app.processes) == (False, "127.0.0.1", 0, 1)


def test_address_and_port_from_the_hub(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://10.0.0.7:10101")
    app = MarketplaceApp()
    app.initialize([])
    assert (app.ip, app.port) == ("10.0.0.7", 10101)
    app = MarketplaceApp()
    app.initialize(["--ip", "0.0.0.0", "--port", "9999"])  # explicit flags win
    assert (app.ip, app.port) == ("0.0.0.0", 9999)
    app = MarketplaceApp()
    app.initialize(["--standalone"])  # in a user's server the variable is the server's own address
    assert (app.ip, app.port) == ("127.0.0.1", 0)


@pytest.fixture
def service(tmp_path):
    """The hub's service entry run as the hub runs it (its command, its environment, JUPYTERHUB_*)."""
    port = free_port()
    # no seed: its process is the service's child too, for as long as the conversion takes (over a minute loaded)
    settings = {"marketplace": {"port": port, "processes": 2, "database_url": f"sqlite:///{tmp_path}/m.sqlite",
                                "store_url": str(tmp_path / "store"), "seed_base_models": False}}
    entry = hub_service(settings)
    env = dict(os.environ, **entry["environment"], JUPYTERHUB_API_TOKEN="not-checked-here",
               JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api", JUPYTERHUB_SERVICE_URL=entry["url"],
               JUPYTERHUB_SERVICE_PREFIX="/services/marketplace/", JUPYTERHUB_SERVICE_NAME="marketplace")
    proc = subprocess.Popen(entry["command"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"{entry['url']}/services/marketplace/api/openapi.yaml"

    def answers():
        if proc.poll() is not None:
            raise RuntimeError(f"service exited {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            return requests.get(url, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def children():
        return [c for c in psutil.Process(proc.pid).children() if c.status() != psutil.STATUS_ZOMBIE]

    try:
        wait_for(answers, 120, "the marketplace service")
        wait_for(lambda: len(children()) == 2, 60, "two service processes")
        yield proc, answers, children
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children():
                child.kill()
            proc.kill()
            proc.wait(30)


def test_multi_process_service_restarts_a_child_and_stops_cleanly(service):
    proc, answers, children = service
    first = children()
    victim = first[0]
    victim.kill()  # SIGKILL: tornado's fork_processes starts another one in its place
    wait_for(lambda: len(children()) == 2 and victim.pid not in {c.pid for c in children()}, 60,
             "a new service process in place of the killed one")
    assert answers()
    running = children()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "killed by signal 9, restarting" in err
    assert "setup plugin" not in err  # alembic's start-up chatter is quiet
    assert not [c for c in running if c.is_running()]  # the children stopped (and were reaped) first


def test_single_process_stops_on_sigterm_without_traceback(tmp_path):
    cmd = [*hub_service({"marketplace": {"port": free_port(), "processes": 1}})["command"], "--standalone",
           "--database-url", f"sqlite:///{tmp_path}/m.sqlite", "--store-url", str(tmp_path / "s"),
           "--token-file", str(tmp_path / "token")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "(1 process)" in line, line
    assert psutil.Process(proc.pid).children() == []
    token = (tmp_path / "token").read_text().strip()
    assert requests.get(line.split()[-1] + "/api/models", headers={"Authorization": f"token {token}"},
                        timeout=30).status_code == 200
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
