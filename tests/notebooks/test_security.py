"""The security (MODS) notebook, run for real by papermill in smoke mode; assertions on what it wrote."""

import json

import pytest

from .smoke import fine_tuned, pull_model, run_smoke


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_smoke(tmp_path_factory, "security")


def test_metrics_are_finite_and_compare_transfer_with_scratch(run):
    metrics = run.metrics()  # smoke, every value a finite number
    for key in ("transfer", "scratch"):
        assert {"val_mse", "threshold"} <= set(metrics[key])
    assert metrics["comparison"]["transfer"] == metrics["transfer"]["val_mse"]


def test_detection_report_per_attack_type_against_the_labels(run):
    from deepvre.science.traffic import ATTACK_TYPES

    detection = json.loads((run.out / "detection.json").read_text())
    labels = json.loads((run.out / "logs" / "B-attacks" / "labels.json").read_text())
    assert sorted(a["type"] for a in labels["attacks"]) == sorted(ATTACK_TYPES)
    for model in ("transfer", "scratch"):
        report = detection[model]
        assert set(report) == set(ATTACK_TYPES) | {"overall"}
        for kind in ATTACK_TYPES:
            row = report[kind]
            assert row["windows"] >= 1 and 0 <= row["recall"] <= 1 and 0 <= row["precision"] <= 1
            assert row["delay_s"] == -1 or row["delay_s"] > 0
        assert report["overall"]["flagged"] >= report["overall"]["false_alarms"]


def test_model_published_with_lineage_and_loads_in_safe_mode(run, tmp_path):
    import numpy as np

    market = run.market()
    entry = fine_tuned(market, "mods-lstm-centre-b", "mods-lstm-centre-a")
    assert entry["metadata"]["deepvre"]["training"]["notebook"] == "security.ipynb"
    model = pull_model(market, "mods-lstm-centre-b", entry["version"], tmp_path / "pulled")
    spec = json.loads((tmp_path / "pulled" / "preprocessing.json").read_text())
    prediction = model.predict(np.zeros((1, 12, len(spec["features"])), "float32"), verbose=0)
    assert prediction.shape == (1, len(spec["features"])) and np.isfinite(prediction).all()
    assert market.show("mods-lstm-centre-a", "1.0.0")["use_case"] == "security"
