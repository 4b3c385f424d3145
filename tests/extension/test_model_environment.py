"""The model page's environment section: ``GET /deepvre/api/models/NAME/environment`` on a real
jupyter server with the extension, over a local catalog."""

import copy

from deepvre.runs import platform

from .conftest import publish_colours


def test_recorded_environment_differences_and_verifications(api, colours_model, tmp_path, monkeypatch):
    from deepvre.market.client import connect

    root = publish_colours(tmp_path, colours_model)  # colours:1.0.0, published with no environment
    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(root))
    monkeypatch.delenv("DEEPVRE_MARKET_URL", raising=False)
    code, old = api("GET", "models/colours/environment", params={"version": "1.0.0"})
    assert code == 200, old
    assert old["recorded"] is None and old["differences"] is None
    assert old["verifications"] == [] and old["badge"] == "unverified"
    assert old["current"]["packages"]["jupyter-server"]  # this server's own

    folder, doc = colours_model
    recorded = platform.capture()
    recorded["packages"]["numpy"] = "0.0.1"
    recorded["packages"]["only-there"] = "1.0"
    recorded["python"]["version"] = "3.0.0"
    doc = copy.deepcopy(doc)
    doc["deepvre"]["version"] = "1.0.1"
    doc["deepvre"]["environment"] = recorded
    market = connect()
    market.publish(doc, {p.name: p for p in folder.iterdir()})
    market.add_verification("colours", "1.0.1", {"result": "drifted", "reason": "accuracy off by 0.2",
                                                  "metrics": {}, "environment": platform.capture()})
    code, new = api("GET", "models/colours/environment", params={"version": "1.0.1"})
    assert code == 200, new
    assert new["recorded"]["packages"]["numpy"] == "0.0.1"
    differences = new["differences"]
    assert differences["python"][0] == "3.0.0"
    assert differences["packages"]["changed"]["numpy"][0] == "0.0.1"
    assert differences["packages"]["removed"] == {"only-there": "1.0"}
    assert new["badge"] == "drifted" and new["verifications"][0]["valid"]
    assert new["verifications"][0]["reason"] == "accuracy off by 0.2"
    code, missing = api("GET", "models/no-such-model/environment")
    assert code == 404, missing


def test_verify_from_the_page_reruns_and_records(api, colours_model, tmp_path, monkeypatch):
    """POST models/NAME/verify: another account's notebook needs the trust confirmation first; then
    the server re-runs the lineage and the signed record shows in models/NAME/environment."""
    import time

    from deepvre.market.catalog import Catalog
    from tests.market.conftest import make_document

    from .conftest import make_notebook

    notebook = tmp_path / "training.ipynb"  # writes metrics.json into its run folder
    make_notebook(notebook, parameters="scale = 2\n",
                  body="import json\njson.dump({'accuracy': 0.25 * scale}, open('metrics.json', 'w'))")
    doc = make_document("tiny-verify", visibility="public")
    doc["deepvre"]["metrics"] = {"accuracy": 0.5}
    doc["deepvre"]["training"] = {"notebook": "training.ipynb", "parameters": {}}
    files = {p.name: p for p in colours_model[0].iterdir()} | {"training.ipynb": notebook}
    root = tmp_path / "market"
    Catalog(database_url=f"sqlite:///{root / 'catalog.sqlite'}", store_url=str(root / "artifacts")).publish(
        doc, files, "someone-else")
    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(root))
    monkeypatch.delenv("DEEPVRE_MARKET_URL", raising=False)

    code, asked = api("POST", "models/tiny-verify/verify", {"version": "1.0.0"})
    assert code == 409 and asked["trust_required"] and asked["owner"] == "someone-else", asked
    code, started = api("POST", "models/tiny-verify/verify",
                        {"version": "1.0.0", "trust": {"owner": asked["owner"], "sha256": asked["sha256"]}})
    assert code == 202 and started["verifying"]["state"] == "running", started
    deadline = time.monotonic() + 300
    while True:
        code, view = api("GET", "models/tiny-verify/environment", params={"version": "1.0.0"})
        if view["verifying"]["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert view["verifying"]["state"] == "done", view["verifying"]
    assert view["verifying"]["result"] == "verified" and view["badge"] == "verified"
    (record,) = view["verifications"]
    assert record["valid"] and record["metrics"]["accuracy"]["reproduced"] == 0.5
    assert "declares no tolerance" in record["reason"]
