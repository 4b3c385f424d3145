"""Hostile review of usage accounting and quotas (issue 19): each test is an attack, and asserts it fails.

On a real local hub as root (four listed GPUs; every user may hold one GPU and two servers at
once): bob races spawns past his quota and doctors the start request's options, names his
servers as formulas and HTML, and reads alice's usage with every credential he has (his cookie,
his API token, his server's own token from its environment), through the proxy and the hub's own
port, plus ``/hub/metrics``; his OS account then goes for the usage database itself.
"""

import concurrent.futures
import csv
import datetime as dt
import io
import secrets
import subprocess

import psutil
import pytest
import requests

from deepvre_hub import usage
from tests.hub.hubprocess import HubProcess, wait_for
from tests.hub.test_usage_quotas import server_pid
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory": "1G", "default": True},
    {"slug": "gpu-1", "display_name": "1 GPU", "cpu": 1, "gpus": 1},
]
PASSWORD = "review-" + secrets.token_hex(6)
SECRET = "alice-secret-project"
HOSTILE = ("=1+2", "@SUM(1)", "<img src=x onerror=alert(1)>")
ROLES = ("alice", "bob", "carol", "dave")


SETTINGS = {
    "profiles": PROFILES, "hub": {"named_servers": 10, "keep_servers": True},
    "gpus": {"discovery": "list", "devices": [{"index": str(i)} for i in range(4)]},
    "quotas": {"default": {"gpus": 1, "servers": 2}, "groups": {"team": {"gpus": 1}}},
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process = HubProcess(SETTINGS, tmp_path_factory.mktemp("usage-review-hub") / "state")
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        names = [f"urv{secrets.token_hex(3)}{role}" for role in ROLES]
        users = dict(zip(ROLES, ((n, *process.approved_user(admin, n, PASSWORD)) for n in names)))
        # bob's OS account first, by one start (two first starts at once race for useradd, and fail)
        bob, _, token = users["bob"]
        assert started(process.spawn(token, bob, profile="cpu"))
        process.stop_server(token, bob)
        book = usage.UsageBook(usage.default_url(process.state_dir))
        start = usage.utcnow() - dt.timedelta(hours=3)
        rid = book.open(users["alice"][0], SECRET, "gpu-1", ["2"], start=start)
        book.close(rid, usage.USER, users["alice"][0], end=start + dt.timedelta(hours=1))
        yield process, users, admin, book


def started(response):
    return response.status_code in (201, 202)


def race(process, token, user, profile, servers):
    with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(lambda s: process.spawn(token, user, profile=profile, server=s, wait=False), servers))


def open_rows(book, user):
    return book.rows(users=[user], open_only=True)


def test_racing_spawns_and_doctored_options_get_no_more_than_the_quota(hub):
    process, users, _, book = hub
    bob, _, token = users["bob"]
    # three GPU servers at once, one GPU allowed: one starts, the others are told why
    results = race(process, token, bob, "gpu-1", HOSTILE)
    won = [s for s, r in zip(HOSTILE, results) if started(r)]
    assert len(won) == 1, [(r.status_code, r.text[:200]) for r in results]
    assert all(r.status_code == 429 for r in results if not started(r)), [r.text[:200] for r in results]
    process.wait_ready(token, bob, won[0])
    # the start request's options cannot lower what the profile takes, nor pick a profile of its own
    for options in ({"profile": "gpu-1", "gpus": 0}, {"profile": {"slug": "gpu-1", "gpus": 0}},
                    {"profile": "gpu-1", "gpu_ids": ""}, {"profile": ["gpu-1"]}, {"profile": "GPU-1"},
                    {"profile": "gpu-1 "}):
        r = process.api(token, "POST", f"/users/{bob}/servers/doctored", json=options)
        if started(r):  # taken as a CPU profile at most (a second server is within his quota)
            process.wait_ready(token, bob, "doctored")
            assert [x["gpus"] for x in open_rows(book, bob) if x["server"] == "doctored"] == [0], options
            process.stop_server(token, bob, "doctored")
    # two CPU servers at once with one server left: one starts
    results = race(process, token, bob, "cpu", ["", "second"])
    assert sum(started(r) for r in results) == 1, [(r.status_code, r.text[:200]) for r in results]
    for server, r in zip(["", "second"], results):
        if started(r):
            process.wait_ready(token, bob, server)
    rows = open_rows(book, bob)
    assert len(rows) == 2 and sum(r["gpus"] for r in rows) == 1, rows
    running = process.api(token, "GET", f"/users/{bob}").json()["servers"]
    assert len(running) == 2, running


