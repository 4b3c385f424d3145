"""The panel's actions against their real back ends, through the handlers.

Publish: a run of the model's notebook trains a tiny Keras model (``deepvre.runs``), the handler
publishes it, the catalog shows it with its lineage. Preprocess: the ``images`` pipeline on a tiny
real image folder on a Dask LocalCluster. Serve: the real ``deepvre serve`` (DEEPaaS), reached
through jupyter-server-proxy at the URL the handler gives, then stopped.
"""

import json
import re
import time
import urllib.parse

import pytest
from traitlets.config import Config

from .conftest import publish_colours, write_photos
from .test_handlers import wait_for


@pytest.fixture
def jp_server_config():
    return Config({"ServerApp": {"jpserver_extensions": {"deepvre_jupyter": True, "jupyter_server_proxy": True}}})


@pytest.fixture
def own_market(tmp_path, colours_model, monkeypatch):
    """A fresh local catalog holding only the colours model (publishing here touches no other test)."""
    root = publish_colours(tmp_path / "market", colours_model)
    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(root))
    return root


def test_publish_a_trained_run_with_its_lineage(api, own_market, jp_root_dir):
    import keras

    import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)
    from deepvre.market.client import connect

    status, data = api("POST", "runs", body={"model": "colours", "parameters": {"epochs": 2}})
    assert status == 409 and data["owner"] == "ana", data  # ana's notebook: the user confirms first
    trust = {"owner": data["owner"], "sha256": data["sha256"]}
    status, run = api("POST", "runs", body={"model": "colours", "parameters": {"epochs": 2}, "trust": trust})
    assert status == 201, run
    status, data = api("POST", f"runs/{run['id']}/publish", body={"name": "colours-ft"})
    if run["state"] != "done":  # (it cannot be done yet: the kernel alone takes seconds)
        assert status == 400 and "only a finished run" in data["message"], data
    done = wait_for(api, run["id"], ("done", "failed"), timeout=300)
    assert done["state"] == "done", done
    assert (jp_root_dir / "runs" / run["id"] / "model.keras").exists()
    assert done["metrics"]["epochs"] == 2

    status, data = api("POST", f"runs/{run['id']}/publish", body={})
    assert status == 400 and "name" in data["message"]
    status, card = api("POST", f"runs/{run['id']}/publish", body={"name": "colours-ft", "visibility": "public"})
    assert status == 201, card
    assert (card["name"], card["version"]) == ("colours-ft", "1.0.0")
    assert card["lineage"] == {"name": "colours", "version": "1.0.0"}
    status, again = api("POST", f"runs/{run['id']}/publish", body={"name": "colours-ft"})
    assert status == 409, again

    # the catalog shows it, with lineage and the run's metrics; the model loads safely and predicts
    status, found = api("GET", "models", params={"q": "colours-ft"})
    assert status == 200 and [m["name"] for m in found["models"]] == ["colours-ft"]
    assert found["models"][0]["metrics"]["epochs"] == 2
    status, details = api("GET", "models/colours-ft")
    assert status == 200 and details["lineage"] == {"name": "colours", "version": "1.0.0"}
    # the document is the run's model (its classes), built by the one builder, not a copy of the base's
    published = connect().show("colours-ft", "1.0.0")["metadata"]
    assert published["deepvre"]["input"]["labels"] == ["crimson", "lime", "navy"]
    assert published["deepvre"]["training"] == {"notebook": "training.ipynb", "parameters": {"epochs": 2}}
    assert published["deepvre"]["environment"] == json.loads((jp_root_dir / "runs" / run["id"] / "environment.json").read_text())
    assert published["title"].endswith("(fine-tuned: colours-ft)") and "transfer-learning" in published["tags"]
    pulled = own_market / "pulled"
    connect().pull("colours-ft", "1.0.0", str(pulled))
    model = keras.saving.load_model(pulled / "model.keras", safe_mode=True)
    assert model.predict(keras.ops.zeros((1, 8, 8, 3)), verbose=0).shape == (1, 3)


@pytest.fixture
def image_folder(jp_root_dir):
    """Two classes of real photographs (crops of scikit-image's samples) and one corrupt file."""
    write_photos(jp_root_dir / "photos")
    return "photos"


