"""The security (MODS) notebook, run for real by papermill in smoke mode; assertions on what it wrote."""

import json

import numpy as np
import pytest

from .smoke import fine_tuned, png_outputs, pull_model, run_smoke, verify_published

ARMS = ["LSTM fine-tuned (A→B)", "LSTM from scratch", "static threshold", "EWMA", "seasonal naive (1 day)"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_smoke(tmp_path_factory, "security")


@pytest.fixture(scope="module")
def metrics(run):
    return run.metrics()  # smoke, every number finite (the results block's too)


def test_results_block_compares_every_arm_over_seeds(metrics):
    results = metrics["results"]
    assert results["metric"].startswith("test ROC-AUC") and results["higher_is_better"] is True
    assert [a["label"] for a in results["arms"]] == ARMS
    assert results["transfer"] == ARMS[0] and results["scratch"] == ARMS[1]
    for arm in results["arms"]:
        assert arm["n"] == 2 and len(arm["per_seed"]) == 2 and all(0 <= v <= 1 for v in arm["per_seed"])
        assert arm["low"] <= arm["mean"] <= arm["high"]
    claim = results["claim"]
    assert isinstance(claim["helps"], bool) and claim["best_baseline"] in ARMS[2:]
    assert claim["sentence"].startswith("Transfer helps" if claim["helps"] else "Transfer does not demonstrably help")
    assert metrics["claim"]["transfer_helps"] == int(claim["helps"])
    for key in ("transfer", "scratch"):
        assert {"roc_auc", "average_precision", "recall_at_far", "val_mse", "threshold", "learning_rate"} <= set(metrics[key])
        assert metrics[key]["roc_auc"] == pytest.approx(results["arms"][ARMS.index(ARMS[0 if key == "transfer" else 1])]["mean"])
    assert set(metrics["baselines"]) == {"static", "ewma", "seasonal"}
    # the same budget: the same optimizer steps for both arms
    assert metrics["transfer"]["optimizer_steps"] == metrics["scratch"]["optimizer_steps"] > 0
    assert metrics["comparison"]["transfer"] == metrics["transfer"]["roc_auc"]


def test_split_by_whole_days(metrics):
    data = metrics["data"]
    assert data["train_days"] + data["val_days"] + data["test_days"] == data["days_b"] == 3
    assert 0 < data["attack_windows"] < data["windows_b"]


def test_detection_per_attack_type_and_grade_against_the_labels(run):
    from deepvre.science.traffic import ATTACK_TYPES, GRADES

    detection = json.loads((run.out / "detection.json").read_text())
    labels = json.loads((run.out / "logs" / "B" / "labels.json").read_text())
    assert {a["type"] for a in labels["attacks"]} <= set(ATTACK_TYPES)
    assert {a["grade"] for a in labels["attacks"]} <= set(GRADES)
    assert set(detection["by_type"]) == {"transfer", "scratch", "static", "ewma", "seasonal"}
    for report in detection["by_type"].values():
        for kind, row in report.items():
            assert kind in set(ATTACK_TYPES) | {"overall"}
            assert 0 <= row["recall"] <= 1 and 0 <= row["precision"] <= 1
        assert report["overall"]["flagged"] >= report["overall"]["false_alarms"]
    assert {e["arm"] for e in detection["events"]} == set(ARMS)


def test_curves_are_shown_and_saved(run):
    assert png_outputs(run.notebook) >= 4
    for name in ("roc-pr", "features", "curves-transfer", "curves-scratch"):
        assert (run.out / f"{name}.png").stat().st_size > 1000


def test_base_trained_in_the_run_and_model_published_with_lineage(run, tmp_path):
    market = run.market()
    published = json.loads((run.out / "published.json").read_text())
    entry = fine_tuned(market, "mods-lstm-centre-b", "mods-lstm-centre-a", published["version"])
    assert entry["metadata"]["deepvre"]["training"]["notebook"] == "security.ipynb"
    assert published["base"] == "1.0.0" and market.show("mods-lstm-centre-a", "1.0.0")["use_case"] == "security"
    model = pull_model(market, "mods-lstm-centre-b", entry["version"], tmp_path / "pulled")
    spec = json.loads((tmp_path / "pulled" / "preprocessing.json").read_text())
    prediction = model.predict(np.zeros((1, 12, len(spec["features"])), "float32"), verbose=0)
    assert prediction.shape == (1, len(spec["features"])) and np.isfinite(prediction).all()


def test_the_published_version_verifies(tmp_path, run):
    """``deepvre market verify`` re-runs this smoke run's lineage and finds the declared metrics
    within their tolerance (issue 18)."""
    verify_published(run, tmp_path / "runs")
