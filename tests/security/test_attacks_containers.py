"""Hostile review of the container spawner (issue 15, ``local.spawner: container``): bob, a second
hub user, against alice's container, and an anonymous local process against the API socket and the
containers. Each test asserts the attack fails; docs/security.md ("Containers") says what each shows.

The real-hub tests share tests/hub/test_containers.py's fixtures (a root hub, rootful podman, the
single-user image), imported here: this module gets its own hub, alice and bob.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dockerspawner import DockerSpawner

from deepvre.site.settings import for_servers, validate_settings
from deepvre_hub import containers
from deepvre_hub.modes import SAFE_USERNAME
from tests.hub.hubprocess import run_code, wait_for
from tests.hub.test_containers import admin, alice, bob, container_address, container_of, hub, new_user  # noqa: F401

IMAGE_UID = 1000  # the single-user image's user (jovyan), the same uid on the host (rootful podman)


# --- names: two users never share a container, volume or network --------------------------------


def names_of(username, server=""):
    escaped = DockerSpawner._escape(username)
    container = f"deepvre-{escaped}--{DockerSpawner._escape(server)}" if server else f"deepvre-{escaped}"
    return container, f"deepvre-home-{escaped}", containers.network_name(username)


def test_user_names_that_escape_alike_get_their_own_container_volume_and_network():
    import re

    alike = ["a.b", "a-b", "a_b", "a@b", "a+b", "a|b", "a:b", "a=b", "a~b", "a-2eb", "a_2eb", "a_5fb", "a-2db",
             "a--b", "ab", "a.b.", "a", "a-", "a_", "a_2d", "x" * 255, "x" * 254 + ".", "x" * 254 + "-"]
    assert all(re.fullmatch(SAFE_USERNAME, name) for name in alike)
    for kind in range(3):
        made = {names_of(name)[kind]: name for name in alike}
        assert len(made) == len(alike), f"two users share a {('container', 'volume', 'network')[kind]}"
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", n) for name in alike for n in names_of(name))


def test_a_named_server_never_takes_another_users_container_name():
    """``deepvre-USER--SERVER``: an escaped name holds no ``--`` (``-`` is always followed by hex)."""
    users = ["a", "a-", "a--b", "a-2d", "a.b", "b"]
    servers = ["", "b", "-b", "2d", "x"]
    made = {}
    for user in users:
        for server in servers:
            made.setdefault(names_of(user, server)[0], set()).add((user, server))
    assert all(len(owners) == 1 for owners in made.values()), [o for o in made.values() if len(o) > 1]


# --- $DEEPVRE_SERVER_SETTINGS (commit 5cc7705) ---------------------------------------------------


def test_the_server_settings_carry_no_secret():
    """Every server (and so every user) reads $DEEPVRE_SERVER_SETTINGS: the secrets of the other
    sections never get there, and the slurm:/dask: sections have no key for one."""
    planted = "PLANTED-" + os.urandom(6).hex()
    settings = validate_settings({"mode": "slurm", "slurm": {"account": "proj", "extra_options": ["--constraint=ib"]},
                                  "dask": {"cluster": "slurm"}})
    for name, section in settings.items():  # a secret beside every other section's settings
        if isinstance(section, dict) and name not in ("slurm", "dask"):
            section["planted_secret"] = planted
    settings["marketplace"]["store_url"] = f"postgresql://u:{planted}@db/market"
    text = json.dumps(for_servers(settings))
    assert planted not in text
    assert set(json.loads(text)) == {"runs_backend", "slurm", "dask"}

    def keys(value):
        if isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from keys(v)

    secretish = [k for k in keys(for_servers(validate_settings({}))) if
                 any(w in k.lower() for w in ("secret", "password", "token", "key", "credential"))]
    assert secretish == []


# --- bob against alice, from inside his container --------------------------------------------------


def test_bobs_server_token_cannot_reach_or_start_alices_server(hub, alice, bob):  # noqa: F811
    out = run_code(hub.server_url(bob[0]), bob[1],
                   f"A = {alice[0]!r}\n"
                   "import os, json, urllib.request, urllib.error\n"
                   "api, tok = os.environ['JUPYTERHUB_API_URL'], os.environ['JUPYTERHUB_API_TOKEN']\n"
                   "for method, path in [('GET', '/users/%s' % A), ('POST', '/users/%s/server' % A),\n"
                   "                     ('DELETE', '/users/%s/server' % A), ('GET', '/users'),\n"
                   "                     ('POST', '/users/%s/tokens' % A)]:\n"
                   "    req = urllib.request.Request(api + path, method=method, data=b'{}' if method == 'POST' else None,\n"
                   "                                 headers={'Authorization': 'token ' + tok})\n"
                   "    try:\n"
                   "        print(method, path, urllib.request.urlopen(req, timeout=20).status)\n"
                   "    except urllib.error.HTTPError as err:\n"
                   "        print(method, path, err.code)\n")
    codes = {" ".join(line.split()[:2]): int(line.split()[2]) for line in out.splitlines()}
    assert all(code in (403, 404) for path, code in codes.items() if alice[0] in path), out
    assert codes["GET /users"] == 403 or codes["GET /users"] == 200 and alice[0] not in out, out
    assert container_of(alice[0])["State"]["Running"]


def test_bobs_container_is_unprivileged_and_holds_no_socket(hub, alice, bob):  # noqa: F811
    out = run_code(hub.server_url(bob[0]), bob[1],
                   "import os, subprocess\n"
                   "status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
                   "print('uid', os.getuid(), 'caps', status['CapEff'].strip(), status['CapBnd'].strip(),\n"
                   "      'nnp', status['NoNewPrivs'].strip())\n"
                   "mounts = open('/proc/self/mounts').read()\n"
                   "print('sock', any(s in mounts for s in ('podman', 'docker.sock')),\n"
                   "      [p for p in ('/run/podman/podman.sock', '/var/run/docker.sock', '/run/docker.sock') if os.path.exists(p)])\n"
                   "r = subprocess.run(['su', '-c', 'id -u'], input='\\n', capture_output=True, text=True)\n"
                   "print('su', r.returncode, r.stdout.strip() or '-')\n")
    assert f"uid {IMAGE_UID} caps 0000000000000000 0000000000000000 nnp 1" in out, out
    assert "sock False []" in out and "su 0 0" not in out, out
    mounts = container_of(bob[0])["Mounts"]
    assert [m.get("Name") for m in mounts] == [f"deepvre-home-{DockerSpawner._escape(bob[0])}"], mounts
    assert not container_of(bob[0])["HostConfig"].get("Privileged")


def test_bobs_container_cannot_reach_the_proxy_api(hub, bob):  # noqa: F811
    """The proxy's API (it routes every user's URL) listens on the host's loopback: from a container
    neither the hub's address nor the container's own loopback leads to it."""
    port = hub.settings["hub"]["proxy_api_port"]
    address = hub.settings["hub"]["hub_ip"]
    out = run_code(hub.server_url(bob[0]), bob[1],
                   "import socket\n"
                   f"for host in ({address!r}, '127.0.0.1', 'host.containers.internal'):\n"
                   "    try:\n"
                   f"        socket.create_connection((host, {port}), timeout=5).close(); print(host, 'open')\n"
                   "    except OSError as err:\n"
                   "        print(host, 'closed', type(err).__name__)\n")
    assert "open" not in out, out


def test_bob_cannot_use_up_the_processes_alice_may_start(hub, alice, bob):  # noqa: F811
    """RLIMIT_NPROC counts every process of uid 1000 on the machine, which every container's user is:
    with podman's defaults from images/containers.conf (1024) bob's 1022 sleeping processes left
    alice's server unable to fork (EAGAIN). Fixed: nproc is the machine's pid_max, the container's
    own limit is its cgroup's pids_limit."""
    nproc = [u for u in container_of(bob[0])["HostConfig"]["Ulimits"] if u["Name"].endswith("NPROC") or u["Name"] == "nproc"]
    assert nproc and nproc[0]["Soft"] > 4096, container_of(bob[0])["HostConfig"]["Ulimits"]
    hog = ("import os, subprocess\n"
           "procs = []\n"
           "try:\n"
           "    while len(procs) < 3000:\n"
           "        procs.append(subprocess.Popen(['sleep', '300'], stdin=subprocess.DEVNULL,\n"
           "                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))\n"
           "except OSError as err:\n"
           "    print('stopped', err.errno)\n"
           "open('/tmp/hog', 'w').write(' '.join(str(p.pid) for p in procs))\n"
           "print('bob holds', len(procs))\n")
    free = ("import subprocess\n"
            "print('alice', subprocess.run(['true']).returncode)\n")
    release = ("import os, signal\n"
               "for pid in open('/tmp/hog').read().split():\n"
               "    os.kill(int(pid), signal.SIGKILL)\n"
               "print('released')\n")
    try:
        held = run_code(hub.server_url(bob[0]), bob[1], hog, timeout=300)
        assert "bob holds" in held and int(held.split("bob holds")[1].split()[0]) > 1100, held
        assert "alice 0" in run_code(hub.server_url(alice[0]), alice[1], free)
    finally:
        run_code(hub.server_url(bob[0]), bob[1], release)