def test_preprocess_images_on_a_local_cluster(api, image_folder, jp_root_dir, jp_base_url, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", jp_base_url)  # as inside a hub: dashboard via the proxy
    status, kinds = api("GET", "preprocess")
    assert status == 200 and "images" in kinds["kinds"]
    # this test server is on no Slurm node and in no pod: only a local cluster (or an address) is offered
    assert kinds["clusters"] == ["local"]
    status, data = api("POST", "preprocess", body={"kind": "nope", "input": image_folder})
    assert status == 400 and "unknown pipeline 'nope'" in data["message"]
    for cluster, says in (("slurm", "not a Slurm site"), ("kubernetes", "not run in a pod"), ("a b c", "must be local")):
        status, data = api("POST", "preprocess", body={"kind": "images", "input": image_folder, "cluster": cluster})
        assert status == 400 and says in data["message"], data

    status, job = api("POST", "preprocess", body={"kind": "images", "input": image_folder, "cluster": "local",
                                                  "params": {"size": 32}})
    assert status == 201, job
    assert (job["input"], job["output"]) == ("photos", "photos-preprocessed")
    deadline, seen = time.monotonic() + 180, []
    while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        status, job = api("GET", f"preprocess/{job['id']}")
        assert status == 200
        seen.append(job)
    assert job["state"] == "done", job
    running = [j for j in seen if j["state"] == "running"]
    assert running, [j["state"] for j in seen]
    # the dashboard through the server's proxy while the cluster lives, and gone with it
    assert re.fullmatch(re.escape(jp_base_url.rstrip("/")) + r"/proxy/\d+/status", running[0]["dashboard"]), running
    assert job["dashboard"] == ""
    assert job["progress"]["done"] == job["progress"]["total"] > 0 and job["elapsed"] > 0
    manifest = json.loads((jp_root_dir / "photos-preprocessed" / "manifest.json").read_text())
    assert manifest["bad_records"]["count"] == 1
    assert job["summary"]["bad_records"]["count"] == 1
    # counts per split, and the bad record with its error, as the job page shows them
    assert {split: s["n"] for split, s in job["splits"].items()} == {s: v["n"] for s, v in manifest["splits"].items()}
    assert sum(s["n"] for s in job["splits"].values()) == 10
    assert [b["record"].endswith("broken.jpg") for b in job["bad_records"]] == [True] and job["bad_records"][0]["error"]
    status, listing = api("GET", "preprocess")
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    status, data = api("GET", "preprocess/99")
    assert status == 404 and "99" in data["message"]


# A server URL as JupyterHub makes it for an e-mail user name (it keeps ``@`` unescaped).
# pytest-jupyter's default ``/a%40b/`` cannot carry a service's own absolute links: the proxy
# quotes the ``%`` again on the way to the service (``/a%2540b/``), and aiohttp keeps ``%25``.
@pytest.mark.parametrize("jp_base_url", ["/user/ana@lab.org/"])
def test_serve_through_the_proxy_then_stop(api, market_dir, jp_fetch, jp_asyncio_loop, jp_base_url):
    """DEEPaaS serves under ``deepvre/services/ID`` (jupyter-server-proxy to its Unix socket): its
    API, its Swagger page and the spec that page loads all answer through it, with the user's token."""
    from tornado.httpclient import HTTPClientError

    status, svc = api("POST", "serve", body={"model": "colours", "version": "1.0.0"})
    assert status == 201 and svc["state"] == "ready", svc
    prefix = jp_base_url.rstrip("/") + "/deepvre/services/"
    match = re.fullmatch(re.escape(prefix) + r"(\d+)/v2/", svc["url"])
    assert match, svc
    assert svc["swagger"] == f"{prefix}{match.group(1)}/api"

    def get(url):
        """GET an absolute path of this server (jp_fetch adds the base URL and the token, and quotes)."""
        assert url.startswith(jp_base_url), url
        return jp_asyncio_loop.run_until_complete(jp_fetch(urllib.parse.unquote(url[len(jp_base_url):])))

    def models():
        try:
            return json.loads(get(svc["url"] + "models/").body)
        except (HTTPClientError, ConnectionError, OSError):
            return None

    deadline = time.monotonic() + 120
    while (listing := models()) is None:
        [current] = api("GET", "serve")[1]["services"]
        assert current["state"] == "ready", current["error"]
        assert time.monotonic() < deadline, "DEEPaaS did not answer through the proxy within 120 s"
        time.sleep(0.5)
    assert [m["name"] for m in listing["models"]] == ["colours"]
    page = get(svc["swagger"])
    assert page.code == 200 and b"swagger" in page.body.lower()
    # the page's own requests (the spec, its scripts) name URLs that work behind the proxy
    spec_url = re.search(rb'url: *"([^"]+)"', page.body).group(1).decode()
    assert spec_url == urllib.parse.unquote(svc["swagger"].removesuffix("/api")) + "/swagger.json"
    spec = json.loads(get(spec_url).body)
    assert any(p.endswith("/v2/models/colours/predict/") for p in spec["paths"]), sorted(spec["paths"])
    scripts = re.findall(rb'src="([^"]+\.js)"', page.body)
    assert scripts and all(get(s.decode()).code == 200 for s in scripts), scripts

    status, stopped = api("DELETE", f"serve/{svc['ref']}")
    assert status == 200 and stopped["state"] == "stopped", stopped
    assert models() is None
    status, data = api("DELETE", "serve/nothing:1")
    assert status == 404 and "nothing:1" in data["message"]
    status, data = api("POST", "serve", body={"model": "nobody"})
    assert status == 404 and "nobody" in data["message"]


def test_serve_command_is_what_deepvre_serve_accepts():
    from deepvre.cli.serve import serve
    from deepvre_jupyter.jobs import serve_command

    command = serve_command("colours", "1.0.0", "/run/s/deepaas.sock", "/user/ana/deepvre/services/1",
                            "/run/s/uploads", deepvre="deepvre")
    ctx = serve.make_context("serve", command[2:])
    assert (ctx.params["model"], ctx.params["socket_path"]) == ("colours:1.0.0", "/run/s/deepaas.sock")
    assert ctx.params["base_path"] == "/user/ana/deepvre/services/1" and ctx.params["uploads"] == "/run/s/uploads"
    assert ctx.params["exit_with_parent"]  # a panel's service ends with its server
    assert "--base-path" not in serve_command("colours", None, "/run/s/deepaas.sock", deepvre="deepvre")
