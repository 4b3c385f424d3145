"""The Earth-observation notebook in smoke mode, on NASA's real day and night images."""

import hashlib
import json

import numpy as np
import pytest

import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)
from deepvre.training import report, shipped

from .smoke import (
    execute_smoke,
    local_market,
    notebook_path,
    png_outputs,
    require_files,
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    require_files(shipped.earth_scenes, "Debian xplanet-images (earth.jpg, night.jpg)")
    tmp = tmp_path_factory.mktemp("satellite")
    execute_smoke(notebook_path("satellite", "satellite"), tmp)
    return tmp, tmp / "out", json.loads((tmp / "satellite.ipynb").read_text())


def test_metrics_finite_with_both_comparisons(smoke_run):
    _, out, notebook = smoke_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert report.problems(metrics) == []
    assert metrics["mode"] == "smoke" and metrics["data"]["classes"] == 3
    for key, first, second in (("comparison", "transfer", "scratch"),
                               ("water_comparison", "water_probe_transfer", "water_probe_scratch")):
        record = metrics[key]
        assert record["metric"] == "balanced_accuracy"
        assert record["transfer"] == metrics[first]["balanced_accuracy"]
        assert record["scratch"] == metrics[second]["balanced_accuracy"]
        assert 0 <= record["transfer"] <= 1 and 0 <= record["scratch"] <= 1
    assert png_outputs(notebook) >= 5


def test_tiles_come_from_the_rasters_pipeline(smoke_run):
    _, out, _ = smoke_run
    manifest = json.loads((out / "tiles" / "manifest.json").read_text())
    assert manifest["kind"] == "rasters"
    assert manifest["params"]["labels"].endswith("night.jpg")


def test_model_published_with_lineage_and_loads_safely(smoke_run):
    tmp, out, _ = smoke_run
    published = json.loads((out / "published.json").read_text())
    market = local_market(tmp)
    section = market.show(published["name"], published["version"])["metadata"]["deepvre"]
    assert section["base_model"] == {"name": "mobilenet-v2-imagenet", "version": "1.0.0"}
    assert section["data"]["manifest.json"] == hashlib.sha256((out / "tiles" / "manifest.json").read_bytes()).hexdigest()
    assert section["input"]["labels"] == ["dark", "dim", "bright"]

    from deepvre.market import modelfile

    market.pull(published["name"], published["version"], tmp / "pulled")
    model = modelfile.load(tmp / "pulled" / "model.keras")
    probs = model.predict(np.zeros((1, *section["input"]["shape"]), "float32"), verbose=0)
    assert probs.shape == (1, 3)