def test_nproc_is_no_budget_the_users_share():
    """The builder behind the fix: nproc as high as the machine has pids (never above the hub's own
    hard limit), nofile the hub's own; the containers carry it."""
    assert containers.process_ulimits(32768, 96365, (1024, 4096)) == [
        {"Name": "nproc", "Soft": 32768, "Hard": 32768}, {"Name": "nofile", "Soft": 1024, "Hard": 4096}]
    assert containers.process_ulimits(4194304, 62000, (1024, 1024))[0]["Soft"] == 62000
    assert containers.process_ulimits(4194304, -1, (1024, 1024))[0]["Soft"] == 4194304
    ulimits = containers.machine_ulimits()
    assert ulimits[0]["Soft"] >= min(int(Path("/proc/sys/kernel/pid_max").read_text()), 4096)
    assert containers.host_config({}, [], ulimits=ulimits)["ulimits"] == ulimits


# --- an anonymous local process ------------------------------------------------------------------


def as_account(uid, gid, code):
    """Run Python ``code`` as ``uid``/``gid`` (no supplementary groups); its stdout."""
    result = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "/usr/bin/python3",
                             "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    return result.stdout + result.stderr


def server_pid(name):
    return container_of(name)["State"]["Pid"]


PROBE = """
import os, signal, socket, urllib.request, urllib.error
def attempt(what, f):
    try:
        r = f(); print(what, 'GOT', str(r)[:80])
    except urllib.error.HTTPError as err:
        print(what, 'http', err.code)
    except OSError as err:
        print(what, 'denied', type(err).__name__)
attempt('environ', lambda: open('/proc/{pid}/environ', 'rb').read().count(b'JUPYTERHUB_API_TOKEN'))
attempt('home', lambda: os.listdir('/proc/{pid}/root/home/jovyan'))
attempt('signal', lambda: os.kill({pid}, 0))
attempt('state', lambda: os.listdir({state!r}))
attempt('socket', lambda: socket.socket(socket.AF_UNIX).connect({sock!r}))
attempt('storage', lambda: os.listdir('/var/lib/containers/storage/volumes'))
attempt('config', lambda: os.listdir('/run/containers/storage'))
attempt('http', lambda: urllib.request.urlopen('http://{ip}:8888/user/{name}/api/contents', timeout=10).status)
"""


