"""Quotas and usage accounting on a real local hub (root, a listed set of four GPUs): two users
with one GPU each and three requests, servers at once, a group's limit, GPU-hours of the rolling
week from a pre-seeded row, the rows' end reasons across a hub restart, and the usage page and
its CSV (issue 19, items 2 and 3)."""

import contextlib
import csv
import datetime as dt
import io
import json
import os
import secrets
import signal
import sqlite3

import pytest
import requests

from deepvre_hub import quotas, usage
from tests.hub.hubprocess import HubProcess, cpu_only, wait_for
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory": "1G", "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "cpu": 1, "gpus": 1},
]
PASSWORD = "usage-" + secrets.token_hex(6)
ROLES = ("alice", "bob", "carol", "dave", "erin")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    names = {role: f"use{secrets.token_hex(3)}{role}" for role in ROLES}
    process = HubProcess({
        "profiles": PROFILES,
        "gpus": {"discovery": "list", "devices": [{"index": str(i)} for i in range(4)]},
        "hub": {"named_servers": 3, "keep_servers": True},
        "quotas": {"default": {"gpus": 1, "servers": 2},
                   "users": {names["bob"]: {"servers": 1}, names["carol"]: {"gpu_hours_per_week": 10}},
                   "groups": {"team": {"gpus": 1}}},
    }, tmp_path_factory.mktemp("usage-hub") / "state")
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        admin_token = process.token(admin)
        users = {role: (name, *process.approved_user(admin, name, PASSWORD)) for role, name in names.items()}
        assert process.api(admin_token, "POST", "/groups/team").status_code == 201
        r = process.api(admin_token, "POST", "/groups/team/users", json={"users": [names["dave"], names["erin"]]})
        assert r.status_code == 200, r.text
        process.book = usage.UsageBook(usage.default_url(process.state_dir))
        yield process, users, admin, admin_token


def rows_of(process, user, server=None):
    return [r for r in process.book.rows(users=[user]) if server is None or r["server"] == server]


def refused(response, start):
    assert response.status_code == 429, response.text
    message = response.json()["message"]
    assert message.startswith(start), message
    return message


def test_two_users_one_gpu_each_three_requests(hub):
    process, users, _, _ = hub
    alice, _, alice_token = users["alice"]
    bob, _, bob_token = users["bob"]
    assert process.spawn(alice_token, alice, profile="gpu-1", server="a").status_code in (201, 202)
    assert process.spawn(bob_token, bob, profile="gpu-1").status_code in (201, 202)
    # the third: alice's second GPU, while two are still free: refused, naming the limit and what holds it
    r = process.spawn(alice_token, alice, profile="gpu-1", server="b", wait=False)
    refused(r, f"GPUs at once (your limit): 1 of 1 held ({alice}/a (GPU 0)); this profile needs 1.")
    assert [row["server"] for row in rows_of(process, alice)] == ["a"]  # a refusal records nothing
    # alice stops her first: the third request now succeeds, and takes the GPU she gave back
    process.stop_server(alice_token, alice, "a")
    assert process.spawn(alice_token, alice, profile="gpu-1", server="b").status_code in (201, 202)
    first, second = rows_of(process, alice)
    assert (first["server"], first["gpu_ids"], first["reason"], first["ended_by"]) == ("a", "0", "user", alice)
    assert first["end"] >= first["start"]
    assert (second["server"], second["profile"], second["gpu_ids"], second["end"]) == ("b", "gpu-1", "0", None)


def test_servers_at_once_and_an_admins_stop(hub):
    process, users, _, admin_token = hub
    bob, bob_session, bob_token = users["bob"]
    r = process.spawn(bob_token, bob, profile="cpu", server="x", wait=False)
    refused(r, f"Servers at once (your limit): 1 of 1 running ({bob}/ (GPU 1)). It frees up when one of them stops.")
    # the spawn page says so before the choice (every profile disabled, the limits and their use) and after it
    form = bob_session.get(f"{process.url}/hub/spawn/{bob}/y", timeout=30).text
    assert 'value="cpu" disabled' in form and 'value="gpu-1" disabled' in form
    assert "Unavailable: Servers at once (your limit): 1 of 1 running" in form
    assert "Your limits: servers at once: 1 of 1; GPUs at once: 1 of 1." in form
    page = process.spawn_form(bob_session, bob, "cpu", server="y")
    assert "Servers at once (your limit): 1 of 1 running" in page.text
    process.stop_server(admin_token, bob)
    (row,) = [r for r in rows_of(process, bob) if r["gpus"]]
    assert (row["reason"], row["ended_by"]) == ("admin", process.admin)


