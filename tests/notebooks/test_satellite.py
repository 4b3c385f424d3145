"""The Earth-observation notebook in smoke mode, on NASA's real day and night images."""

import hashlib
import json

import numpy as np
import pytest

import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)
from deepvre.training import shipped

from .smoke import png_outputs, pull_model, require_files, run_smoke, verify_published


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    require_files(shipped.earth_scenes, "Debian xplanet-images (earth.jpg, night.jpg)")
    return run_smoke(tmp_path_factory, "satellite")


def test_metrics_are_finite_and_compare_with_scratch(smoke_run):
    metrics = smoke_run.metrics()
    assert metrics["data"]["classes"] == 3
    record = metrics["comparison"]
    assert record["metric"] == "balanced_accuracy"
    for run in ("transfer", "scratch"):
        assert record[run] == metrics[run]["balanced_accuracy"]
        assert 0 <= metrics[run]["balanced_accuracy"] <= 1 and metrics[run]["epochs_run"] == 1
        assert metrics[run]["seeds"] == 2
    # the same optimizer steps for both arms; the base is partly frozen
    assert metrics["transfer"]["optimizer_steps"] == metrics["scratch"]["optimizer_steps"]
    assert metrics["transfer"]["trainable_weights"] < metrics["scratch"]["trainable_weights"]
    assert "water_probe_transfer" not in metrics  # the land/water probe's label was a colour rule of the input


def test_results_block_for_the_page_repeats_the_arms_per_seed(smoke_run):
    from deepvre.science import results_page

    metrics = smoke_run.metrics()
    block = results_page.check_block("satellite", metrics)
    assert block["metric"] == "test balanced accuracy" and block["higher_is_better"]
    arms = {arm["label"]: arm for arm in block["arms"]}
    assert arms[block["transfer"]]["per_seed"] == [metrics["per_seed"]["transfer"][k]
                                                    for k in sorted(metrics["per_seed"]["transfer"])]
    assert arms[block["scratch"]]["mean"] == pytest.approx(metrics["scratch"]["balanced_accuracy"])
    assert arms["colour/texture statistics + logistic regression"]["mean"] == pytest.approx(
        metrics["colour_baseline"]["mean"])
    assert arms["un-fine-tuned ImageNet features + linear probe"]["mean"] == pytest.approx(
        metrics["linear_probe"]["mean"])
    assert len(arms) == 4 and all(arm["n"] == 2 for arm in arms.values())
    assert bool(block["claim"]["helps"]) == bool(metrics["claim"]["transfer_helps"])
    assert "spatial block" in block["note"]


def test_plots_are_shown_and_saved(smoke_run):
    _, out, notebook = smoke_run
    assert png_outputs(notebook) >= 6
    for name in ("curves-transfer", "curves-scratch", "confusion", "samples", "split-map", "arms"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_tiles_come_from_the_rasters_pipeline(smoke_run):
    _, out, _ = smoke_run
    manifest = json.loads((out / "tiles" / "manifest.json").read_text())
    assert manifest["kind"] == "rasters"
    assert manifest["params"]["labels"].endswith("night.jpg")
    assert list(manifest["params"]["split"]) == [1.0, 0.0, 0.0]  # the notebook splits by block, not the pipeline


def test_model_published_with_lineage_and_loads_safely(smoke_run):
    tmp, out, _ = smoke_run
    entry = smoke_run.published("mobilenet-v2-imagenet")
    section = entry["metadata"]["deepvre"]
    assert section["data"]["manifest.json"] == hashlib.sha256((out / "tiles" / "manifest.json").read_bytes()).hexdigest()
    assert section["input"]["labels"] == ["dark", "dim", "bright"]
    assert section["training"]["parameters"]["smoke"] is True
    assert smoke_run.market().show("mobilenet-v2-imagenet", "1.0.0")["metadata"]["deepvre"]["use_case"] == "base"

    model = pull_model(smoke_run.market(), entry["name"], entry["version"], tmp / "pulled")
    probs = model.predict(np.zeros((1, *section["input"]["shape"]), "float32"), verbose=0)
    assert probs.shape == (1, 3)


def test_the_published_version_verifies(tmp_path, smoke_run):
    """``deepvre market verify`` re-runs this smoke run's lineage and finds the declared metrics
    within their tolerance (issue 18)."""
    verify_published(smoke_run, tmp_path / "runs")
