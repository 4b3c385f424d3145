"""Hub API latency with 200 queued and running servers, against the same hub with nothing queued.

    sudo .venv/bin/python benchmarks/hub_api_load.py [--servers 200] [--gpus 4] [--requests 300]

One ``deepvre hub up`` (local mode, root, ``--gpus`` listed fake GPUs, a 1-GPU profile). ``--gpus``
users' GPU servers run (real single-user servers) all along. *Loaded*: ``--servers`` minus
``--gpus`` more users' GPU spawns wait in the GPU queue (one default server per user, each with
the OS account the hub makes for it), the probe user last; *baseline*: nothing queued, on the
same hub, with the same users and running servers. The phases alternate (``--phases``, default
baseline, loaded, baseline) so a noisy machine weighs on both. Each phase measures, ``--requests``
times each:

- ``GET /hub/api/users`` as the admin (the list with the servers: up to 200 users unpaginated);
- ``GET /hub/api/users/NAME``: a GPU server's owner, with their own token;
- the probe's queue progress: ``/hub/api/users/NAME/server/progress`` until its first "Waiting for
  a GPU" event (baseline: the probe queues alone, 1st; loaded: last of the queue);
- ``--spawns`` CPU server spawn+stop round trips of another user (POST to ready, DELETE to gone);

and the hub process's CPU time over ``--idle`` seconds of nobody calling it.

JupyterHub counts a spawn waiting in the GPU queue as a pending spawn, and refuses a spawn once
``hub.concurrent_spawn_limit`` (JupyterHub's concurrent_spawn_limit, 100 by default) are pending:
the benchmark sets it (``--spawn-limit``; 0: no limit) for the queue to hold the servers asked for. Prints load averages and the ratios.
"""

import argparse
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.hub.hubprocess import HubProcess, wait_for  # noqa: E402
from tests.prereqs import HUB_TMP  # noqa: E402

PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1},
]
WAITING = "Waiting for a GPU: "


