"""Attacks on the model services deepvre starts (DEEPaaS), and on running notebooks others published.

A real DEEPaaS is started the way deepvre starts it: by the server extension (``POST serve`` in a
real jupyter_server with deepvre enabled) and standalone (``deepvre serve MODEL --port P``).
Then other processes try its metadata, ``predict`` and ``train``:

* an anonymous local process (the ``nobody`` account, no credentials);
* a second OS account (made here with ``useradd``, removed after), which also tries the
  service's folder (socket, uploads, log).

They aim at every listener the service process holds (its TCP ports and Unix sockets, found with
psutil) and at the user's server without the user's token. The probe (``PROBE``) reports each
answer with a 2xx status as ``ACCEPTED``; the owner's own requests through the proper path are
the control. ``train`` of a model another user owns is refused even to the server's user, and
Fine-tune → Run of another user's notebook needs ``trust: {owner, sha256}``.
"""

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psutil
import pytest
import requests
from pytest_jupyter.jupyter_server import *  # noqa: F403 (its fixtures)

from tests.extension.conftest import api, colours_market, colours_model, jp_server_config, market_dir  # noqa: F401
from tests.hub.hubprocess import free_port
from tests.market.conftest import stop_process
from tests.prereqs import require_program, require_root

from .conftest import UNIX_HTTP, os_account

PYTHON = sys.executable  # /work/main/.venv/bin/python: readable by other accounts
DEEPVRE = Path(sys.executable).parent / "deepvre"

PROBE = UNIX_HTTP + r'''
import json, sys

targets = json.loads(sys.argv[1])
results = []

def ask(label, conn, method, path, headers=None, body=None):
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        results.append([label, method, path, r.status, "ACCEPTED" if 200 <= r.status < 300 else "refused"])
    except Exception as err:
        results.append([label, method, path, None, f"refused: {type(err).__name__}: {err}"])
    finally:
        conn.close()

form = "--b\r\nContent-Disposition: form-data; name=\"array\"\r\n\r\n[[[0,0,0]]]\r\n--b--\r\n"
for where in targets["where"]:
    for method, path in targets["requests"]:
        headers = {"Content-Type": "multipart/form-data; boundary=b", "Accept": "application/json"}
        headers.update(targets.get("headers", {}))
        body = form if method == "POST" else None
        if where.startswith("unix:"):
            conn = UnixConnection(where[5:])
        else:
            host, port = where.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=20)
        ask(where, conn, method, path, headers, body)
for path in targets.get("files", []):
    try:
        import os
        listing = os.listdir(path) if os.path.isdir(path) else open(path, "rb").read(64)
        results.append(["file", "READ", path, None, "ACCEPTED"])
    except OSError as err:
        results.append(["file", "READ", path, None, f"refused: {type(err).__name__}"])
print(json.dumps(results))
'''


def probe(targets, user=None, loop=None):
    """Run PROBE (as ``user`` with ``runuser``, else as this process) against ``targets``; with
    ``loop`` (an in-process server's event loop) the loop keeps serving while the probe runs."""
    cmd = [PYTHON, "-c", PROBE, json.dumps(targets)]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    if loop is None:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd="/", check=False)
        code, stdout, stderr = out.returncode, out.stdout, out.stderr
    else:
        import asyncio

        async def run():
            proc = await asyncio.create_subprocess_exec(*cmd, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 240)
            return proc.returncode, out.decode(), err.decode()

        code, stdout, stderr = loop.run_until_complete(run())
    assert code == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def accepted(results):
    return [r for r in results if r[-1] == "ACCEPTED"]


