"""Spawn-to-ready latency and hub API latency: deepvre's local hub against a bare JupyterHub.

    sudo .venv/bin/python benchmarks/spawn.py [--users 1,5,10] [--rounds 5] [--single-rounds 20] [--api-calls 50]

Both hubs run side by side in this same process tree, on free loopback ports:
- baseline: a bare JupyterHub 5 with ``SimpleLocalProcessSpawner`` (no profiles, no accounts);
- deepvre: ``deepvre hub up`` (``DeepvreSpawner``: profile, GPU allocator, per-user OS accounts
  when root).
The comparison isolates the hub side: both hubs start the same single-user software (one venv,
so the deepvre server and lab extensions load in both), both run one managed service (the
marketplace, with its own catalog each), neither runs the idle culler, and the OS accounts and
homes exist before the hubs start (a warm-up round per hub then fills Python and Jupyter caches),
so no timed round includes a first login's account creation.
N users spawn at once through the REST API; each latency runs from the POST to the server being
ready in the hub's API. For each N, ``--rounds`` rounds per hub (``--single-rounds`` for one user:
they are cheap, and JupyterHub's readiness poll, a random backoff that by then waits up to 1.6 s
between tries, makes a single spawn's latency noisy) alternate between the two hubs
(bare first, then deepvre first, ...), so load from elsewhere falls on both alike. Prints the
median over rounds of each round's p50/p95 with its range, the median of the paired
deepvre/bare ratios of adjacent rounds (goal: within 1.10), and where the time of a one-user
spawn goes (phases read from the hubs' logs, which hold the single-user servers' output too).
"""