class Bench:
    def __init__(self, hub, admin_token, holders, queued, cpu_user, tokens):
        self.hub, self.admin = hub, admin_token
        self.holders, self.queued, self.cpu_user, self.tokens = holders, queued, cpu_user, tokens
        self.probe = queued[-1] if queued else None

    def session(self, token):
        s = requests.Session()
        s.headers["Authorization"] = f"token {token}"
        return s

    # --- the hub's state --------------------------------------------------------------

    def post_spawns(self, names, profile, want, workers=64):
        """Spawn ``names``' default servers as the admin, all at once; each answer must be ``want``."""

        def post(name):
            r = self.hub.api(self.admin, "POST", f"/users/{name}/server", json={"profile": profile}, timeout=180)
            return name, r.status_code, r.text[:300]

        with ThreadPoolExecutor(workers) as pool:
            bad = [r for r in pool.map(post, names) if r[1] not in want]
        if bad:
            raise RuntimeError(f"{len(bad)} spawns not {want}: {bad[:3]}\n{self.hub.log_text()[-3000:]}")

    def stop_all(self, names, workers=32):
        """Stop ``names``' servers as the admin, many at once (as the admin page's "Stop All" does).
        Returns the stops that failed and the *phantoms*: servers left in the hub's database that
        run nowhere (JupyterHub answers 500 when a pending spawn's cancellation has not finished
        within the 1 s it gives it, and never stops that server then); a hub restart drops them."""

        def stop(name):
            return self.hub.api(self.admin, "DELETE", f"/users/{name}/server", timeout=180).status_code

        with ThreadPoolExecutor(workers) as pool:
            failed = [c for c in pool.map(stop, names) if c not in (202, 204)]
        wanted = set(names)

        def pending():
            return [
                u["name"]
                for u in self.users()
                if u["name"] in wanted and any(s["pending"] for s in u["servers"].values())
            ]

        wait_for(lambda: not pending(), 300, "the servers to stop", interval=1)
        phantoms = [u["name"] for u in self.users() if u["name"] in wanted and u["servers"]]
        if phantoms:
            self.cpu_at_restart = self.hub_cpu()
            self.hub.restart()
            wait_for(
                lambda: not any(u["servers"] for u in self.users() if u["name"] in wanted),
                120,
                "the restarted hub to drop the phantom servers",
                interval=1,
            )
        return failed, phantoms

    def users(self):
        """Every user's model (JupyterHub answers 200 at most per request)."""
        found = []
        while True:
            r = self.hub.api(self.admin, "GET", f"/users?offset={len(found)}&limit=200")
            r.raise_for_status()
            found += r.json()
            if len(r.json()) < 200:
                return found

    def counts(self):
        servers = [s for u in self.users() for s in u["servers"].values()]
        return sum(1 for s in servers if s["ready"]), sum(1 for s in servers if s["pending"] == "spawn")

    def fill(self):
        """Queue every queued user's GPU spawn, then the probe's, last (each POST answers 202
        after JupyterHub's slow-spawn wait of 10 s)."""
        self.post_spawns(self.queued[:-1], "gpu-1", (202,))
        wait_for(
            lambda: self.hub.log_text().count(" waits for 1 GPU(s), ") >= self.joined + len(self.queued) - 1,
            600,
            "the spawns to join the queue",
            interval=0.5,
        )
        self.post_spawns([self.probe], "gpu-1", (202,))
        self.joined += len(self.queued)

    joined = 0
    cpu_at_restart = None  # the hub's CPU seconds when stop_all() restarted it

    # --- the calls ---------------------------------------------------------------------

    def timed(self, call, n):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        return times

    def users_list(self, session):
        r = session.get(f"{self.hub.url}/hub/api/users", timeout=60)
        r.raise_for_status()
        assert len(r.json()) >= min(200, len(self.queued)), len(r.json())

    def user_model(self, session, name):
        r = session.get(f"{self.hub.url}/hub/api/users/{name}", timeout=60)
        r.raise_for_status()
        assert r.json()["servers"][""]["ready"], r.text[:300]

    def queue_event(self, session, name):
        """The first "Waiting for a GPU" event of ``name``'s pending spawn."""
        url = f"{self.hub.url}/hub/api/users/{name}/server/progress"
        with session.get(url, stream=True, timeout=60) as r:
            r.raise_for_status()
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    message = json.loads(line[5:]).get("message") or ""
                    if message.startswith(WAITING):
                        return message
        raise AssertionError(f"no queue event for {name}")

    def spawn_round_trip(self):
        """A CPU server: POST to ready in the API, DELETE to gone; (spawn s, stop s)."""
        name, token = self.cpu_user, self.tokens[self.cpu_user]
        start = time.monotonic()
        r = self.hub.api(token, "POST", f"/users/{name}/server", json={"profile": "cpu"}, timeout=180)
        assert r.status_code in (201, 202), r.text[:300]
        wait_for(lambda: (self.hub.server_model(token, name) or {}).get("ready"), 180, f"{name} ready", 0.05)
        ready = time.monotonic()
        self.hub.api(token, "DELETE", f"/users/{name}/server")
        wait_for(lambda: self.hub.server_model(token, name) is None, 120, f"{name} to stop", 0.05)
        return ready - start, time.monotonic() - ready

    def streams_closed(self):
        """Progress streams the hub found closed (when it wrote to them) so far."""
        return self.hub.log_text().count("Stream closed while handling")

    def hub_cpu(self):
        """CPU seconds the hub process (JupyterHub) has used."""
        fields = Path(f"/proc/{self.hub.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def hub_rss(self):
        status = Path(f"/proc/{self.hub.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024

    def measure(self, kind, args):
        """One phase: the calls, ``args.requests`` times each; the queue's state checked first."""
        ready, pending = self.counts()
        expected = (len(self.holders), len(self.queued) if kind == "loaded" else 0)
        assert (ready, pending) == expected, f"{kind}: {ready} ready, {pending} pending, expected {expected}"
        result = {"kind": kind, "load_before": os.getloadavg(), "servers": ready + pending, "pages": 0}
        if kind == "loaded" and args.pages:  # every other waiter looked at its progress page once, and left
            admin = self.session(self.admin)
            for name in self.queued[:-1]:
                self.queue_event(admin, name)
            result["pages"] = len(self.queued) - 1
        result["rss_mb"] = self.hub_rss()
        cpu, start = self.hub_cpu(), time.monotonic()
        time.sleep(args.idle)
        result["idle_cpu"] = (self.hub_cpu() - cpu) / (time.monotonic() - start)
        admin, holder = self.session(self.admin), self.session(self.tokens[self.holders[0]])
        result["users"] = self.timed(lambda: self.users_list(admin), args.requests)
        result["user"] = self.timed(lambda: self.user_model(holder, self.holders[0]), args.requests)
        if kind == "baseline":  # the probe queues alone: 1st in the queue
            self.post_spawns([self.probe], "gpu-1", (202,))
            self.joined += 1
        probe = self.session(self.tokens[self.probe])
        result["place"] = self.queue_event(probe, self.probe).split(";")[0][len(WAITING) :]
        result["progress"] = self.timed(lambda: self.queue_event(probe, self.probe), args.requests)
        # a change of the queue: the probe's pending spawn stopped (DELETE to gone) wakes every waiter
        # and every progress stream still open in the hub
        start, closed = time.monotonic(), self.streams_closed()
        status = self.hub.api(self.admin, "DELETE", f"/users/{self.probe}/server", timeout=180).status_code
        wait_for(
            lambda: not (self.hub.server_model(self.admin, self.probe) or {}).get("pending"),
            120,
            "the probe's spawn to end",
            0.05,
        )
        result["leave"] = [(time.monotonic() - start) * 1000]
        result["leave_status"] = status
        if self.hub.server_model(self.admin, self.probe) is not None:  # a phantom (see stop_all)
            self.stop_all([self.probe])
        result["streams_closed"] = self.streams_closed() - closed
        trips = [self.spawn_round_trip() for _ in range(args.spawns)]
        result["spawn"] = [s * 1000 for s, _ in trips]
        result["stop"] = [s * 1000 for _, s in trips]
        result["load_after"] = os.getloadavg()
        return result


def stats(times):
    if not times:
        return math.nan, math.nan, math.nan
    if len(times) < 2:
        return times[0], times[0], times[0]
    return statistics.median(times), statistics.quantiles(times, n=20)[18], statistics.fmean(times)


CALLS = [
    ("users", "GET /hub/api/users (admin)", "ms"),
    ("user", "GET /hub/api/users/NAME (own)", "ms"),
    ("progress", "progress: first queue event", "ms"),
    ("spawn", "CPU spawn, POST to ready", "s"),
    ("stop", "CPU stop, DELETE to gone", "s"),
    ("leave", "probe's queued spawn stopped", "s"),
]


def report(phases):
    for p in phases:
        print(
            f"{p['kind']:>8}: {p['servers']} servers, probe {p['place']}, {p['pages']} left pages; hub RSS {p['rss_mb']:.0f} MB, "
            f"hub CPU idle {p['idle_cpu'] * 100:.1f}%; {p['streams_closed']} progress streams found closed at the probe's "
            f"stop (DELETE answered {p['leave_status']}); load {p['load_before'][0]:.2f} -> {p['load_after'][0]:.2f}"
        )
        for key, label, unit in CALLS:
            scale = 1000 if unit == "s" else 1
            p50, p95, mean = (v / scale for v in stats(p[key]))
            print(f"          {label:<32} p50 {p50:8.2f} p95 {p95:8.2f} mean {mean:8.2f} {unit} (n={len(p[key])})")
    print(
        f"\n{'call':<32} {'baseline p50/p95/mean':>24} {'loaded p50/p95/mean':>24} {'ratio p50':>10} {'ratio mean':>10}"
    )
    for key, label, unit in CALLS:
        scale = 1000 if unit == "s" else 1
        base = stats([t for p in phases if p["kind"] == "baseline" for t in p[key]])
        load = stats([t for p in phases if p["kind"] == "loaded" for t in p[key]])
        fmt = "{:.2f}/{:.2f}/{:.2f} " + unit
        print(
            f"{label:<32} {fmt.format(*(v / scale for v in base)):>24} {fmt.format(*(v / scale for v in load)):>24} "
            f"{load[0] / base[0]:>10.2f} {load[2] / base[2]:>10.2f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=200, help="running plus queued servers in the loaded state")
    parser.add_argument("--gpus", type=int, default=4, help="listed GPUs: the GPU servers that run")
    parser.add_argument("--requests", type=int, default=300, help="requests per call and phase")
    parser.add_argument("--spawns", type=int, default=3, help="CPU spawn+stop round trips per phase")
    parser.add_argument("--idle", type=float, default=10, help="seconds of the hub's idle CPU per phase")
    parser.add_argument("--phases", default="baseline,loaded,baseline")
    parser.add_argument(
        "--pages",
        type=int,
        default=1,
        choices=(0, 1),
        help="1: in the loaded state, each other waiter opens its progress page once and leaves it",
    )
    parser.add_argument(
        "--spawn-limit",
        type=int,
        default=None,
        help="hub.concurrent_spawn_limit (default: twice --servers; 0: no limit)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the hub gives each user an OS account)")
    if set(args.phases.split(",")) != {"baseline", "loaded"}:
        sys.exit("--phases: a comma-separated list of baseline and loaded, with both")
    began = time.monotonic()
    print("load average before:", os.getloadavg())
    folder = Path(tempfile.mkdtemp(prefix="deepvre-hub-load-bench-"))
    limit = 2 * args.servers if args.spawn_limit is None else args.spawn_limit
    hub = HubProcess(
        {
            "profiles": PROFILES,
            "gpus": {
                "discovery": "list",
                "devices": [{"index": str(i)} for i in range(args.gpus)],
                "queue": {"restart_grace": 0},
            },
            # on, as by default (the queue's estimate reads the GPU servers' limits); nobody culled here
            "culling": {"enabled": True, "timeout": 7200, "gpu_timeout": 7200, "every": 3600},
            # a restart (see Bench.stop_all) keeps the GPU servers and gives up the queue's old places
            "hub": {"keep_servers": True, "concurrent_spawn_limit": limit},
        },
        folder / "state",
    )
    tag = f"hl{secrets.token_hex(2)}"
    holders = [f"{tag}g{i}" for i in range(args.gpus)]
    queued = [f"{tag}q{i:03d}" for i in range(args.servers - args.gpus)]
    cpu_user = f"{tag}c"
    names = [*holders, *queued, cpu_user]
    phases, changes = [], []
    try:
        hub.start()
        run(hub, args, holders, queued, cpu_user, phases, changes, began)
    finally:
        cleanup(hub, names, holders)
        print(f"hub log: {hub.log_file}")
        for line in changes:
            print(line)
        if phases:
            report(phases)
        print("load average after:", os.getloadavg())
        print(f"total {time.monotonic() - began:.0f} s")


def run(hub, args, holders, queued, cpu_user, phases, changes, began):
    """Users, their tokens, the GPU servers, then the phases (in ``phases``, the changes between
    them in ``changes``, so that a failure still reports what was measured)."""
    hub.admin_token = admin = hub.token(hub.login(hub.admin, hub.admin_password))
    r = hub.api(admin, "POST", "/users", json={"usernames": [*holders, *queued, cpu_user]})
    assert r.status_code == 201, r.text[:500]
    tokens = {}
    for name in (holders[0], queued[-1], cpu_user):
        r = hub.api(admin, "POST", f"/users/{name}/tokens", json={"note": "benchmark", "expires_in": 7200})
        r.raise_for_status()
        tokens[name] = r.json()["token"]
    bench = Bench(hub, admin, holders, queued, cpu_user, tokens)
    bench.post_spawns(holders, "gpu-1", (201, 202))
    for name in holders:
        wait_for(lambda n=name: (hub.server_model(admin, n) or {}).get("ready"), 180, f"{name} ready", 0.5)
    bench.spawn_round_trip()  # warm-up: the CPU user's account, examples, caches
    state = "baseline"
    for kind in args.phases.split(","):
        if kind != state:
            start, cpu, closed = time.monotonic(), bench.hub_cpu(), bench.streams_closed()
            if kind == "loaded":
                bench.fill()
                line = f"queueing {len(queued)} GPU spawns took {time.monotonic() - start:.1f} s"
            else:
                failed, phantoms = bench.stop_all(queued[:-1])  # the probe's stopped already
                line = (
                    f"stopping the {len(queued) - 1} other queued spawns (32 at a time) took "
                    f"{time.monotonic() - start:.1f} s; {len(failed)} stops failed {sorted(set(failed))}, "
                    f"{len(phantoms)} phantom servers{' (dropped by a hub restart)' if phantoms else ''}"
                )
            used = (bench.cpu_at_restart or bench.hub_cpu()) - cpu  # a restarted hub's counts from its start
            bench.cpu_at_restart = None
            line += f"; hub CPU {used:.1f} s, {bench.streams_closed() - closed} progress streams closed"
            changes.append(line)
            print(line, flush=True)
            state = kind
        phases.append(bench.measure(kind, args))
        print(f"phase {len(phases)} ({kind}) done at {time.monotonic() - began:.0f} s", flush=True)


def cleanup(hub, names, holders):
    """Stop every server and the hub (which keeps servers running at its stop); delete the OS
    accounts the hub made for the benchmark's users."""
    token = getattr(hub, "admin_token", None)
    try:
        bench = Bench(hub, token, holders, [], None, {})
        for _ in range(4):  # the waiting spawns first: a GPU server's stop admits the next in the queue
            if not (token and hub.process is not None and hub.process.poll() is None):
                break
            users = bench.users()
            pending = [u["name"] for u in users if any(s["pending"] for s in u["servers"].values())]
            running = [u["name"] for u in users if u["servers"] and u["name"] not in pending]
            if not pending and not running:
                break
            bench.stop_all(pending or running)
    except Exception as err:
        print(f"cleanup: {err}")
    finally:
        hub.stop()
        for name in names:
            subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        if hub.state_dir.parent.parent == Path(HUB_TMP):  # the state folder of a root hub (HubProcess)
            shutil.rmtree(hub.state_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
