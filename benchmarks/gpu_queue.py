"""GPU queue benchmark: how much the queue adds between a GPU's release and the queued server.

    sudo .venv/bin/python benchmarks/gpu_queue.py [--rounds 5]

One ``deepvre hub up`` (local mode, root, one listed GPU, a 1-GPU profile). Each round, on the
same hub and with the same user's server:
- plain: bob's GPU spawn with the GPU free, from the POST to ready in the hub's API;
- queued: alice holds the GPU, bob's spawn waits in the queue (202), alice's server is stopped;
  from the stop returning (DELETE answered and the server gone from the API) to bob's server ready,
  and, from the hub's log, the time from the release's wake-up to bob's admission (the start of his
  server requested).
The queue's cost is queued-after-release minus plain (goal: under 2 s), paired per round.
Prints the load average before and after.
"""

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.hub.hubprocess import HubProcess, wait_for  # noqa: E402

PROFILES = [{"slug": "cpu", "display_name": "CPU", "default": True},
            {"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1}]
ADMITTED = re.compile(r"deepvre: (\S+)/ admitted from the GPU queue, ([0-9.]+) ms after the wake-up")


def ready_after(hub, token, user, start):
    wait_for(lambda: (hub.server_model(token, user) or {}).get("ready"), 180, f"{user} ready", interval=0.05)
    return time.monotonic() - start


def gone(hub, token, user):
    wait_for(lambda: hub.server_model(token, user) is None, 120, f"{user} to stop", interval=0.05)


def one_round(hub, alice, bob):
    (a, a_token), (b, b_token) = alice, bob
    start = time.monotonic()
    assert hub.api(b_token, "POST", f"/users/{b}/server", json={"profile": "gpu-1"}).status_code in (201, 202)
    plain = ready_after(hub, b_token, b, start)
    hub.stop_server(b_token, b)
    hub.spawn(a_token, a, profile="gpu-1")
    r = hub.api(b_token, "POST", f"/users/{b}/server", json={"profile": "gpu-1"})
    assert r.status_code == 202, r.text
    hub.api(a_token, "DELETE", f"/users/{a}/server")
    gone(hub, a_token, a)
    released = time.monotonic()
    queued = ready_after(hub, b_token, b, released)
    admitted = [float(ms) for user, ms in ADMITTED.findall(hub.log_text()) if user == b]
    hub.stop_server(b_token, b)
    return plain, queued, admitted[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the hub gives each user an OS account)")
    print("load average before:", os.getloadavg())
    folder = Path(tempfile.mkdtemp(prefix="deepvre-gpu-queue-bench-"))
    hub = HubProcess({"profiles": PROFILES, "gpus": {"discovery": "list", "devices": [{"index": "0"}]}},
                     folder / "state")
    with hub.running():
        admin = hub.login(hub.admin, hub.admin_password)
        password = "bench-" + secrets.token_hex(6)
        users = [(name, hub.approved_user(admin, name, password)[1])
                 for name in (f"qb{secrets.token_hex(3)}a", f"qb{secrets.token_hex(3)}b")]
        one_round(hub, *users)  # warm-up: caches, first logins
        results = [one_round(hub, *users) for _ in range(args.rounds)]
    print(f"{'round':>5} {'plain s':>8} {'after release s':>16} {'added s':>8} {'wake-up to admission ms':>24}")
    for i, (plain, queued, admitted) in enumerate(results, 1):
        print(f"{i:>5} {plain:8.2f} {queued:16.2f} {queued - plain:8.2f} {admitted:24.1f}")
    added = [q - p for p, q, _ in results]
    print(f"median: plain {statistics.median(r[0] for r in results):.2f} s, after release "
          f"{statistics.median(r[1] for r in results):.2f} s, added {statistics.median(added):.2f} s "
          f"(range {min(added):.2f} to {max(added):.2f}), wake-up to admission "
          f"{statistics.median(r[2] for r in results):.1f} ms; goal: added < 2 s")
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
