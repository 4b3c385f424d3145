"""The REST handlers in a real jupyter_server: authentication, xsrf, paths, parameters, errors."""

import json
import os
import time

import nbformat
import pytest
from tornado.httpclient import HTTPClientError

from .conftest import make_notebook


@pytest.fixture
def nb(jp_root_dir):
    return make_notebook(jp_root_dir / "work" / "train.ipynb")


def test_extension_is_loaded(jp_serverapp):
    assert "deepvre_jupyter" in jp_serverapp.extension_manager.extensions
    assert jp_serverapp.extension_manager.extensions["deepvre_jupyter"].enabled


def test_requests_without_credentials_are_refused(api):
    status, _ = api("GET", "notebooks/parameters", params={"path": "x"}, headers={"Authorization": ""})
    assert status == 403
    status, _ = api("POST", "runs", body={"path": "x"}, headers={"Authorization": ""})
    assert status == 403


def test_cookie_session_needs_xsrf_for_posts(jp_fetch, jp_asyncio_loop, jp_serverapp, nb):
    """A browser session (cookie, no token): GET works, POST without _xsrf is refused."""
    run = jp_asyncio_loop.run_until_complete
    token = jp_serverapp.identity_provider.token
    resp = run(jp_fetch("deepvre", "api", "notebooks", "parameters",
                        params={"path": "work/train.ipynb", "token": token}, headers={"Authorization": ""}))
    cookies = "; ".join(c.split(";")[0] for c in resp.headers.get_list("Set-Cookie"))
    assert "username-" in cookies
    plain = {"Authorization": "", "Cookie": cookies}
    resp = run(jp_fetch("deepvre", "api", "notebooks", "parameters", params={"path": "work/train.ipynb"},
                        headers=plain))
    assert resp.code == 200
    with pytest.raises(HTTPClientError) as err:
        run(jp_fetch("deepvre", "api", "runs", method="POST", body="{}", headers=plain))
    assert err.value.code == 403 and b"_xsrf" in err.value.response.body
    # the same POST with the xsrf cookie echoed in the header passes xsrf (then fails on its body: 400)
    xsrf = "abc123"
    headers = {"Authorization": "", "Cookie": f"{cookies}; _xsrf={xsrf}", "X-XSRFToken": xsrf}
    with pytest.raises(HTTPClientError) as err:
        run(jp_fetch("deepvre", "api", "runs", method="POST", body="{}", headers=headers))
    assert err.value.code == 400 and "no path given" in json.loads(err.value.response.body)["message"]


def test_notebook_parameters_form(api, nb):
    status, data = api("GET", "notebooks/parameters", params={"path": "work/train.ipynb"})
    assert status == 200
    assert {p["name"]: p["value"] for p in data["parameters"]} == {
        "epochs": 2, "learning_rate": 0.01, "label": "cells", "augment": False}


@pytest.mark.parametrize("bad", ["../outside.ipynb", "work/../../outside.ipynb", "/etc/passwd", "link/x.ipynb"])
def test_paths_that_escape_the_root_are_refused(api, jp_root_dir, nb, bad):
    outside = jp_root_dir.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    make_notebook(outside / "x.ipynb")
    make_notebook(jp_root_dir.parent / "outside.ipynb")
    if not (jp_root_dir / "link").exists():
        os.symlink(outside, jp_root_dir / "link")
    for method, path, kwargs in (
        ("GET", "notebooks/parameters", {"params": {"path": bad}}),
        ("POST", "runs", {"body": {"path": bad}}),
        ("POST", "preprocess", {"body": {"kind": "images", "input": bad, "output": "out"}}),
        ("POST", "preprocess", {"body": {"kind": "images", "input": "work", "output": bad}}),
    ):
        status, data = api(method, path, **kwargs)
        assert status == 400, (method, path, data)
        assert "workspace" in data["message"], data


def test_missing_notebook_is_named(api):
    status, data = api("GET", "notebooks/parameters", params={"path": "nope.ipynb"})
    assert status == 400 and "nope.ipynb" in data["message"]


def test_bad_json_body_is_a_clear_error(api, jp_fetch, jp_asyncio_loop):
    with pytest.raises(HTTPClientError) as err:
        jp_asyncio_loop.run_until_complete(jp_fetch("deepvre", "api", "runs", method="POST", body="{not json"))
    assert err.value.code == 400 and b"not JSON" in err.value.response.body


def test_unknown_parameter_is_refused_before_running(api, nb):
    status, data = api("POST", "runs", body={"path": "work/train.ipynb", "parameters": {"epochz": 3}})
    assert status == 400 and "epochz" in data["message"]
    status, data = api("POST", "runs", body={"path": "work/train.ipynb", "parameters": {"epochs": "many"}})
    assert status == 400 and "'epochs' must be an integer, not 'many'" in data["message"]


def test_run_ids_cannot_name_paths(api):
    status, _ = api("GET", "runs/..")
    assert status in (400, 404)
    status, _ = api("GET", "runs/..%2Fx")
    assert status in (400, 404)


def wait_for(api, run_id, states, timeout=180):
    """Poll the run's status until it is in ``states`` (generous timeout: kernels start slowly here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, data = api("GET", f"runs/{run_id}")
        assert status == 200, data
        if data["state"] in states:
            return data
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still {data['state']} after {timeout} s")


def test_batch_run_of_a_workspace_notebook(api, jp_root_dir, nb):
    status, run = api("POST", "runs", body={"path": "work/train.ipynb", "parameters": {"epochs": 7}})
    assert status == 201, run
    assert run["state"] in ("queued", "running", "done") and run["notebook"] == "work/train.ipynb"
    done = wait_for(api, run["id"], ("done", "failed"))
    assert done["state"] == "done", done
    assert done["output"] == f"runs/{run['id']}/output.ipynb"
    out = nbformat.read(str(jp_root_dir / done["output"]), as_version=4)
    injected = [c.source for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "epochs = 7" in injected[0]
    assert "cells 0.07" in "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    status, listing = api("GET", "runs")
    assert status == 200 and run["id"] in [r["id"] for r in listing["runs"]]


def test_cancel_a_running_batch_run(api, jp_root_dir):
    make_notebook(jp_root_dir / "slow.ipynb", parameters="seconds = 300\n",
                  body="import time\nfor _ in range(seconds):\n    time.sleep(1)")
    status, run = api("POST", "runs", body={"path": "slow.ipynb"})
    assert status == 201, run
    wait_for(api, run["id"], ("running",))
    status, cancelled = api("DELETE", f"runs/{run['id']}")
    assert status == 200 and cancelled["state"] == "cancelled", cancelled
    status, data = api("GET", "runs/no-such-run")
    assert status == 404 and "no-such-run" in data["message"]
