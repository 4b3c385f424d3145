"""The comparison and input checks of ``deepvre market verify`` (deepvre.runs.reproduce)."""

import json

from deepvre.runs import reproduce


def test_declared_tolerances_compare_only_those_metrics():
    published = {"transfer.accuracy": 0.90, "transfer.train_seconds": 12.0, "scratch.accuracy": 0.5, "mode": "smoke"}
    again = {"transfer": {"accuracy": 0.93, "train_seconds": 40.0}, "scratch": {"accuracy": 0.2},
             "results": {"arms": []}}
    result, reason, table = reproduce.compare(published, again, {"transfer.accuracy": 0.05})
    assert result == "verified" and list(table) == ["transfer.accuracy"]
    assert table["transfer.accuracy"]["difference"] == 0.93 - 0.90
    result, reason, table = reproduce.compare(published, again, {"transfer.accuracy": 0.01, "scratch.accuracy": 0.5})
    assert result == "drifted" and reason.startswith("transfer.accuracy: 0.93 against 0.9 published, off by +0.03")
    assert "scratch" not in reason and "tolerance 0.01" in reason


def test_undeclared_tolerance_is_stated_and_strict_but_skips_timings():
    published = {"accuracy": 0.9, "train_seconds": 3.0}
    result, reason, table = reproduce.compare(published, {"accuracy": 0.9, "train_seconds": 9.0})
    assert result == "verified" and list(table) == ["accuracy"]
    assert "declares no tolerance" in reason and "1e-06" in reason
    result, reason, _ = reproduce.compare(published, {"accuracy": 0.9 + 1e-4})
    assert result == "drifted" and "declares no tolerance" in reason


def test_a_metric_the_rerun_lacks_is_drift_and_one_not_published_is_not_compared():
    result, reason, table = reproduce.compare({"a": 1.0}, {}, {"a": 0.1, "b": 0.1})
    assert result == "drifted" and reason == "a: the re-run did not report it" and list(table) == ["a"]
    assert table["a"] == {"published": 1.0, "reproduced": None, "difference": None, "tolerance": 0.1}
    result, reason, table = reproduce.compare({"val_mse": 0.5}, {"val_mse": 0.5}, {"transfer.roc_auc": 0.05})
    assert result == "verified" and list(table) == ["val_mse"] and table["val_mse"]["tolerance"] == 1e-6
    assert "tolerances name none of this version's metrics" in reason


def test_changed_and_missing_inputs_are_named(tmp_path):
    from deepvre.checksums import file_sha256

    kept, changed = tmp_path / "kept.png", tmp_path / "changed.png"
    kept.write_bytes(b"same")
    changed.write_bytes(b"before")
    inputs = {str(kept): file_sha256(kept), str(changed): file_sha256(changed), str(tmp_path / "gone.png"): "0" * 64}
    changed.write_bytes(b"after")
    assert reproduce.check_inputs(inputs) == [(str(changed), "changed"), (str(tmp_path / "gone.png"), "missing")]
    assert reproduce.check_inputs({str(kept): file_sha256(kept)}) == []


def test_declared_tolerance_reads_the_notebook_metadata():
    assert reproduce.declared_tolerance({"metadata": {}}) is None
    nb = {"metadata": {"deepvre": {"verify": {"tolerance": {"transfer.accuracy": 0.1}}}}}
    assert reproduce.declared_tolerance(nb) == {"transfer.accuracy": 0.1}


def test_the_metrics_folder_stays_inside_the_rerun(tmp_path, monkeypatch):
    """A lineage whose ``training.output`` leaves the run's folder reads no file of the verifier's."""
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import LocalMarket
    from deepvre.training.documents import model_document

    notebook = tmp_path / "train.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                               "source": "import json; json.dump({'a': 1}, open('metrics.json', 'w'))"}],
                                    "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                                "display_name": "Python 3"}},
                                    "nbformat": 4, "nbformat_minor": 5}))
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "metrics.json").write_text('{"a": 42}')
    doc = model_document("escape-test", "1.0.0", "biology", "E", "Escapes.", [1], "regression", notebook="train.ipynb",
                         parameters={}, metrics={"a": 1})
    doc["deepvre"]["training"]["output"] = str(secret)
    model = tmp_path / "model.keras"
    import keras

    keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]).save(model)
    market = LocalMarket(Catalog(database_url=f"sqlite:///{tmp_path / 'c.sqlite'}", store_url=str(tmp_path / "store")))
    market.publish(doc, {"model.keras": model, "train.ipynb": notebook})
    outcome = reproduce.reproduce(market, "escape-test", "1.0.0", runs_dir=tmp_path / "runs")
    assert outcome["result"] == "could not run" and "leaves the run's folder" in outcome["reason"], outcome["reason"]
    assert outcome["metrics"] == {}