def probe(hub, name, uid, gid):  # noqa: F811
    code = PROBE.format(pid=server_pid(name), state=str(hub.state_dir), ip=container_address(name), name=name,
                        sock=str(hub.state_dir / "podman" / "podman.sock"))
    return dict(line.split(" ", 1) for line in as_account(uid, gid, code).splitlines() if " " in line)


def test_an_anonymous_local_process_gets_nothing_of_alices_server(hub, alice):  # noqa: F811
    """``nobody``: neither the server's environment (its tokens), nor its files through /proc, nor a
    signal, nor the hub's state folder, the API socket or podman's storage; its port answers, but
    refuses a request without alice's token."""
    got = probe(hub, alice[0], 65534, 65534)
    for what in ("environ", "home", "signal", "state", "socket", "storage", "config"):
        assert got[what].startswith("denied"), got
    assert got["http"] in ("http 403", "http 401") or got["http"].startswith("http 30"), got


def host_uid(pid):
    """The real uid of process ``pid`` as the host sees it."""
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["Uid"].split()[0])


def test_a_host_account_with_the_images_uid_gets_nothing_of_alices_server(hub, alice, bob):  # noqa: F811
    """The image's uid 1000 is, on the host, a uid of the container's own user namespace: a login
    account with uid 1000 (gid 100, the image's group) can neither signal the server nor read its
    environment (the tokens) or files; alice's and bob's servers run as different host uids."""
    got = probe(hub, alice[0], IMAGE_UID, 100)
    assert all(got[what].startswith("denied") for what in ("environ", "home", "signal")), got
    uids = {host_uid(server_pid(name)) for name in (alice[0], bob[0])}
    assert len(uids) == 2 and IMAGE_UID not in uids and min(uids) >= 65536, uids
    # a process with bob's server's host uid (an escape from his container) cannot signal alice's
    escaped = as_account(host_uid(server_pid(bob[0])), 100,
                         f"import os\ntry:\n    os.kill({server_pid(alice[0])}, 0); print('GOT')\n"
                         "except OSError as err:\n    print('denied', type(err).__name__)\n")
    assert escaped.startswith("denied"), escaped


