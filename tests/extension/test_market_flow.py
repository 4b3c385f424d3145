"""Models from a real local catalog through the handlers: search, details, parameters, fine-tune."""

import nbformat

from .conftest import XSS_DESCRIPTION


def test_search_and_filters(api, market_dir):
    status, data = api("GET", "models", params={"q": "colour"})
    assert status == 200, data
    [card] = data["models"]
    assert (card["name"], card["version"], card["owner"], card["use_case"]) == ("colours", "1.0.0", "ana", "base")
    assert card["trainable"] and "accuracy" in card["metrics"] and "colours" in card["tags"]
    assert api("GET", "models", params={"q": "colour", "trainable": "true"})[1]["models"][0]["name"] == "colours"
    assert api("GET", "models", params={"use_case": "satellite"})[1]["models"] == []
    assert api("GET", "models", params={"q": "nothingmatchesthis"})[1]["models"] == []
    # the filters' choices come with every answer: the catalog's facets, not free text
    facets = data["facets"]
    assert facets["use_case"] == {"base": 1} and facets["owner"] == {"ana": 1} and "colours" in facets["tags"]


def test_an_empty_catalog_says_whether_a_base_model_is_coming(api, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(tmp_path / "empty-market"))
    status, data = api("GET", "models")
    assert status == 200 and data["models"] == [] and not any(data["facets"].values())
    assert data["seed"]["state"] == "off"  # a local catalog seeds nothing: the panel says how to fill it


def test_details_carry_the_raw_description_for_safe_rendering(api, market_dir):
    status, data = api("GET", "models/colours")
    assert status == 200
    assert data["description"] == XSS_DESCRIPTION  # rendered by the client's sanitizer, not here
    assert [v["version"] for v in data["versions"]] == ["1.0.0"]
    status, data = api("GET", "models/nobody")
    assert status == 404 and "nobody" in data["message"]


def test_fine_tune_writes_a_parameterized_copy_and_never_overwrites(api, market_dir, jp_root_dir):
    status, data = api("GET", "models/colours/parameters")
    assert status == 200
    assert {p["name"]: p["value"] for p in data["parameters"]} == {
        "epochs": 1, "learning_rate": 0.01, "label": "colours"}
    assert data["path"] == "fine-tune/colours-training.ipynb"  # the form's default (a free name)
    status, first = api("POST", "models/colours/finetune", body={"parameters": {"epochs": 4}})
    assert status == 201 and first["path"] == data["path"], first
    assert api("GET", "models/colours/parameters")[1]["path"] == "fine-tune/colours-training-2.ipynb"
    nb = nbformat.read(str(jp_root_dir / first["path"]), as_version=4)
    injected = [c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "epochs = 4" in injected[0]
    assert nb.metadata["deepvre"]["source"]["model"] == "colours"
    status, second = api("POST", "models/colours/finetune", body={"parameters": {}})
    assert status == 201 and second["path"] != first["path"]
    status, data = api("POST", "models/colours/finetune", body={"path": first["path"]})
    assert status == 409 and "already exists" in data["message"]
    status, chosen = api("POST", "models/colours/finetune", body={"path": "mine/tuned.ipynb"})
    assert status == 201 and chosen["path"] == "mine/tuned.ipynb" and (jp_root_dir / "mine/tuned.ipynb").exists()
    status, data = api("POST", "models/colours/finetune", body={"path": "../escape.ipynb"})
    assert status == 400 and "outside the workspace" in data["message"]
