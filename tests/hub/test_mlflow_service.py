"""The MLflow service on a real local hub (``mlflow.enabled``; issue 19 item 4): alice's ``deepvre run`` in her
server logs its parameters, curves, final metrics and artifacts to ``/services/mlflow/`` with her server's
token, and she reads them back through the service's REST API and its UI (the page, its scripts, and the
UI's own ajax calls with the hub cookie and the page's XSRF token); bob sees none of it. The attacks
(bob's ids, bob's server token, the loopback MLflow server anonymously) are tests/security/test_mlflow.py."""

import json
import os
import stat

import pytest
from traitlets.config import Config

from deepvre.errors import Invalid
from deepvre.site.settings import validate_settings
from deepvre_hub import mlflow_service, modes
from tests.hub.hubprocess import run_code, terminal_output
from tests.hub.mlflowhub import browser_ajax, call, experiments, mlflow_hub, open_ui, service_url

NOTEBOOK = "tests/runs/notebooks/curves.ipynb"
PROFILES = [{"slug": "cpu", "display_name": "CPU"}]


def test_off_by_default_and_wired_when_enabled(hub_state):
    c = Config()
    modes.configure(c, validate_settings({"profiles": PROFILES}), hub_state)
    assert "mlflow" not in {s["name"] for s in c.JupyterHub.services}
    assert not any(k.startswith("DEEPVRE_MLFLOW") for k in c.Spawner.environment)
    c = Config()
    settings = validate_settings({"profiles": PROFILES, "mlflow": {"enabled": True, "port": 10777}})
    modes.configure(c, settings, hub_state)
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "mlflow"]
    assert service["url"] == "http://127.0.0.1:10777"
    assert service["command"][1:3] == ["-m", "deepvre_hub.mlflow_proxy"]
    assert f"--folder={hub_state / 'mlflow'}" in service["command"]
    (user_role,) = [r for r in c.JupyterHub.load_roles if r["name"] == "user"]
    assert "access:services!service=mlflow" in user_role["scopes"]
    env = c.Spawner.environment
    assert env["DEEPVRE_MLFLOW_URL"] == "http://127.0.0.1:10777/services/mlflow/"
    assert callable(env["DEEPVRE_MLFLOW_TOKEN"])  # a token of the service's scope alone, made per start
    assert "access:services!service=mlflow" not in c.Spawner.server_token_scopes
    if os.geteuid() == 0:  # as root it runs under its own account, which owns its folder (0700)
        assert service["user"] == "deepvre-mlflow"
        assert stat.S_IMODE((hub_state / "mlflow").stat().st_mode) == 0o700
    with pytest.raises(Invalid, match="local and Slurm modes only"):
        mlflow_service.hub_service({**settings, "mode": "kubernetes"}, hub_state)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with mlflow_hub(tmp_path_factory.mktemp("mlflow-hub"), "ml") as found:
        yield found


