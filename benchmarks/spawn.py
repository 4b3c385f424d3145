"""Spawn-to-ready latency and hub API latency: deepvre's local hub against a bare JupyterHub.

    sudo .venv/bin/python benchmarks/spawn.py [--users 1,5,10] [--api-calls 50]

Both hubs run in this same process tree, one after the other, on free loopback ports:
- baseline: a bare JupyterHub 5 with ``SimpleLocalProcessSpawner`` (no profiles, no accounts);
- deepvre: ``deepvre hub up`` (``DeepvreSpawner``: profile, GPU allocator, per-user OS accounts
  when root; accounts are created by a warm-up spawn, so the rounds measure steady state).
N users spawn at once through the REST API; each latency runs from the POST to the server being
ready in the hub's API. Prints p50/p95 per N and deepvre/baseline ratios (goal: within 1.10).
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.hub.hubprocess import REPO, HubProcess, free_port, wait_for

BIN = Path(sys.executable).parent


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class BareHub:
    """The baseline: plain JupyterHub, SimpleLocalProcessSpawner, a service token with admin scopes."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        (self.folder / "config.py").write_text(f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = ["{REPO}/node_modules/.bin/configurable-http-proxy"]
c.JupyterHub.spawner_class = "simple"
c.JupyterHub.authenticator_class = "null"
c.JupyterHub.allow_named_servers = True
c.Spawner.cmd = ["{BIN}/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.args = ["--allow-root"] if {os.geteuid() == 0} else []
c.SimpleLocalProcessSpawner.home_dir_template = "{self.folder}/homes/{{username}}"
c.JupyterHub.services = [{{"name": "bench", "api_token": "{self.token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": ["admin:users", "admin:servers"], "services": ["bench"]}}]
""")
        self.process = None

    def start(self):
        with open(self.folder / "hub.log", "a") as log:
            self.process = subprocess.Popen([str(BIN / "jupyterhub"), "-f", "config.py"], cwd=self.folder,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: _answers(self.url), 120, "the bare hub")

    def stop(self):
        self.process.send_signal(2)
        self.process.wait(60)


def _answers(url):
    try:
        return requests.get(f"{url}/hub/api/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def api(url, token, method, path, **kwargs):
    return requests.request(method, f"{url}/hub/api{path}", headers={"Authorization": f"token {token}"},
                            timeout=120, **kwargs)


def ready(url, token, name):
    server = api(url, token, "GET", f"/users/{name}").json().get("servers", {}).get("")
    return bool(server and server.get("ready"))


def spawn_round(url, token, names, body):
    """Spawn every user at once; return each one's POST-to-ready seconds, then stop them all."""

    def one(name):
        start = time.perf_counter()
        r = api(url, token, "POST", f"/users/{name}/server", json=body)
        assert r.status_code in (201, 202), r.text
        wait_for(lambda: ready(url, token, name), 300, f"{name} ready", interval=0.2)
        return time.perf_counter() - start

    with ThreadPoolExecutor(len(names)) as pool:
        latencies = list(pool.map(one, names))
    for name in names:
        api(url, token, "DELETE", f"/users/{name}/server")
    for name in names:
        wait_for(lambda name=name: not api(url, token, "GET", f"/users/{name}").json().get("servers"), 120, "stop", 0.2)
    return latencies


def measure(url, token, prefix, sizes, api_calls, body):
    names = [f"{prefix}{i}" for i in range(max(sizes))]
    r = api(url, token, "POST", "/users", json={"usernames": names})
    assert r.status_code in (201, 409), r.text
    spawn_round(url, token, names, body)  # warm-up: homes/accounts, Python caches
    results = {n: spawn_round(url, token, names[:n], body) for n in sizes}
    calls = []
    for _ in range(api_calls):
        start = time.perf_counter()
        api(url, token, "GET", f"/users/{names[0]}").raise_for_status()
        calls.append(time.perf_counter() - start)
    return results, calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="1,5,10")
    parser.add_argument("--api-calls", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(n) for n in args.users.split(",")]
    prefix = f"hubb{secrets.token_hex(2)}u"
    tmp = Path(tempfile.mkdtemp(prefix="deepvre-bench-"))
    os.chmod(tmp, 0o755)

    bare = BareHub(tmp / "bare")
    bare.start()
    try:
        base, base_api = measure(bare.url, bare.token, prefix, sizes, args.api_calls, {})
    finally:
        bare.stop()

    hub = HubProcess({"profiles": [{"slug": "cpu", "display_name": "CPU", "default": True}],
                      "gpus": {"discovery": "none"}}, tmp / "deepvre" / "state")
    hub.start()
    try:
        token = hub.token(hub.login(hub.admin, hub.admin_password), hub.admin)
        ours, ours_api = measure(hub.url, token, prefix, sizes, args.api_calls, {"profile": "cpu"})
    finally:
        hub.stop()
        if os.geteuid() == 0:
            for i in range(max(sizes)):
                subprocess.run(["userdel", "-r", f"{prefix}{i}"], capture_output=True, check=False)

    print(f"{'users':>5} | {'bare p50':>8} {'bare p95':>8} | {'deepvre p50':>11} {'deepvre p95':>11} | ratio p50")
    for n in sizes:
        b50, b95, d50, d95 = pct(base[n], 50), pct(base[n], 95), pct(ours[n], 50), pct(ours[n], 95)
        print(f"{n:>5} | {b50:8.2f} {b95:8.2f} | {d50:11.2f} {d95:11.2f} | {d50 / b50:9.2f}")
    b, d = statistics.median(base_api) * 1000, statistics.median(ours_api) * 1000
    print(f"hub API GET /users/NAME p50: bare {b:.1f} ms, deepvre {d:.1f} ms, ratio {d / b:.2f}")
    print("spawn latencies in seconds, POST to ready; accounts: "
          + ("per-user OS accounts (root)" if os.geteuid() == 0 else "personal mode"))


if __name__ == "__main__":
    main()