def test_two_members_racing_for_their_groups_gpu_get_one(hub):
    """carol and dave (group team: one GPU between them) start GPU servers at the same moment."""
    process, users, admin, book = hub
    admin_token = process.token(admin)
    assert process.api(admin_token, "POST", "/groups/team").status_code == 201
    members = [users["carol"][0], users["dave"][0]]
    assert process.api(admin_token, "POST", "/groups/team/users", json={"users": members}).status_code == 200
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda role: process.spawn(users[role][2], users[role][0], profile="gpu-1", wait=False),
                                ("carol", "dave")))
    assert sum(started(r) for r in results) == 1, [(r.status_code, r.text[:300]) for r in results]
    (refused,) = [r for r in results if not started(r)]
    assert refused.status_code == 429 and "group team's limit" in refused.json()["message"], refused.text
    assert sum(r["gpus"] for m in members for r in open_rows(book, m)) == 1


def test_a_new_users_first_starts_at_once_all_start(hub):
    """Two first starts of a new user at the same moment (within the servers quota): was an open
    hole: both made the OS account, one useradd failed ("already exists": 403), and the other's
    server could start before useradd had given it its home (PermissionError on it: 500)."""
    process, _, admin, book = hub
    name = f"urv{secrets.token_hex(3)}erin"
    _, token = process.approved_user(admin, name, PASSWORD)
    results = race(process, token, name, "cpu", ["", "two", "three"])
    codes = [(r.status_code, r.text[:300]) for r in results]
    assert sum(started(r) for r in results) == 2 and [r.status_code for r in results].count(429) == 1, codes
    for server, r in zip(("", "two", "three"), results):
        if started(r):
            process.wait_ready(token, name, server)
    assert len(open_rows(book, name)) == 2


def test_stopping_and_starting_at_once_never_holds_two_gpus(hub):
    """carol (one GPU, in the race above or not) stops her GPU server and starts another in the same
    breath, three times: never two open GPU rows, and whatever is refused says why."""
    process, users, _, book = hub
    carol, _, token = users["carol"]
    running = [s for s in ("", "g1", "g2", "g3") if (process.server_model(token, carol, s) or {}).get("ready")]
    for server in ("g1", "g2", "g3"):
        path = f"/users/{carol}/servers/{running[0]}" if running and running[0] else f"/users/{carol}/server"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            stop = pool.submit(process.api, token, "DELETE", path) if running else None
            start = pool.submit(process.spawn, token, carol, "gpu-1", server, 180, False)
            r = start.result()
            assert stop is None or stop.result().status_code in (202, 204)
        assert started(r) or (r.status_code in (400, 429) and r.json()["message"]), (r.status_code, r.text[:300])
        assert sum(x["gpus"] for x in open_rows(book, carol)) <= 1, open_rows(book, carol)
        if started(r):
            process.wait_ready(token, carol, server)
            running = [server]
        else:
            running = [s for s in ("", "g1", "g2", "g3") if process.server_model(token, carol, s)]
        assert sum(x["gpus"] for x in open_rows(book, carol)) <= 1, open_rows(book, carol)
    for server in running:
        process.stop_server(token, carol, server)


def test_hostile_server_names_are_inert_on_the_page_and_in_the_csv(hub):
    process, users, _, book = hub
    bob, session, _ = users["bob"]
    names = {r["server"] for r in book.rows(users=[bob])} & set(HOSTILE)
    assert names, "no hostile-named server started"
    text = session.get(f"{process.url}/hub/usage?format=csv", timeout=30).text
    cells = {row["server"] for row in csv.DictReader(io.StringIO(text))}
    for name in names:
        assert (f"'{name}" if name[0] in "=+-@" else name) in cells, (name, cells)
    assert not any(cell[:1] in ("=", "+", "-", "@") for cell in cells), cells
    page = session.get(f"{process.url}/hub/usage", timeout=30).text
    assert "<img src=x" not in page


def server_token(process, user, server):
    """The API token in the environment of ``user``'s server process (a kernel could read it)."""
    proc = psutil.Process(server_pid(process, user, server))
    for p in (proc, *proc.children(recursive=True)):
        token = p.environ().get("JUPYTERHUB_API_TOKEN")
        if token:
            return token
    raise AssertionError(f"no JUPYTERHUB_API_TOKEN in {user}/{server}'s processes")