def listeners(pid):
    """``(tcp 'host:port's, unix socket paths)`` the process ``pid`` and its children listen on."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    tcp, unix = set(), set()
    for proc in procs:
        for conn in proc.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                host = "127.0.0.1" if conn.laddr.ip in ("0.0.0.0", "::", "::1") else conn.laddr.ip
                tcp.add(f"{host}:{conn.laddr.port}")
        for conn in proc.net_connections(kind="unix"):
            if conn.laddr and conn.status in (psutil.CONN_LISTEN, psutil.CONN_NONE) and conn.laddr.startswith("/"):
                unix.add(conn.laddr)
    return sorted(tcp), sorted(unix)


def model_requests(base_path, name="colours"):
    """Metadata, predict and train of ``name`` under ``base_path`` (a URL path, unquoted)."""
    base = base_path.rstrip("/")
    return [["GET", f"{base}/v2/models/"], ["GET", f"{base}/v2/models/{name}/"],
            ["POST", f"{base}/v2/models/{name}/predict/"],
            ["POST", f"{base}/v2/models/{name}/train/?parameters=%7B%7D"]]


@pytest.fixture
def attackers():
    """The anonymous ``nobody`` and a fresh second account."""
    require_root()
    require_program("runuser")
    with os_account("srv") as other:
        yield {"nobody": "nobody", "second account": other}


def wait_for(check, what, timeout=180, last=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} within {timeout} s {last()}"
        time.sleep(0.5)


@pytest.mark.parametrize("jp_base_url", ["/user/ana@lab.org/"])  # as JupyterHub makes it (see test_backends)
def test_extension_service_is_reached_only_through_the_users_server(
        api, market_dir, jp_serverapp, jp_fetch, jp_asyncio_loop, jp_base_url, jp_http_port, attackers):  # noqa: F811
    """The service the panel starts: the owner gets metadata and predict through the server; nobody
    and a second account get nothing, directly or through the server; train of ana's model is refused."""
    status, svc = api("POST", "serve", body={"model": "colours", "version": "1.0.0"})
    assert status == 201 and svc["state"] == "ready", svc
    ext = jp_serverapp.web_app.settings["deepvre"]
    [record] = ext.services._services.values()
    url = urllib.parse.unquote(urllib.parse.urlsplit(svc["url"]).path)  # .../v2/

    def owner(method, path, files=None, params=None):
        """The user, through their server (jp_fetch: the token; the server's loop runs meanwhile)."""
        from tornado.httpclient import HTTPClientError

        assert path.startswith(jp_base_url), path
        kw = {"method": method, "headers": {"Accept": "application/json"}, "params": params}
        if files:
            req = requests.Request("POST", "http://x/", files=files).prepare()
            kw["body"], kw["headers"]["Content-Type"] = req.body, req.headers["Content-Type"]
        elif method == "POST":
            kw["body"] = b""
        try:
            resp = jp_asyncio_loop.run_until_complete(jp_fetch(path[len(jp_base_url):], **kw))
        except HTTPClientError as err:
            resp = err.response
            if resp is None:
                raise requests.ConnectionError(str(err)) from err
        resp.status_code, resp.text = resp.code, (resp.body or b"").decode(errors="replace")
        resp.json = lambda: json.loads(resp.text)
        return resp

    seen = []

    def up():
        try:
            r = owner("GET", url + "models/")
            seen[:] = [r.status_code, r.text[:300]]
            return r.status_code == 200
        except (requests.RequestException, OSError) as err:
            seen[:] = [repr(err)]
            return False

    try:
        wait_for(lambda: up() or (record["process"].poll() is not None and pytest.fail(open(record["log"]).read())),
                 "DEEPaaS answers through the server", 120, lambda: seen)
        assert seen[0] == 200, seen
        # the owner, through the proper path
        meta = owner("GET", url + "models/colours/")
        assert meta.status_code == 200 and meta.json()["author"] == "ana"
        x = json.dumps([[[[0.9, 0.0, 0.0]] * 8] * 8])
        pred = owner("POST", url + "models/colours/predict/", files={"array": (None, x)})
        assert pred.status_code == 200 and pred.json()["predictions"][0][0]["label"] == "red", pred.text
        # train runs the model's notebook as this server's user: ana's model is not theirs
        train = owner("POST", url + "models/colours/train/", params={"parameters": "{}"})
        assert train.status_code == 403 and "owner" in train.json()["message"], train.text

        tcp, unix = listeners(record["process"].pid)
        assert tcp == [], f"the service listens on TCP: {tcp}"
        base_path = url.removesuffix("/v2/")
        targets = {"where": [*tcp, *(f"unix:{u}" for u in unix), f"127.0.0.1:{jp_http_port}"],
                   "requests": model_requests(base_path),
                   "files": [os.path.dirname(record["process"].args[record["process"].args.index("--socket") + 1])
                             if "--socket" in record["process"].args else "/nonexistent", record["log"]]}
        for who, account in attackers.items():
            results = probe(targets, account, jp_asyncio_loop)
            assert not accepted(results), (who, accepted(results))
            assert len(results) == len(targets["where"]) * 4 + 2, results
        # a forged token is no better
        forged = probe({**targets, "headers": {"Authorization": "token " + secrets.token_hex(24)}},
                       attackers["second account"], jp_asyncio_loop)
        assert not accepted(forged), accepted(forged)
    finally:
        api("DELETE", f"serve/{svc['ref']}")


@pytest.fixture
def owned_market(tmp_path, colours_model):  # noqa: F811
    """A local catalog where this account (the standalone service's owner) published the colours model."""
    import getpass

    from deepvre.market.catalog import Catalog

    folder, doc = colours_model
    root = tmp_path / "market"
    catalog = Catalog(database_url=f"sqlite:///{root}/catalog.sqlite", store_url=str(root / "artifacts"))
    catalog.publish(doc, {p.name: p for p in folder.iterdir()}, getpass.getuser(), visibility="private")
    return root