def test_a_groups_limit_counts_its_members_together(hub):
    process, users, _, _ = hub
    dave, _, dave_token = users["dave"]
    erin, erin_session, erin_token = users["erin"]
    assert process.spawn(dave_token, dave, profile="gpu-1").status_code in (201, 202)
    held = rows_of(process, dave)[0]["gpu_ids"]
    r = process.spawn(erin_token, erin, profile="gpu-1", wait=False)
    refused(r, f"GPUs at once (group team's limit): 1 of 1 held ({dave}/ (GPU {held})); this profile needs 1.")
    form = erin_session.get(f"{process.url}/hub/spawn/{erin}/z", timeout=30).text
    assert 'value="cpu" checked' in form and 'value="gpu-1" disabled' in form
    page = process.spawn_form(erin_session, erin, "gpu-1", server="z")
    assert "GPUs at once (group team&#39;s limit)" in page.text or "GPUs at once (group team's limit)" in page.text


def test_gpu_hours_of_the_rolling_week_from_a_seeded_row(hub):
    process, users, _, _ = hub
    carol, _, carol_token = users["carol"]
    start = usage.utcnow().replace(second=0) - dt.timedelta(days=6, hours=5)
    process.book.open(carol, "old", "gpu-2", ["0", "1"], start=start)
    process.book.close(rows_of(process, carol)[0]["id"], usage.USER, carol, end=start + dt.timedelta(hours=5))
    r = process.spawn(carol_token, carol, profile="gpu-1", wait=False)
    free_at = quotas.when(start + quotas.WINDOW + dt.timedelta(minutes=1))
    refused(r, f"GPU-hours this week (your limit): 10.0 of 10 in the last 7 days; under the limit again on {free_at}.")
    assert len(rows_of(process, carol)) == 1


def server_pid(process, user, server=""):
    with sqlite3.connect(process.state_dir / "jupyterhub.sqlite") as db:
        (state,) = db.execute("SELECT s.state FROM spawners s JOIN users u ON s.user_id = u.id "
                              "WHERE u.name = ? AND s.name = ?", (user, server)).fetchone()
    return json.loads(state)["pid"]


def test_rows_across_a_hub_restart(hub):
    """alice's server runs across the restart and keeps its open row; dave's is killed while the
    hub is down, and the restarted hub closes its row as ``gone``."""
    process, users, admin, _ = hub
    alice, _, alice_token = users["alice"]
    dave, _, dave_token = users["dave"]
    (open_row,) = [r for r in rows_of(process, alice) if r["end"] is None]
    (dave_row,) = rows_of(process, dave)
    erin, _, erin_token = users["erin"]
    pid = server_pid(process, dave)
    process.stop()
    os.kill(pid, signal.SIGKILL)
    # a row no server holds: as if the hub had died while erin's GPU server started
    leaked = usage.UsageBook(process.book.url).open(erin, "", "gpu-1", ["3"])
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30, f"dave's server {pid} to end")
    process.start()
    wait_for(lambda: process.book.get(dave_row["id"])["end"], 60, "dave's row to close")
    assert process.book.get(dave_row["id"])["reason"] == "gone"
    # the first look at the usage page closes the row no server holds
    assert process.book.get(leaked)["end"] is None
    assert admin.get(f"{process.url}/hub/usage", timeout=30).status_code == 200
    assert process.book.get(leaked)["reason"] == "gone"
    assert process.book.get(open_row["id"]) == open_row  # still open, the same row
    assert (process.server_model(alice_token, alice, "b") or {}).get("ready")
    # the open row still counts: alice's second GPU is still refused
    refused(process.spawn(alice_token, alice, profile="gpu-1", server="c", wait=False), "GPUs at once (your limit)")
    process.stop_server(alice_token, alice, "b")
    assert process.book.get(open_row["id"])["reason"] == "user"
    # dave's GPU came back, and the leaked row holds nothing: erin (in dave's group) starts a GPU
    # server, then dave may not
    assert process.spawn(erin_token, erin, profile="gpu-1").status_code in (201, 202)
    refused(process.spawn(dave_token, dave, profile="gpu-1", wait=False), "GPUs at once (group team's limit)")
    process.stop_server(erin_token, erin)