def test_the_containers_subordinate_ids_may_not_overlap_an_account_or_another_range():
    """A ``containers`` range that holds an account's uid (``containers:0:200000`` makes a container's
    root the host's root, ``containers:1000:65536`` its root the uid-1000 account) or another user's
    subordinate ids (their rootless containers' uids) was taken for enough ids: it is refused."""
    accounts = {"/etc/subuid": {0, 1000, 65534}, "/etc/subgid": {0, 100, 65534}}
    other = "ana:100000:65536\n"
    good = other + "containers:2147483647:2147483648\n"
    assert containers.subid_refusal({"/etc/subuid": good, "/etc/subgid": good}, accounts=accounts) is None
    for bad, why in [("containers:0:200000\n", "id 0 of an account"),
                     ("containers:1000:65536\n", "id 1000 of an account"),
                     ("containers:120000:65536\n", "overlaps ana's subordinate ids 100000:65536"),
                     ("containers:4294901760:65536\n", "past 4294967294")]:
        refusal = containers.subid_refusal({"/etc/subuid": other + bad, "/etc/subgid": good}, accounts=accounts)
        assert refusal and refusal.startswith("/etc/subuid:") and why in refusal, (bad, refusal)
    refusal = containers.subid_refusal({"/etc/subuid": good, "/etc/subgid": other + "containers:50:65536\n"},
                                       accounts=accounts)
    assert refusal and refusal.startswith("/etc/subgid:") and "id 100 of an account" in refusal
    assert containers.machine_subid_refusal() is None or "containers" in containers.machine_subid_refusal()


def test_user_namespace_host_is_refused_where_an_account_has_the_images_uid():
    """``local.container.user_namespace: host`` runs every server as the host's uid 1000: with an
    account of that uid on the machine (the hole user namespaces closed) the hub refuses it."""
    assert "uid 1000" in containers.host_namespace_refusal({0, 1000})
    assert containers.host_namespace_refusal({0, 1001, 65534}) is None


