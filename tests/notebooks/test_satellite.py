"""The Earth-observation notebook in smoke mode, on NASA's real day and night images."""

import hashlib
import json

import numpy as np
import pytest

import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)
from deepvre.training import shipped

from .smoke import png_outputs, pull_model, require_files, run_smoke


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    require_files(shipped.earth_scenes, "Debian xplanet-images (earth.jpg, night.jpg)")
    return run_smoke(tmp_path_factory, "satellite")


def test_metrics_finite_with_both_comparisons(smoke_run):
    metrics = smoke_run.metrics()
    assert metrics["data"]["classes"] == 3
    for key, first, second in (("comparison", "transfer", "scratch"),
                               ("water_comparison", "water_probe_transfer", "water_probe_scratch")):
        record = metrics[key]
        assert record["metric"] == "balanced_accuracy"
        assert record["transfer"] == metrics[first]["balanced_accuracy"]
        assert record["scratch"] == metrics[second]["balanced_accuracy"]
        assert 0 <= record["transfer"] <= 1 and 0 <= record["scratch"] <= 1
    assert png_outputs(smoke_run.notebook) >= 5


def test_tiles_come_from_the_rasters_pipeline(smoke_run):
    _, out, _ = smoke_run
    manifest = json.loads((out / "tiles" / "manifest.json").read_text())
    assert manifest["kind"] == "rasters"
    assert manifest["params"]["labels"].endswith("night.jpg")


def test_model_published_with_lineage_and_loads_safely(smoke_run):
    tmp, out, _ = smoke_run
    entry = smoke_run.published("mobilenet-v2-imagenet")
    section = entry["metadata"]["deepvre"]
    assert section["data"]["manifest.json"] == hashlib.sha256((out / "tiles" / "manifest.json").read_bytes()).hexdigest()
    assert section["input"]["labels"] == ["dark", "dim", "bright"]

    model = pull_model(smoke_run.market(), entry["name"], entry["version"], tmp / "pulled")
    probs = model.predict(np.zeros((1, *section["input"]["shape"]), "float32"), verbose=0)
    assert probs.shape == (1, 3)