def csv_rows(response):
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv"), response.text[:300]
    return list(csv.DictReader(io.StringIO(response.text)))


def test_the_usage_page_and_csv_own_rows_for_a_user_all_for_an_admin(hub):
    process, users, admin, _ = hub
    alice, alice_session, _ = users["alice"]
    page = alice_session.get(f"{process.url}/hub/usage", timeout=30)
    assert page.status_code == 200 and "<svg" in page.text and f"Usage of {alice}" in page.text
    assert f'data-user="{alice}"' in page.text
    assert not any(f'data-user="{users[r][0]}"' in page.text for r in ROLES if r != "alice")
    assert "Limits (yours: servers: 2, gpus: 1)" in page.text
    mine = csv_rows(alice_session.get(f"{process.url}/hub/usage?format=csv", timeout=30))
    assert {r["user"] for r in mine} == {alice} and {r["server"] for r in mine} == {"a", "b"}
    assert all(r["reason"] == "user" and float(r["hours"]) > 0 for r in mine)

    page = admin.get(f"{process.url}/hub/usage", timeout=30)
    assert page.status_code == 200 and "Usage of everyone" in page.text and "Per group" in page.text
    assert '<tr data-name="team">' in page.text
    every = csv_rows(admin.get(f"{process.url}/hub/usage?format=csv", timeout=30))
    assert {users[r][0] for r in ("alice", "bob", "carol", "dave")} <= {r["user"] for r in every}
    one = csv_rows(admin.get(f"{process.url}/hub/usage", params={"format": "csv", "user": alice}, timeout=30))
    assert one == mine
    assert admin.get(f"{process.url}/hub/usage?days=0", timeout=30).status_code == 400


def test_the_prometheus_gauges(hub):
    process, users, _, admin_token = hub
    carol = users["carol"][0]
    r = requests.get(f"{process.url}/hub/metrics", headers={"Authorization": f"token {admin_token}"}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert f'deepvre_gpu_hours_7d{{user="{carol}"}} 10.0' in r.text
    assert f'deepvre_servers_running{{user="{carol}"}} 0.0' in r.text
    alice_session = users["alice"][1]
    assert alice_session.get(f"{process.url}/hub/metrics", timeout=30).status_code == 403


@contextlib.contextmanager
def one_running_server(folder, **sections):
    """A CPU-only hub (with ``sections``) and one user whose server runs: ``(hub, user, book)``."""
    require_root()
    require_proxy()
    process = HubProcess(cpu_only(**sections), folder / "state")
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        name = f"use{secrets.token_hex(3)}one"
        _, token = process.approved_user(admin, name, PASSWORD)
        assert process.spawn(token, name).status_code in (201, 202)
        yield process, name, usage.UsageBook(usage.default_url(process.state_dir))


def test_a_culled_server_is_recorded_as_culled(tmp_path_factory):
    """The idle culler (a hub service) stops an idle server: its row says ``culled``."""
    culling = {"enabled": True, "timeout": 5, "gpu_timeout": 5, "every": 2}
    with one_running_server(tmp_path_factory.mktemp("usage-cull-hub"), culling=culling) as (_, name, book):
        wait_for(lambda: book.rows(users=[name])[0]["end"], 90, f"the culler to stop {name}'s server", 1)
        (row,) = book.rows(users=[name])
        assert (row["reason"], row["ended_by"]) == ("culled", "service:idle-culler")


def test_the_hubs_own_stop_is_recorded_as_hub(tmp_path_factory):
    """The hub's Ctrl-C (``hub.keep_servers`` false) stops the running servers: their rows say ``hub``."""
    with one_running_server(tmp_path_factory.mktemp("usage-exit-hub")) as (process, name, book):
        process.stop()
        (row,) = book.rows(users=[name])
        assert (row["reason"], row["ended_by"]) == ("hub", None) and row["end"] >= row["start"]
