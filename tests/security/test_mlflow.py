"""Attacks on the hub's MLflow service (``mlflow.enabled``; issue 19 item 4), on a real local hub.

alice logs an experiment, a run and an artifact through ``/services/mlflow/``; then
- bob, with his hub token, asks for them by listing and by id (experiment, run, metric history, artifact by
  the proxied artifact API and by ``get-artifact``, GraphQL), writes into her run and her experiment, and
  walks the artifact API out of its folder;
- bob's server's MLflow token (``$DEEPVRE_MLFLOW_TOKEN``) does the same, and opens nothing else (the hub API,
  alice's server); the server's own hub token does not open the service;
- a user tries MLflow's account management through the service (make an account, change a password,
  become admin, sign up);
- an anonymous local process (``nobody``) and alice's hub token go to the loopback MLflow server directly,
  and anyone reaches the service without credentials.
The functional side is tests/hub/test_mlflow_service.py.
"""

import base64
import json
import subprocess
import sys
import time

import psutil
import pytest
import requests

from tests.hub.hubprocess import run_code
from tests.hub.mlflowhub import call, experiments, log_directly, mlflow_hub, mlflow_server

pytestmark = [pytest.mark.hub, pytest.mark.root]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with mlflow_hub(tmp_path_factory.mktemp("mlflow-attacks"), "ma") as (process, users):
        alice, _, alice_t = users["alice"]
        eid, rid = log_directly(process, alice_t, f"{alice}/private")
        yield process, users, eid, rid


GRAPHQL = 'query { mlflowGetRun(input: {runId: "RUN"}) { run { info { runId } } } }'


def reads_of(eid, rid):
    """Every way to ask for alice's experiment, run, metrics and artifact by id: ``(name, method, path, kwargs)``."""
    return [
        ("experiment", "GET", "api/2.0/mlflow/experiments/get", {"params": {"experiment_id": eid}}),
        ("run", "GET", "api/2.0/mlflow/runs/get", {"params": {"run_id": rid}}),
        ("runs search", "POST", "api/2.0/mlflow/runs/search", {"json": {"experiment_ids": [eid]}}),
        ("metric history", "GET", "api/2.0/mlflow/metrics/get-history", {"params": {"run_id": rid, "metric_key": "acc"}}),
        ("ajax bulk history", "GET", "ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
         {"params": {"run_ids": rid, "metric_key": "acc", "max_results": 10}}),
        ("artifact list", "GET", "api/2.0/mlflow/artifacts/list", {"params": {"run_id": rid}}),
        ("get-artifact", "GET", "get-artifact", {"params": {"path": "secret.txt", "run_uuid": rid}}),
        ("proxied artifact", "GET", f"api/2.0/mlflow-artifacts/artifacts/{eid}/{rid}/artifacts/secret.txt", {}),
        ("graphql", "POST", "graphql", {"json": {"query": GRAPHQL.replace("RUN", rid)}}),
    ]


def assert_sees_nothing(process, token, eid, rid, alice):
    assert not [n for n in experiments(process, token) if n.startswith(alice)]
    for name, method, path, kwargs in reads_of(eid, rid):
        r = call(process, token, method, path, **kwargs)
        leaked = "alice's secret" in r.text or rid in r.text or '"lr"' in r.text
        assert not leaked, f"{name}: {r.status_code} {r.text[:300]}"
        assert r.status_code in (401, 403, 404) or name in ("runs search", "graphql"), f"{name}: {r.status_code}"
    writes = [
        ("log into her run", "POST", "api/2.0/mlflow/runs/log-batch",
         {"json": {"run_id": rid, "params": [{"key": "evil", "value": "1"}]}}),
        ("a run in her experiment", "POST", "api/2.0/mlflow/runs/create", {"json": {"experiment_id": eid}}),
        ("an artifact into her run", "PUT", f"api/2.0/mlflow-artifacts/artifacts/{eid}/{rid}/artifacts/evil.txt",
         {"data": b"evil"}),
        ("delete her experiment", "POST", "api/2.0/mlflow/experiments/delete", {"json": {"experiment_id": eid}}),
        ("share her experiment with himself", "POST", "api/2.0/mlflow/experiments/permissions/create",
         {"json": {"experiment_id": eid, "username": "x", "permission": "READ"}}),
    ]
    for name, method, path, kwargs in writes:
        r = call(process, token, method, path, **kwargs)
        assert r.status_code in (401, 403, 404), f"{name}: {r.status_code} {r.text[:300]}"