# --- the home volume handed to a new user namespace (podman's U option) ---------------------------

RACER_LOOP = """
import ctypes, os, sys, time
rename = ctypes.CDLL(None, use_errno=True).renameat2
zz = os.path.expanduser('~/zz')
os.makedirs(zz, exist_ok=True)
os.chmod(zz, 0o777)  # the chown hands zz to the new container's uid: this one may still rename in it
pairs = []
for i in range(8):
    d, s = ('%s/d%d' % (zz, i)).encode(), ('%s/s%d' % (zz, i)).encode()
    if not os.path.lexists(d):
        os.mkdir(d); os.chmod(d, 0o777); open(d + b'/f', 'w').close()  # the target's file name
    if not os.path.lexists(s):
        os.symlink(sys.argv[1], s)
    pairs.append((d, s))
open(os.path.expanduser('~/racer.ready'), 'w').close()
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    for d, s in pairs:
        rename(-100, d, -100, s, 2)  # AT_FDCWD, RENAME_EXCHANGE: a directory and a symlink trade places
"""


def start_racer(target):
    """Code for a server: start :data:`RACER_LOOP` against ``target`` (a host path) for 240 s."""
    return ("import os, subprocess, sys, time\n"
            f"open('/tmp/racer.py', 'w').write({RACER_LOOP!r})\n"
            f"subprocess.Popen([sys.executable, '/tmp/racer.py', {str(target)!r}, '240'], start_new_session=True,\n"
            "                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "while not os.path.exists(os.path.expanduser('~/racer.ready')):\n"
            "    time.sleep(0.1)\n"
            "print('racing')\n")


def by_path(path, uid, gid):
    """A chown of a tree by path (what podman's ``U`` did: lstat, then open the directory by name)."""
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                os.lchown(os.path.join(root, name), uid, gid)
            except OSError:
                pass


@pytest.mark.parametrize("walk", ["hand_over", "by_path"])
def test_the_home_is_handed_over_without_following_a_symlink_swapped_in(tmp_path, walk):
    """The hub's own hand-over (:func:`containers.hand_over`) against :data:`RACER_LOOP` in another
    process: a host file beside the home keeps its owner over 300 walks. The same race against a walk
    by path (``by_path``, as podman's ``U`` option walked) chowns it: the race is real."""
    if os.geteuid() != 0:
        pytest.skip("needs root (chown to other uids)")
    home, victim = tmp_path / "home", tmp_path / "victim"
    home.mkdir()
    victim.mkdir()
    (victim / "f").write_text("root's\n")
    racer = subprocess.Popen([sys.executable, "-c", RACER_LOOP, str(victim), "120"], env={**os.environ, "HOME": str(home)})
    try:
        wait_for(lambda: (home / "racer.ready").exists(), 30, "the racer")
        chown = containers.hand_over if walk == "hand_over" else by_path
        for i in range(300):
            chown(home, 4000 + i % 2, 4000 + i % 2)
            if (victim / "f").stat().st_uid != 0:
                break
    finally:
        racer.kill()
        racer.wait()
    if walk == "hand_over":
        assert (victim / "f").stat().st_uid == 0, f"walk {i + 1} chowned the host file"
    else:
        assert (victim / "f").stat().st_uid != 0, "the race never won against a walk by path: the test proves nothing"


