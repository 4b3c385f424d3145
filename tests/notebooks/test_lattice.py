"""The lattice-QCD notebook, run for real by papermill in smoke mode; assertions on what it wrote."""

import math

import pytest

from .smoke import fine_tuned, pull_model, run_smoke


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_smoke(tmp_path_factory, "lattice-qcd")


def test_metrics_are_finite_and_compare_transfer_with_scratch(run):
    metrics = run.metrics()  # smoke, every value a finite number
    for key in ("transfer", "scratch", "zero_shot"):
        assert {"rmse", "mae", "r2"} <= set(metrics[key])
    assert metrics["comparison"]["metric"] == "rmse"
    assert metrics["comparison"]["transfer"] == metrics["transfer"]["rmse"]


def test_physics_validation_passed_and_is_shown(run):
    import nbformat

    metrics = run.metrics()
    # every beta within its 5 sigma limit (lattice_nets.plaquette_validation), not a fixed 3 sigma on 12 values
    assert metrics["physics"]["passed"] == 1 and metrics["physics"]["betas"] == 3
    assert math.isfinite(metrics["physics"]["max_abs_pull"])
    text = "".join(out.get("text", "") for cell in nbformat.read(run.root / "lattice-qcd.ipynb", 4).cells
                   for out in cell.get("outputs", []))
    assert "physics validation passed: 3 betas" in text
    assert (run.out / "plaquette-L16.png").is_file() and (run.out / "plaquette-L8.png").is_file()


def test_model_published_with_lineage_and_loads_in_safe_mode(run, tmp_path):
    import numpy as np

    market = run.market()
    entry = fine_tuned(market, "lattice-u1-beta-large", "lattice-u1-beta-small")
    section = entry["metadata"]["deepvre"]
    assert section["training"]["notebook"] == "lattice-qcd.ipynb"
    assert section["training"]["parameters"]["smoke"] is True
    model = pull_model(market, "lattice-u1-beta-large", entry["version"], tmp_path / "pulled")
    assert (tmp_path / "pulled" / "lattice-qcd.ipynb").is_file()
    prediction = model.predict(np.zeros((1, 16, 16, 4), "float32"), verbose=0)
    assert prediction.shape == (1, 1) and np.isfinite(prediction).all()
    # the base it started from is in the catalog too, trained on the small lattices
    assert market.show("lattice-u1-beta-small", "1.0.0")["metadata"]["deepvre"]["input"]["shape"] == [8, 8, 4]