def test_bob_sees_and_changes_nothing_of_alices(hub):
    process, users, eid, rid = hub
    alice, bob_t = users["alice"][0], users["bob"][2]
    assert_sees_nothing(process, bob_t, eid, rid, alice)
    # out of the artifact folder: MLflow's databases and secrets sit beside it
    for path in ("api/2.0/mlflow-artifacts/artifacts/..%2F..%2Fadmin_password",
                 "api/2.0/mlflow-artifacts/artifacts/%2e%2e/%2e%2e/auth.sqlite",
                 f"get-artifact?path=..%2F..%2F..%2Fadmin_password&run_uuid={rid}"):
        r = call(process, bob_t, "GET", path)
        assert r.status_code != 200 and "SQLite" not in r.text, f"{path}: {r.status_code} {r.text[:200]}"
    # alice still has all of it
    assert call(process, users["alice"][2], "GET", "get-artifact",
                params={"path": "secret.txt", "run_uuid": rid}).text == "alice's secret"


def test_bobs_server_tokens(hub):
    process, users, eid, rid = hub
    alice, bob, bob_t = users["alice"][0], users["bob"][0], users["bob"][2]
    process.spawn(bob_t, bob)
    out = run_code(process.server_url(bob), bob_t, "import os, json\nprint(json.dumps([os.environ['DEEPVRE_MLFLOW_TOKEN'], "
                                                   "os.environ['JUPYTERHUB_API_TOKEN']]))")
    mlflow_token, server_token = json.loads(out.strip().splitlines()[-1])
    # the server's MLflow token is bob in MLflow: his own experiments, none of alice's
    assert_sees_nothing(process, mlflow_token, eid, rid, alice)
    r = call(process, mlflow_token, "POST", "api/2.0/mlflow/experiments/create", json={"name": f"{bob}/own"})
    assert r.status_code == 200
    assert f"{bob}/own" in experiments(process, mlflow_token)
    # and opens nothing else: the hub's API, alice's server
    assert process.api(mlflow_token, "GET", f"/users/{alice}").status_code in (403, 404)
    assert process.api(mlflow_token, "GET", f"/users/{bob}/tokens").status_code in (403, 404)
    assert process.api(mlflow_token, "POST", f"/users/{bob}/tokens", json={}).status_code in (403, 404)
    r = requests.get(f"{process.server_url(alice)}api/contents", headers={"Authorization": f"token {mlflow_token}"},
                     allow_redirects=False, timeout=60)
    assert r.status_code in (302, 401, 403, 404)
    # the server's own hub token does not open the service (it lacks access:services!service=mlflow)
    r = call(process, server_token, "GET", "api/2.0/mlflow/experiments/search?max_results=10")
    assert r.status_code in (302, 401, 403) and "experiments" not in r.text


def test_no_account_management_through_the_service(hub):
    process, users, _, _ = hub
    alice, alice_t = users["alice"][0], users["alice"][2]
    attempts = [
        ("POST", "api/2.0/mlflow/users/create", {"json": {"username": "mallory", "password": "x" * 20}}),
        ("PATCH", "api/2.0/mlflow/users/update-password", {"json": {"username": alice, "password": "x" * 20}}),
        ("PATCH", "ajax-api/2.0/mlflow/users/update-admin", {"json": {"username": alice, "is_admin": True}}),
        ("GET", "api/2.0/mlflow/users/get", {"params": {"username": users["bob"][0]}}),
        ("DELETE", "api/2.0/mlflow/users/delete", {"json": {"username": users["bob"][0]}}),
        ("GET", "api/3.0/mlflow/users/permissions/list", {}),
        ("POST", "api/3.0/mlflow/roles/create", {"json": {"name": "r"}}),
        ("GET", "signup", {}),
        ("POST", "api/2.0/mlflow/users/create-ui", {"data": {"username": "m", "password": "x" * 20}}),
    ]
    for method, path, kwargs in attempts:
        r = call(process, alice_t, method, path, **kwargs)
        assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text[:200]}"
    # what the UI needs of them stays: who is logged in
    r = call(process, alice_t, "GET", "api/2.0/mlflow/users/current")
    assert r.status_code == 200 and r.json()["user"] == {**r.json()["user"], "username": alice, "is_admin": False}


