"""The lattice-QCD notebook, run for real by papermill in smoke mode; assertions on what it wrote."""

import math

import pytest

from .smoke import pull_model, run_smoke, verify_published


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_smoke(tmp_path_factory, "lattice-qcd")


def test_every_arm_and_baseline_is_compared_on_held_out_betas(run):
    metrics = run.metrics()  # smoke, every value a finite number
    for key in ("transfer", "scratch", "zero_shot", "physics_inversion", "cheap_statistics"):
        assert {"rmse", "mae", "r2"} <= set(metrics[key])
    for key in ("transfer", "scratch", "zero_shot"):  # two seeds in smoke mode, with an interval
        assert metrics[key]["seeds"] == 2 and metrics[key]["rmse_low"] <= metrics[key]["rmse"] <= metrics[key]["rmse_high"]
    results = metrics["results"]
    assert results["higher_is_better"] is False and "RMSE" in results["metric"]
    arms = {row["label"]: row for row in results["arms"]}
    assert len(arms) == 5 and results["transfer"] in arms and results["scratch"] in arms
    assert arms[results["transfer"]]["per_seed"] and len(arms[results["transfer"]]["per_seed"]) == 2
    assert arms["I1/I0 inversion of the mean plaquette"]["n"] == 1
    assert arms["I1/I0 inversion of the mean plaquette"]["mean"] == metrics["physics_inversion"]["rmse"]
    assert results["claim"]["sentence"].startswith("Transfer")
    assert metrics["claim"]["transfer_helps"] == int(results["claim"]["helps"])
    # the second task's comparison, for its own table on the results page
    from deepvre.science import results_page

    flow = results_page.check_blocks("lattice-qcd", metrics)[1]
    assert flow is metrics["results_flow"] or flow == metrics["results_flow"]
    assert "100 E(t=1)" in flow["metric"] and flow["claim"]["sentence"] == metrics["flow"]["note"]
    # the split: whole chains, the test betas (1.5, 2.5) held out
    assert metrics["split"]["test_betas"] == 2 and metrics["split"]["test_chains"] == 2
    assert metrics["split"]["train_betas"] == metrics["split"]["val_betas"] == 3


def test_physics_validation_passed_states_its_resolution_and_is_shown(run):
    import nbformat

    metrics = run.metrics()
    # every ensemble (3 base betas at L=8, 3 + 2 held-out at L=16) within its 5 sigma limit
    assert metrics["physics"]["passed"] == 1 and metrics["physics"]["ensembles"] == 8
    assert math.isfinite(metrics["physics"]["max_abs_pull"]) and 0 < metrics["physics"]["resolution"] < 0.5
    text = "".join(out.get("text", "") for cell in nbformat.read(run.root / "lattice-qcd.ipynb", 4).cells
                   for out in cell.get("outputs", []))
    assert "physics validation passed: 8 ensembles" in text and "resolves deviations above" in text
    assert "Transfer does not demonstrably help" in text or "Transfer helps" in text
    assert (run.out / "plaquette-L16.png").is_file() and (run.out / "plaquette-L8.png").is_file()
    assert (run.out / "arms.png").is_file()


def test_model_published_with_lineage_and_loads_in_safe_mode(run, tmp_path):
    import numpy as np

    market = run.market()
    entry = run.published("lattice-u1-beta-small")
    assert entry["name"] == "lattice-u1-beta-large"
    section = entry["metadata"]["deepvre"]
    assert section["training"]["notebook"] == "lattice-qcd.ipynb"
    assert section["training"]["parameters"]["smoke"] is True
    model = pull_model(market, "lattice-u1-beta-large", entry["version"], tmp_path / "pulled")
    assert (tmp_path / "pulled" / "lattice-qcd.ipynb").is_file()
    prediction = model.predict(np.zeros((1, 16, 16, 4), "float32"), verbose=0)
    assert prediction.shape == (1, 1) and np.isfinite(prediction).all()
    # the base it started from was trained in this run, on the small lattices, and is in the catalog too
    assert market.show("lattice-u1-beta-small", "1.0.0")["metadata"]["deepvre"]["input"]["shape"] == [8, 8, 4]


def test_the_published_version_verifies(tmp_path, run):
    """``deepvre market verify`` re-runs this smoke run's lineage and finds the declared metrics
    within their tolerance (issue 18)."""
    verify_published(run, tmp_path / "runs")
