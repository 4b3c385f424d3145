import json
import math

import numpy as np
import pytest

from deepvre.training import report


def test_write_refuses_nan_and_names_the_key(tmp_path):
    with pytest.raises(ValueError) as err:
        report.write_metrics(tmp_path, {"transfer": {"accuracy": float("nan"), "loss": 0.1}, "scratch": {"loss": "x"}})
    assert "transfer.accuracy" in str(err.value) and "scratch.loss" in str(err.value)
    assert not (tmp_path / "metrics.json").exists()


def test_write_and_read_numpy_values(tmp_path):
    metrics = {"transfer": {"accuracy": np.float32(0.75), "samples": np.int64(10)}, "mode": "smoke"}
    path = report.write_metrics(tmp_path, metrics)
    with open(path) as fh:
        data = json.load(fh)
    assert data == report.read_metrics(tmp_path)
    assert data["transfer"]["accuracy"] == pytest.approx(0.75)
    assert all(math.isfinite(v) for v in report.flatten(data).values() if not isinstance(v, str))


def test_compare_and_table():
    rec = report.compare({"rmse": 1.0}, {"rmse": 1.5}, "rmse", higher_is_better=False)
    assert rec == {"metric": "rmse", "transfer": 1.0, "scratch": 1.5, "gain": 0.5}
    table = report.metrics_table({"transfer": {"accuracy": 0.9}, "scratch": {"accuracy": 0.6}, "seconds": 3.0})
    assert table.loc["transfer", "accuracy"] == 0.9 and table.loc["run", "seconds"] == 3.0


def test_balanced_accuracy_ignores_imbalance():
    y_true = [0] * 8 + [1] * 2
    assert report.balanced_accuracy(y_true, [0] * 10, 2) == 0.5  # plain accuracy would be 0.8
    assert report.balanced_accuracy([0, 1, 2], [0, 1, 1], 3) == pytest.approx(2 / 3)