PROBE = r"""
import base64, json, sys, urllib.error, urllib.request
url, header = sys.argv[1], sys.argv[2]
request = urllib.request.Request(url, headers={"Authorization": header} if header else {})
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        print(json.dumps([answer.status, answer.read(300).decode(errors="replace")]))
except urllib.error.HTTPError as err:
    print(json.dumps([err.code, ""]))
"""


def probe_as(account, url, header=""):
    """``[status, body head]`` of a GET of ``url`` made by a process of ``account``."""
    out = subprocess.run([sys.executable, "-c", PROBE, url, header], user=account, capture_output=True, text=True,
                         timeout=120, cwd="/", check=True)
    return json.loads(out.stdout)


def test_the_loopback_mlflow_server_wants_credentials(hub):
    process, users, eid, rid = hub
    port, server = mlflow_server(process)
    assert server.username() == "deepvre-mlflow"  # hub.service_accounts.mlflow, not root
    listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port}
    assert listening == {"127.0.0.1"}
    base = f"http://127.0.0.1:{port}"
    for path in ("api/2.0/mlflow/experiments/search?max_results=10", f"api/2.0/mlflow/runs/get?run_id={rid}",
                 f"get-artifact?path=secret.txt&run_uuid={rid}", f"api/2.0/mlflow-artifacts/artifacts/{eid}/{rid}/artifacts/secret.txt",
                 "api/2.0/mlflow/users/current"):
        for account in ("nobody", "root"):
            status, body = probe_as(account, f"{base}/{path}")
            assert status == 401 and "secret" not in body, f"{account} {path}: {status} {body}"
        # a hub token means nothing to MLflow
        status, _ = probe_as("nobody", f"{base}/{path}", f"token {users['alice'][2]}")
        assert status == 401
        status, _ = probe_as("nobody", f"{base}/{path}", "Basic " + base64.b64encode(
            f"{users['alice'][0]}:guess".encode()).decode())
        assert status == 401
    # MLflow's secrets and stores are the service account's alone
    folder = process.state_dir / "mlflow"
    assert folder.stat().st_mode & 0o077 == 0
    for name in ("secret", "admin_password", "basic_auth.ini", "auth.sqlite", "mlflow.sqlite"):
        assert (folder / name).stat().st_mode & 0o077 == 0, name


def test_no_credentials_no_service(hub):
    process, _, eid, rid = hub
    for path in ("", "api/2.0/mlflow/experiments/search?max_results=10", f"get-artifact?path=secret.txt&run_uuid={rid}"):
        r = call(process, None, "GET", path)
        assert r.status_code in (302, 401, 403) and "secret" not in r.text, f"{path}: {r.status_code}"
        r = call(process, "0" * 32, "GET", path)  # a forged token
        assert r.status_code in (302, 401, 403) and "secret" not in r.text, f"{path}: {r.status_code}"


def test_another_hubs_start_ends_orphans_but_not_a_running_services_server(hub_state):
    """Each hub start kills the service account's orphans (a taken-over service's leftovers); the MLflow
    service's own server, a child of a service some running hub started, is not one of them."""
    from traitlets.config import Config

    from deepvre.site.settings import validate_settings
    from deepvre_hub import modes, service_accounts

    service_accounts.ensure("deepvre-mlflow")
    subprocess.run(["sh", "-c", "sleep 301 >/dev/null 2>&1 &"], user="deepvre-mlflow", extra_groups=[], cwd="/",
                   check=True)
    orphans = [p for p in psutil.process_iter(["username", "cmdline"])
               if p.info["username"] == "deepvre-mlflow" and p.info["cmdline"][:2] == ["sleep", "301"]]
    # what a running hub's service is: a child of root, with a server of its own below it
    served = subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '302'])"],
                              user="deepvre-mlflow", extra_groups=[], cwd="/")
    try:
        below = []
        for _ in range(100):
            below = psutil.Process(served.pid).children()
            if below:
                break
            time.sleep(0.1)
        assert orphans and below
        settings = validate_settings({"profiles": [{"slug": "cpu", "display_name": "CPU"}], "mlflow": {"enabled": True}})
        modes.configure(Config(), settings, hub_state)
        psutil.wait_procs(orphans, timeout=30)
        assert not any(p.is_running() for p in orphans)
        assert served.poll() is None and all(p.is_running() for p in below)
    finally:
        for p in psutil.Process(served.pid).children():
            p.kill()
        served.kill()