def test_standalone_serve_demands_its_token_and_keeps_no_uploads(tmp_path, owned_market, attackers):
    """``deepvre serve MODEL --port P``: a token printed once; without it nobody gets metadata,
    predict or train; an upload (even one that fails) leaves nothing in any temp folder."""
    port = free_port()
    env = dict(os.environ, DEEPVRE_MARKET_DIR=str(owned_market), DEEPVRE_RUNS_DIR=str(tmp_path / "runs"))
    for var in ("DEEPVRE_MARKET_URL", "DEEPVRE_SERVE_TOKEN", "JUPYTERHUB_USER", "DEEPVRE_MARKET_TOKEN"):
        env.pop(var, None)
    uploads = tmp_path / "uploads"
    log_path = tmp_path / "serve.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([str(DEEPVRE), "serve", "colours", "--port", str(port), "--artifact-dir",
                             str(tmp_path / "art"), "--uploads", str(uploads)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def token():
            found = re.search(r"token \(shown once.*\): (\S+)", log_path.read_text())
            if proc.poll() is not None:
                pytest.fail(log_path.read_text()[-3000:])
            return found and found.group(1)

        secret = wait_for(token, "the token is printed", 60)
        auth = {"Authorization": f"token {secret}", "Accept": "application/json"}

        def up():
            try:
                return requests.get(f"{url}/v2/models/", headers=auth, timeout=5).status_code == 200
            except requests.RequestException:
                if proc.poll() is not None:
                    pytest.fail(log_path.read_text()[-3000:])
                return False

        wait_for(up, "DEEPaaS answers with the token")
        tcp, unix = listeners(proc.pid)
        assert tcp == [f"127.0.0.1:{port}"] and unix == [], (tcp, unix)
        assert oct(uploads.stat().st_mode & 0o777) == "0o700"
        targets = {"where": tcp, "requests": model_requests(""), "files": [str(uploads)]}
        for who, account in {"same account, no token": None, **attackers}.items():
            results = probe(targets if account else {**targets, "files": []}, account)
            assert not accepted(results), (who, accepted(results))
        assert requests.get(f"{url}/v2/models/colours/", timeout=30).status_code == 401

        # the owner, with the token: metadata, predict, and train (their own model) passes the guard
        assert requests.get(f"{url}/v2/models/colours/", headers=auth, timeout=30).json()["name"] == "colours"
        x = json.dumps([[[[0.0, 0.0, 0.9]] * 8] * 8])
        pred = requests.post(f"{url}/v2/models/colours/predict/", headers=auth, files={"array": (None, x)}, timeout=120)
        assert pred.status_code == 200 and pred.json()["predictions"][0][0]["label"] == "blue", pred.text
        # a 2 MiB upload that is no image: an error, and no copy left behind anywhere
        junk = b"deepvre-junk-" + secrets.token_bytes(2 * 1024 * 1024 - 13)
        bad = requests.post(f"{url}/v2/models/colours/predict/", headers=auth,
                            files={"data": ("x.png", junk, "image/png")}, timeout=120)
        assert bad.status_code >= 400, bad.text
        assert list(uploads.iterdir()) == []
        leftovers = [p for p in Path("/tmp").iterdir() if p.is_file() and p.stat().st_size == len(junk)
                     and p.read_bytes()[:13] == b"deepvre-junk-"]
        assert leftovers == []
        train = requests.post(f"{url}/v2/models/colours/train/", headers=auth, params={"parameters": "{}"}, timeout=60)
        assert train.status_code == 200 and train.json().get("uuid"), train.text
    finally:
        stop_process(proc, log)
    assert not uploads.exists()  # removed at exit


def test_fine_tune_run_of_another_users_notebook_needs_confirmation(api, market_dir, colours_model, jp_root_dir):  # noqa: F811
    """Fine-tune → Run of ana's notebook: 409 with owner and sha256 without confirmation (or a wrong
    one), 201 with ``trust`` matching the catalog entry and the file."""
    folder, _ = colours_model
    sha256 = hashlib.sha256((folder / "training.ipynb").read_bytes()).hexdigest()
    body = {"model": "colours", "version": "1.0.0", "parameters": {"epochs": 1}}
    status, data = api("POST", "runs", body=body)
    assert status == 409, data
    assert (data["owner"], data["sha256"]) == ("ana", sha256) and "ana" in data["message"], data
    assert not (jp_root_dir / "runs").exists() or list((jp_root_dir / "runs").iterdir()) == []
    status, data = api("POST", "runs", body={**body, "trust": {"owner": "ana", "sha256": "0" * 64}})
    assert status == 409 and data["sha256"] == sha256, data
    status, data = api("POST", "runs", body={**body, "trust": {"owner": "mallory", "sha256": sha256}})
    assert status == 409, data
    status, run = api("POST", "runs", body={**body, "trust": {"owner": "ana", "sha256": sha256}})
    assert status == 201, run
    api("DELETE", f"runs/{run['id']}")


CHILD = """
import signal, sys, time
from deepvre.orphans import exit_with_parent
signal.signal(signal.SIGTERM, lambda *a: (print("TERM", flush=True), sys.exit(0)))
exit_with_parent(interval=0.1)
print("up", flush=True)
time.sleep(60)
"""
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True)
print(child.pid, flush=True)
sys.stdin.read()  # until the test closes it, then exits without stopping the child
"""


def test_a_model_service_ends_with_the_process_that_started_it():
    """The Models panel's services run in a session of their own, so the hub's stop of the server
    never reached them: they kept their sockets, as the user, after the server was gone (found by
    the listener census). ``--exit-with-parent`` stops one once its parent has ended."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    time.sleep(1.0)
    assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    parent.stdin.close()  # the server ends
    parent.wait(30)
    child.wait(30)  # SIGTERMed within about a second, not left running
    assert not child.is_running()
