"""A real local hub with the MLflow service on (``mlflow.enabled``), for tests/hub/test_mlflow_service.py and
tests/security/test_mlflow.py: alice and bob signed up and approved, and helpers for MLflow's REST API through
the service (``/services/mlflow/``) and for the loopback MLflow server behind it."""

import contextlib
import re
import secrets

import psutil
import requests

from tests.hub.hubprocess import HubProcess, wait_for
from tests.prereqs import require_proxy, require_root

PASSWORD = "mlflow-" + secrets.token_hex(6)
PROFILES = [{"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory": "2G", "default": True}]
START = 900  # seconds: MLflow's server migrates two databases at its first start (minutes on a loaded machine)


@contextlib.contextmanager
def mlflow_hub(folder, prefix):
    """``(hub, {"alice": (name, session, token), "bob": ...})`` once the service answers alice."""
    require_root()
    require_proxy()
    process = HubProcess({"profiles": PROFILES, "mlflow": {"enabled": True, "start_timeout": START}}, folder / "state")
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        users = {}
        for role in ("alice", "bob"):
            name = f"{prefix}{secrets.token_hex(3)}{role}"
            users[role] = (name, *process.approved_user(admin, name, PASSWORD))
        token = users["alice"][2]
        wait_for(lambda: call(process, token, "GET", "api/2.0/mlflow/experiments/search?max_results=1").status_code == 200,
                 START, f"the MLflow service to answer\n{process.log_text()[-3000:]}", interval=2)
        yield process, users


def service_url(process):
    return f"{process.url}/services/mlflow/"


def call(process, token, method, path, **kwargs):
    """MLflow's API through the hub's service with a hub token (``None``: no credentials)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return requests.request(method, service_url(process) + path, headers=headers, allow_redirects=False,
                            timeout=kwargs.pop("timeout", 120), **kwargs)


def experiments(process, token):
    r = call(process, token, "POST", "api/2.0/mlflow/experiments/search", json={"max_results": 1000})
    assert r.status_code == 200, r.text[:300]
    return {e["name"]: e["experiment_id"] for e in r.json().get("experiments", [])}


def open_ui(process, session):
    """The service's page in a logged-in browser session (after the OAuth round trip): ``(page, xsrf token
    its script sends)``."""
    page = session.get(service_url(process), timeout=120)
    found = re.search(r'<script>\(function\(\)\{var t="([^"]+)"', page.text)
    return page, found.group(1) if found else None


def browser_ajax(process, session, method, path, xsrf=None, **kwargs):
    """What MLflow's UI sends from a page of the service: the hub cookie, a fetch (``Sec-Fetch-Mode: cors``)
    and, through the service's page script, the XSRF token ``xsrf``."""
    headers = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}
    if xsrf:
        headers["X-XSRFToken"] = xsrf
    return session.request(method, service_url(process) + path, headers=headers, allow_redirects=False,
                           timeout=120, **kwargs)


def mlflow_server(process):
    """``(port, process)`` of the loopback MLflow server this hub's service started."""
    folder = str(process.state_dir / "mlflow")
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "server" in cmdline and "--port" in cmdline and any(folder in part for part in cmdline):
            return int(cmdline[cmdline.index("--port") + 1]), proc
    raise AssertionError(f"no MLflow server under {folder}")


def log_directly(process, token, name):
    """An experiment ``name`` with one run, a metric, a parameter and an artifact, logged through the
    service with ``token``: ``(experiment id, run id)``."""
    r = call(process, token, "POST", "api/2.0/mlflow/experiments/create", json={"name": name})
    assert r.status_code == 200, r.text[:300]
    eid = r.json()["experiment_id"]
    r = call(process, token, "POST", "api/2.0/mlflow/runs/create", json={"experiment_id": eid, "run_name": "r1"})
    assert r.status_code == 200, r.text[:300]
    info = r.json()["run"]["info"]
    rid = info["run_id"]
    r = call(process, token, "POST", "api/2.0/mlflow/runs/log-batch", json={
        "run_id": rid, "metrics": [{"key": "acc", "value": 0.9, "timestamp": 0, "step": 1}],
        "params": [{"key": "lr", "value": "0.1"}]})
    assert r.status_code == 200, r.text[:300]
    root = re.sub(r"^mlflow-artifacts:/", "", info["artifact_uri"]).strip("/")
    r = call(process, token, "PUT", f"api/2.0/mlflow-artifacts/artifacts/{root}/secret.txt", data=b"alice's secret")
    assert r.status_code == 200, r.text[:300]
    return eid, rid
