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