import argparse
import datetime
import os
import re
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
from deepvre.market import service as market
from deepvre_hub import accounts
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
        # the same managed service as deepvre's hub runs (the marketplace), with its own catalog
        service = market.hub_service({"marketplace": {"port": free_port()}})
        service["environment"] = {"DEEPVRE_MARKET_DIR": str(self.folder / "marketplace")}
        services = [{"name": "bench", "api_token": self.token}, service]
        roles = [{"name": "bench", "scopes": ["admin:users", "admin:servers"], "services": ["bench"]},
                 market.hub_role()]
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
c.JupyterHub.services = {services!r}
c.JupyterHub.load_roles = {roles!r}
""")
        self.process = None

    def start(self):
        with open(self.folder / "hub.log", "a") as log:
            self.process = subprocess.Popen([str(BIN / "jupyterhub"), "-f", "config.py"], cwd=self.folder,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: _answers(self.url), 120, "the bare hub")

    def stop(self):
        if self.process is None:
            return
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


def api_latency(url, token, name, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        api(url, token, "GET", f"/users/{name}").raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- where a one-user spawn's time goes, from a hub's log ----------------------------------------

LOG_LINE = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\S+)")
POST_DONE = re.compile(r"20[12] POST /hub/api/users/\S+/server \S+ ([\d.]+)ms")
# phase name -> (the log line that ends it, its source); the POST's arrival starts the first
PHASES = {
    "hub before Popen": ("Spawning ", "JupyterHub"),           # pre-spawn hook, options, env, accounts
    "python + imports": ("", "ServerApp"),                     # the server's first log line
    "server init": ("is running at", "ServerApp"),             # extensions linked and loaded
    "hub sees it ready": ("seconds to start", "JupyterHub"),  # the hub's HTTP poll (backs off)
}


def spawn_phases(log_path, windows):
    """Per one-user spawn that began inside one of ``windows`` ((start, end) epoch seconds): the
    end time of each phase, in seconds after the POST arrived (its 201 line minus its duration)."""
    spawns, current = [], None
    for line in Path(log_path).read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        source, rest = match.group(2), line[match.end():]
        if source == "JupyterHub" and "Spawning " in rest:
            current = {}
            spawns.append(current)
        if current is None:
            continue
        for phase, (text, origin) in PHASES.items():
            if source.startswith(origin) and text in rest:
                current.setdefault(phase, stamp)
        done = POST_DONE.search(rest)
        if done:
            current["post"] = stamp - float(done.group(1)) / 1000
    found = [s for s in spawns if "post" in s and any(a <= s["post"] <= b for a, b in windows)]
    return [{k: v - s["post"] for k, v in s.items() if k != "post"} for s in found if len(s) == len(PHASES) + 1]


def print_phases(logs, windows):
    """Median milliseconds each phase of a one-user spawn took, per hub."""
    print("one-user spawns, median ms per phase (from the hubs' logs; cumulative in brackets):")
    for hub, log in logs.items():
        rows = spawn_phases(log, windows)
        if not rows:
            print(f"  {hub}: no one-user spawn found in {log}")
            continue
        cells, previous = [], 0.0
        for phase in PHASES:
            end = statistics.median(r[phase] for r in rows)
            cells.append(f"{phase} {1000 * (end - previous):.0f} [{1000 * end:.0f}]")
            previous = end
        print(f"  {hub:>7} ({len(rows)} spawns): " + ", ".join(cells))


def spread(values):
    """``median [min-max]`` of a list of numbers."""
    return f"{statistics.median(values):5.2f} [{min(values):.2f}-{max(values):.2f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="1,5,10")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per hub and size, interleaved")
    parser.add_argument("--single-rounds", type=int, default=20, help="rounds per hub for the one-user size")
    parser.add_argument("--api-calls", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(n) for n in args.users.split(",")]
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    prefix = f"hubb{secrets.token_hex(2)}u"
    names = [f"{prefix}{i}" for i in range(max(sizes))]
    tmp = Path(tempfile.mkdtemp(prefix="deepvre-bench-"))
    os.chmod(tmp, 0o755)
    if os.geteuid() == 0:  # a first login's account creation is not part of a spawn
        for name in names:
            accounts.ensure_account(name)

    # Both hubs run side by side; their rounds alternate (bare, deepvre, deepvre, bare, ...), so a
    # burst of load from elsewhere hits both alike.
    bare = BareHub(tmp / "bare")
    ours = HubProcess({"profiles": [{"slug": "cpu", "display_name": "CPU", "default": True}],
                       "gpus": {"discovery": "none"}}, tmp / "deepvre" / "state")
    try:
        bare.start()
        ours.start()
        token = ours.token(ours.login(ours.admin, ours.admin_password), ours.admin)
        hubs = {"bare": (bare.url, bare.token, {}), "deepvre": (ours.url, token, {"profile": "cpu"})}
        for url, key, body in hubs.values():
            r = api(url, key, "POST", "/users", json={"usernames": names})
            assert r.status_code in (201, 409), r.text
            spawn_round(url, key, names, body)  # warm-up: homes/accounts, Python caches
        p50 = {(hub, n): [] for hub in hubs for n in sizes}
        p95 = {(hub, n): [] for hub in hubs for n in sizes}
        windows = []  # (start, end) of the one-user rounds, for the phase breakdown
        rounds = {n: args.single_rounds if n == 1 else args.rounds for n in sizes}
        for n in sizes:
            for i in range(rounds[n]):
                for hub in (("bare", "deepvre") if i % 2 == 0 else ("deepvre", "bare")):
                    start = time.time()
                    latencies = spawn_round(*hubs[hub][:2], names[:n], hubs[hub][2])
                    if n == 1:
                        windows.append((start, time.time()))
                    p50[hub, n].append(pct(latencies, 50))
                    p95[hub, n].append(pct(latencies, 95))
        api_ms = {hub: [] for hub in hubs}
        for i in range(args.rounds):
            for hub in (("bare", "deepvre") if i % 2 == 0 else ("deepvre", "bare")):
                api_ms[hub].append(1000 * api_latency(*hubs[hub][:2], names[0], args.api_calls))
    finally:
        bare.stop()
        ours.stop()
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        if os.geteuid() == 0:
            for name in names:
                subprocess.run(["userdel", "-r", name], capture_output=True, check=False)

    print("interleaved rounds per hub and size; each cell: median of the rounds [min-max], seconds")
    print(f"{'users':>5} | rounds | {'bare p50':>17} | {'deepvre p50':>17} | {'bare p95':>17} | {'deepvre p95':>17} | ratio p50")
    for n in sizes:
        ratios = [d / b for d, b in zip(p50["deepvre", n], p50["bare", n])]  # paired: adjacent rounds
        print(f"{n:>5} | {rounds[n]:>6} | {spread(p50['bare', n]):>17} | {spread(p50['deepvre', n]):>17} | "
              f"{spread(p95['bare', n]):>17} | {spread(p95['deepvre', n]):>17} | {spread(ratios)}")
    ratios = [d / b for d, b in zip(api_ms["deepvre"], api_ms["bare"])]
    print(f"hub API GET /users/NAME p50, ms: bare {spread(api_ms['bare'])}, deepvre {spread(api_ms['deepvre'])}, "
          f"ratio {spread(ratios)}")
    print_phases({"bare": bare.folder / "hub.log", "deepvre": ours.log_file}, windows)
    print("spawn latencies: POST to ready; accounts: "
          + ("per-user OS accounts (root)" if os.geteuid() == 0 else "personal mode"))


if __name__ == "__main__":
    main()