async def test_a_home_being_handed_over_holds_no_other_users_podman_call(monkeypatch):
    """dockerspawner makes every user's podman calls (start, stop, poll) on one global thread: a
    hand-over there of bob's home of millions of files would stall every other user's spawn and
    poll meanwhile (podman's ``U`` chown did, inside the start call). It runs on a thread of its own."""
    import threading
    import types

    spawner = containers.ContainerSpawner(user=types.SimpleNamespace(name="bob", id=1, url="/user/bob/",
                                                                     escaped_name="bob"))
    spawner.object_id = "c0ffee"
    release = threading.Event()
    monkeypatch.setattr(containers, "hand_over", lambda *args: release.wait(60))
    ids = {"UidMap": ["0:2147483647:65536"], "GidMap": ["0:2147483647:65536"]}

    async def libpod(method, path, **kwargs):
        return 200, {"Mounts": [{"Type": "volume", "Destination": "/home/jovyan", "Source": "/nonexistent"}],
                     "Config": {"User": "1000"}, "HostConfig": {"IDMappings": ids}}

    calls = []

    async def docker(method, *args, **kwargs):
        calls.append(method)

    monkeypatch.setattr(spawner, "libpod", libpod)
    monkeypatch.setattr(spawner, "docker", docker)
    bobs = asyncio.ensure_future(spawner.start_object())
    try:
        await asyncio.sleep(0.2)
        alices = asyncio.wrap_future(spawner.executor.submit(lambda: "alice's poll"))
        assert await asyncio.wait_for(alices, 10) == "alice's poll"
        assert calls == []  # bob's container waits for its home
    finally:
        release.set()
        await bobs
    assert calls == ["start"]


def test_a_symlink_race_in_the_home_cannot_make_a_start_chown_a_host_file(hub, admin, tmp_path):  # noqa: F811
    """Each start hands the home volume to the new container's uid, as root on the host. With
    podman's ``U`` option that was a walk which opens each directory by path after an lstat: bob runs
    two servers (named servers share his home volume); in the first, a loop swaps directories of his
    home with symlinks to a host folder (``renameat2(RENAME_EXCHANGE)``), and starting the second
    made podman walk through a symlink and chown the host folder's files to his new container's uid
    (a root-owned file here; equally /etc/shadow, /usr/bin's setuid programs, alice's home volume)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "f").write_text("root's\n")
    name, token = new_user(hub, admin, "r")
    r = hub.spawn(token, name, profile="cpu")
    assert r.status_code in (201, 202), r.text
    assert "racing" in run_code(hub.server_url(name), token, start_racer(victim))
    try:
        for attempt in range(4):
            r = hub.spawn(token, name, profile="cpu", server="two")
            assert r.status_code in (201, 202), r.text
            hub.stop_server(token, name, "two")
            assert (victim / "f").stat().st_uid == 0, f"start {attempt + 1} chowned {victim}/f"
    finally:
        hub.stop_server(token, name)


# --- the hub killed -------------------------------------------------------------------------------


def api_service_pids(sock):
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"system" in cmdline and f"unix://{sock}".encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def test_a_killed_hub_leaves_no_api_service_and_its_restart_takes_the_servers_back(hub, alice, bob):  # noqa: F811
    """SIGKILL to the hub: the podman API service it started goes with it (no root-equivalent socket
    answers with no hub); the containers keep running, and the restarted hub serves them again."""
    sock = hub.state_dir / "podman" / "podman.sock"
    (service,) = api_service_pids(sock)
    parent = int(dict(line.split(":\t", 1) for line in Path(f"/proc/{service}/status").read_text().splitlines())["PPid"])
    os.kill(parent, signal.SIGKILL)
    wait_for(lambda: not api_service_pids(sock), 30, "the API service to end with the hub")
    assert not containers.answers(sock)
    assert container_of(bob[0])["State"]["Running"]  # an orphan until the hub is back
    if hub.process.poll() is None:
        hub.process.send_signal(signal.SIGINT)
        hub.process.wait(60)
    time.sleep(1)
    hub.start()
    assert containers.socket_refusal(sock) is None and len(api_service_pids(sock)) == 1
    hub.wait_ready(bob[1], bob[0])
    r = requests.get(f"{hub.server_url(bob[0])}api/status", headers={"Authorization": f"token {bob[1]}"}, timeout=60)
    assert r.status_code == 200, r.text