def test_another_users_usage_stays_hidden_from_every_credential(hub):
    process, users, admin, book = hub
    alice = users["alice"][0]
    bob, session, token = users["bob"]
    server = next(r["server"] for r in open_rows(book, bob))
    hub_api = f"http://127.0.0.1:{process.settings['hub']['hub_port']}"
    credentials = {
        "bob's cookie": {"session": session},
        "bob's API token": {"headers": {"Authorization": f"token {token}"}},
        "bob's server's token": {"headers": {"Authorization": f"token {server_token(process, bob, server)}"}},
        "bob's token in the query": {"query": f"token={token}"},
        "nobody": {},
    }
    queries = [f"user={alice}", f"user={alice.upper()}", f"user={alice}&user={bob}", f"user={bob}&user={alice}",
               f"user=%20{alice}", f"user={alice}%00", f"user[]={alice}", "user=", f"format=csv&user={alice}",
               "format=csv&days=366", "days=366", "format=json"]
    for who, how in credentials.items():
        for base in (process.url, hub_api):
            for path, query in [("/hub/usage", q) for q in queries] + [("/hub/metrics", ""), ("/hub/usage/", "")]:
                full = "&".join(part for part in (query, how.get("query", "")) if part)
                url = f"{base}{path}?{full}" if full else f"{base}{path}"
                get = how["session"].get if "session" in how else requests.get
                r = get(url, headers=how.get("headers", {}), timeout=30, allow_redirects=False)
                body = r.text.replace(f"user={alice}", "").replace(f"user%3D{alice}", "")
                assert SECRET not in body and alice not in body.replace(alice.upper(), ""), (who, url, r.status_code)
                assert "deepvre_gpu_hours_7d" not in body, (who, url)
    # for contrast: the admin sees alice's row, and the gauges
    assert SECRET in admin.get(f"{process.url}/hub/usage?format=csv&user={alice}", timeout=30).text
    admin_token = process.token(admin)
    metrics = requests.get(f"{process.url}/hub/metrics", headers={"Authorization": f"token {admin_token}"}, timeout=30)
    assert f'deepvre_gpu_hours_7d{{user="{alice}"}}' in metrics.text


def test_a_crafted_usage_link_runs_nothing_in_an_admins_page(hub):
    """Reflected into the admin's page: ``?user=`` and ``?days=`` of a link someone sends the admin."""
    process, _, admin, _ = hub
    for query in ({"user": '<script>alert(1)</script>'}, {"user": '"><img src=x onerror=alert(1)>'},
                  {"user": "x", "days": "<script>alert(1)</script>"}, {"user": "x", "format": "<b>csv</b>"},
                  {"user": '"; alert(1); "', "format": "csv"}):
        r = admin.get(f"{process.url}/hub/usage", params=query, timeout=30)
        assert r.status_code in (200, 400), (query, r.status_code)
        if r.headers["Content-Type"].startswith("text/html"):
            assert "<script>alert" not in r.text and "<img src=x" not in r.text and "<b>csv" not in r.text, query
        else:
            assert r.headers["Content-Type"].startswith("text/csv") and "alert" not in r.text, query


def test_a_users_os_account_cannot_read_plant_or_replace_the_usage_database(hub):
    """A hot journal or WAL file next to the database would be applied by the hub's next open:
    bob's OS account may not read the database, nor put anything beside it."""
    process, users, _, book = hub
    bob = users["bob"][0]
    wait_for(lambda: subprocess.run(["id", bob], capture_output=True).returncode == 0, 30, f"{bob}'s account")
    database = process.state_dir / "usage.sqlite"
    attempts = [["cat", str(database)], ["ls", str(process.state_dir)],
                ["sh", "-c", f"echo x > '{database}'"], ["sh", "-c", f"echo x >> '{database}'"],
                *(["touch", f"{database}{suffix}"] for suffix in ("-journal", "-wal", "-shm")),
                ["mv", str(database), f"{database}.old"], ["ln", "-s", "/tmp", f"{process.state_dir}/x"]]
    for command in attempts:
        done = subprocess.run(["runuser", "-u", bob, "--", *command], capture_output=True, cwd="/")
        assert done.returncode != 0, (command, done.stdout[:200])
        assert SECRET.encode() not in done.stdout
    assert SECRET in {r["server"] for r in book.rows()}