@pytest.mark.hub
@pytest.mark.root
def test_a_deepvre_run_is_logged_to_the_hubs_mlflow_for_its_user_alone(hub):
    from tests.prereqs import REPO

    process, users = hub
    (alice, alice_s, alice_t), (_, bob_s, bob_t) = users["alice"], users["bob"]
    process.spawn(alice_t, alice)
    server = process.server_url(alice)
    with open(f"{REPO}/{NOTEBOOK}") as fh:
        notebook = fh.read()
    env = run_code(server, alice_t, f"import os, json\nopen('curves.ipynb', 'w').write({notebook!r})\n"
                                    "print(json.dumps({k: bool(os.environ.get(k)) for k in "
                                    "('DEEPVRE_MLFLOW_URL', 'DEEPVRE_MLFLOW_TOKEN')}))")
    assert json.loads(env.strip().splitlines()[-1]) == {"DEEPVRE_MLFLOW_URL": True, "DEEPVRE_MLFLOW_TOKEN": True}
    shown = terminal_output(server, alice_t, "deepvre run curves.ipynb -p epochs 3 && echo RUN-OK-$((1+1))",
                            timeout=600)
    assert "RUN-OK-2" in shown, shown[-2000:]

    # REST through the service, with alice's hub token
    mine = experiments(process, alice_t)
    assert f"{alice}/curves" in mine, mine
    eid = mine[f"{alice}/curves"]
    r = call(process, alice_t, "POST", "api/2.0/mlflow/runs/search", json={"experiment_ids": [eid]})
    (run,) = r.json()["runs"]
    rid = run["info"]["run_id"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert run["info"]["status"] == "FINISHED" and tags["mlflow.user"] == alice
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["epochs"] == "3"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["test.f1"] == 0.7 and metrics["accuracy"] == 0.8
    history = call(process, alice_t, "GET", "api/2.0/mlflow/metrics/get-history",
                   params={"run_id": rid, "metric_key": "loss"}).json()["metrics"]
    assert sorted((m["step"], round(m["value"], 4)) for m in history) == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    listed = call(process, alice_t, "GET", "api/2.0/mlflow/artifacts/list", params={"run_id": rid}).json()
    assert {"output.ipynb", "metrics.json", "plots"} <= {f["path"] for f in listed["files"]}
    executed = call(process, alice_t, "GET", "get-artifact", params={"path": "output.ipynb", "run_uuid": rid})
    assert executed.status_code == 200 and "injected-parameters" in executed.text
    plot = call(process, alice_t, "GET", "get-artifact", params={"path": "plots/curves.png", "run_uuid": rid})
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    # the run through MLflow's GraphQL (the UI's run page): graphene's enums on the lock's graphql-core
    query = 'query { mlflowGetRun(input: {runId: "RUN"}) { run { info { runId status } } } }'.replace("RUN", rid)
    answer = call(process, alice_t, "POST", "graphql", json={"query": query}).json()
    assert answer["data"]["mlflowGetRun"]["run"]["info"] == {"runId": rid, "status": "FINISHED"}, answer
    # where the artifacts live: under the hub's state folder, MLflow's own (never a user's path)
    assert list((process.state_dir / "mlflow" / "artifacts").rglob("curves.png"))

    # the UI: the page and its script through the hub login, then the UI's own ajax calls
    page, xsrf = open_ui(process, alice_s)
    assert page.status_code == 200 and "<title>MLflow</title>" in page.text and xsrf, page.text[:500]
    script = __import__("re").search(r'src="(static-files/static/js/main[^"]+)"', page.text).group(1)
    loaded = alice_s.get(service_url(process) + script, timeout=120)
    # MLflow's own Content-Type, not tornado's default text/html (a browser refuses to run that)
    ctype = loaded.headers["Content-Type"]  # requests joins repeated headers with ", "
    assert loaded.status_code == 200 and "javascript" in ctype and "html" not in ctype, ctype
    ajax = browser_ajax(process, alice_s, "POST", "ajax-api/2.0/mlflow/experiments/search",
                        xsrf=xsrf, json={"max_results": 100})
    assert ajax.status_code == 200 and f"{alice}/curves" in ajax.text, ajax.text[:300]
    ajax = browser_ajax(process, alice_s, "GET", "ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                        xsrf=xsrf, params={"run_ids": rid, "metric_key": "loss", "max_results": 10})
    assert ajax.status_code == 200 and len(ajax.json()["metrics"]) == 3
    # a cookie without the page's XSRF token is no login (JupyterHub's rule for cookie-authenticated fetches)
    assert browser_ajax(process, alice_s, "POST", "ajax-api/2.0/mlflow/experiments/search",
                        json={"max_results": 100}).status_code in (302, 401, 403)

    # bob: nothing of alice's, by listing or by id
    assert not [n for n in experiments(process, bob_t) if n.startswith(alice)]
    assert call(process, bob_t, "GET", "api/2.0/mlflow/runs/get", params={"run_id": rid}).status_code == 403
    assert call(process, bob_t, "GET", "get-artifact",
                params={"path": "output.ipynb", "run_uuid": rid}).status_code == 403
    _, bob_xsrf = open_ui(process, bob_s)
    ajax = browser_ajax(process, bob_s, "POST", "ajax-api/2.0/mlflow/experiments/search", xsrf=bob_xsrf,
                        json={"max_results": 100})
    assert ajax.status_code == 200 and alice not in ajax.text


@pytest.mark.browser
@pytest.mark.hub
@pytest.mark.root
def test_the_mlflow_ui_in_chromium(hub):
    """MLflow's own UI through the hub login in a real Chromium: alice's experiment list and run page
    (the UI's fetches carry the XSRF token the service's page script adds), and bob's list without it.
    Screenshots: test-artifacts/mlflow/."""
    from playwright.sync_api import expect, sync_playwright

    from tests.hub.mlflowhub import PASSWORD, log_directly
    from tests.hub.test_usage_screens import ARGS, CHROMIUM, log_in
    from tests.prereqs import REPO, require

    require(os.path.exists(CHROMIUM), "needs Debian's chromium (apt-get install chromium)")
    shots = os.path.join(REPO, "test-artifacts", "mlflow")
    os.makedirs(shots, exist_ok=True)
    process, users = hub
    (alice, _, alice_t), (bob, _, _) = users["alice"], users["bob"]
    eid, rid = log_directly(process, alice_t, f"{alice}/ui-check")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for name in (alice, bob):
                page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
                refused, seen = [], []
                page.on("response", lambda r: refused.append(r.url) if "/services/mlflow/" in r.url
                        and r.status == 401 else None)  # the service did not know the caller
                page.on("response", lambda r: seen.append((r.status, r.request.method, r.url[-90:])))
                page.on("console", lambda m: seen.append(("console", m.type, m.text[:200])))
                log_in(page, process, name, PASSWORD)
                with page.expect_response(lambda r: "mlflow/experiments/search" in r.url, timeout=180_000) as listed:
                    page.goto(f"{service_url(process)}#/experiments")
                names = [e["name"] for e in listed.value.json().get("experiments", [])]  # what the list shows
                assert listed.value.status == 200 and (f"{alice}/ui-check" in names) == (name == alice), names
                if name == alice:
                    try:
                        expect(page.get_by_text(f"{alice}/ui-check").first).to_be_visible(timeout=120_000)
                    except AssertionError:
                        page.screenshot(path=os.path.join(shots, "failed.png"))
                        raise AssertionError(f"{refused}\n" + "\n".join(map(str, seen[-60:]))) from None
                    page.screenshot(path=os.path.join(shots, "experiments.png"))
                    page.goto(f"{service_url(process)}#/experiments/{eid}/runs/{rid}")
                    expect(page.get_by_text("acc").first).to_be_visible(timeout=120_000)
                    page.screenshot(path=os.path.join(shots, "run.png"))
                    assert not refused, refused  # every call of the UI was alice's (its XSRF token went along)
                else:
                    # the UI polls, so the network never idles: wait for the list's page to draw its answer
                    expect(page.get_by_role("heading", name="Experiments")).to_be_visible(timeout=120_000)
                    page.wait_for_timeout(5000)
                    assert not [n for n in names if n.startswith(alice)]
                    page.screenshot(path=os.path.join(shots, "bob-experiments.png"))
                    assert alice not in page.content()
        finally:
            browser.close()
