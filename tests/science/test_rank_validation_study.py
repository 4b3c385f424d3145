"""``deepvre results rank-validation --smoke``: the ranking's validation study end to end, in its tiny mode.

The real study's code path (the notebooks' data through the real pipelines on Dask, a real catalog, the
real ranking, real Keras fine-tuning), on tiny data for one epoch and two seeds. The checks recompute
what the page claims: the scores are the ranking's for those models on that data, the accuracies are the
trained models' on the test split, rho is Spearman's of those numbers, and the split is the notebook's."""

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

from deepvre.science import rank_study, rank_validation, ranking
from tests.prereqs import require

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from deepvre.cli import main
    from deepvre.science import datasets, mobilenet

    try:
        mobilenet.weights_path()
        datasets.earth_paths(datasets.XPLANET_DIR)
        datasets.stardist_nuclei()
    except (FileNotFoundError, datasets.MissingData) as err:
        require(False, str(err))
    root = tmp_path_factory.mktemp("rank-study")
    page = root / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# Results\n\n<!-- results:biology (written by `deepvre results biology`) -->\nkept\n"
                    "<!-- /results:biology -->\n")
    result = CliRunner().invoke(main, ["results", "rank-validation", "--smoke", "--repo", REPO, "--page", str(page),
                                       "--runs-dir", str(root / "runs")])
    assert result.exit_code == 0, result.output
    record = json.loads((page.parent / "results" / "rank-validation" / "study.json").read_text())
    return {"page": page, "record": record, "folder": root / "runs" / record["id"], "output": result.output}


def test_the_page_gets_the_section_the_figure_and_the_record(study):
    text = study["page"].read_text()
    assert "<!-- results:biology (written by `deepvre results biology`) -->\nkept\n" in text  # left as it was
    section = text[text.index("<!-- results:rank-validation"):]
    assert section.rstrip().endswith("<!-- /results:rank-validation -->")
    assert "**Smoke mode" in section and f"Study `{study['record']['id']}`" in section
    assert "deepvre results rank-validation --smoke" in section
    assert (study["page"].parent / "results" / "rank-validation" / "scores-vs-fine-tuned.png").stat().st_size > 10000
    for key in rank_study.CASES:
        case = study["record"]["cases"][key]
        assert f"### {key}" in section and f"**Verdict:** {key}: " in section
        for c in case["candidates"]:  # every candidate's row, with its mean and per-seed numbers
            assert re.search(rf"\| {re.escape(c['model'])}( \(floor\))? \| {c['logme']:.3f} \|.*"
                             rf"\| {c['accuracy']['mean']:.3f} ± ", section), c["model"]
    assert "- **lattice-qcd**:" in section and "- **security**:" in section


def test_the_candidates_are_imagenet_the_floor_and_the_other_cases_models(study):
    cases = study["record"]["cases"]
    assert {c["model"] for c in cases["biology"]["candidates"]} == {
        rank_study.IMAGENET, rank_study.FLOOR, "satellite-mobilenet:1.0.0", "satellite-scratch:1.0.0"}
    # the ranking cannot score the biology models on satellite tiles (their nested base is not resized):
    # the case says so instead of validating on two candidates
    assert {c["model"] for c in cases["satellite"]["candidates"]} == {rank_study.IMAGENET, rank_study.FLOOR}
    assert {s["model"] for s in cases["satellite"]["skipped"]} == {"biology-mobilenet:1.0.0", "biology-scratch:1.0.0"}
    assert cases["satellite"]["validation"]["logme"] is None
    assert "satellite: NOT VALIDATED: only 2 candidates" in rank_study.verdict("satellite", cases["satellite"])
    for key in rank_study.CASES:
        for c in cases[key]["candidates"]:
            assert len(c["per_seed"]) == 2 and c["accuracy"]["n"] == 2


def test_the_scores_are_the_rankings_on_the_notebooks_split(study):
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import LocalMarket
    from deepvre.pipelines.manifest import read_manifest
    from deepvre.science import biology_crops

    folder = study["folder"]
    for key in rank_study.CASES:
        catalog = folder / key / "catalog"
        market = LocalMarket(Catalog(database_url=f"sqlite:///{catalog / 'catalog.sqlite'}",
                                     store_url=str(catalog / "artifacts")))
        again = ranking.rank(str(folder / key / "data"), market=market, in_process=True,
                             models_dir=str(folder / key / "ranking-models"))
        recorded = {c["model"]: c for c in study["record"]["cases"][key]["candidates"]}
        assert {r["model"] for r in again["models"]} == set(recorded)
        for row in again["models"]:
            for estimator, _ in rank_study.ESTIMATORS:
                if row[estimator] is None:
                    assert recorded[row["model"]][estimator] is None
                else:
                    assert recorded[row["model"]][estimator] == pytest.approx(row[estimator], abs=1e-3), (key, row)
    # biology's splits are the notebook's grouped split of its first seed: the per-split counts agree
    manifest = read_manifest(str(folder / "biology" / "pipeline"))
    groups = [biology_crops.parse_folder(f)[1] for f in manifest["summary"]["classes"]]
    from deepvre.pipelines.dataset import open_split

    y = open_split(str(folder / "biology" / "pipeline"), "train", arrays=("y",))
    names = biology_crops.split_for_seed([groups[k] for k in y], rank_study.SEED)
    assert study["record"]["cases"]["biology"]["splits"] == {s: names.count(s) for s in ("train", "val", "test")}


def test_the_accuracies_are_the_trained_models_and_rho_is_spearmans(study):
    from deepvre.market import modelfile
    from deepvre.pipelines.dataset import open_split

    folder = study["folder"]
    for key in rank_study.CASES:
        case = study["record"]["cases"][key]
        # the published model of this case is its ImageNet fine-tune of the first seed: scored again here
        model = modelfile.load(str(folder / key / "published" / f"{key}-mobilenet" / "model.keras"))
        x, y = open_split(str(folder / key / "data"), "test")
        predicted = model.predict(x, verbose=0).argmax(axis=1)
        if key == "satellite":
            from deepvre.training.report import balanced_accuracy

            again = balanced_accuracy(y, predicted, 3)
        else:
            again = float(np.mean(predicted == y))
        imagenet = next(c for c in case["candidates"] if c["model"] == rank_study.IMAGENET)
        assert imagenet["per_seed"][0] == pytest.approx(again, abs=1e-9)
        for c in case["candidates"]:
            assert c["accuracy"]["mean"] == pytest.approx(np.mean(c["per_seed"]))
            assert all(0.0 <= v <= 1.0 for v in c["per_seed"])
        logme = case["validation"]["logme"]
        if key == "satellite":
            continue  # not validated (above)
        rows = [c for c in case["candidates"]]
        rho = rank_validation.spearman([c["logme"] for c in rows], [c["accuracy"]["mean"] for c in rows])
        assert logme["n"] == 4 and (logme["rho"] == pytest.approx(rho) or np.isnan(rho) and np.isnan(logme["rho"]))
        assert logme["fails"] == (not logme["low"] > 0)


def test_the_verdict_names_a_failure_and_its_reason():
    case = {"validation": {"logme": {"rho": -0.8, "low": -1.0, "high": 0.4, "n": 4, "fails": True}},
            "candidates": [
                {"model": "a:1", "logme": 0.9, "accuracy": {"mean": 0.50, "low": 0.45, "high": 0.55}},
                {"model": "b:1", "logme": 0.5, "accuracy": {"mean": 0.90, "low": 0.85, "high": 0.95}},
                {"model": "c:1", "logme": 0.1, "accuracy": {"mean": 0.70, "low": 0.60, "high": 0.80}},
                {"model": "random:a:1", "logme": -0.2, "accuracy": {"mean": 0.60, "low": 0.40, "high": 0.80}}]}
    words = rank_study.verdict("biology", case)
    assert "It FAILS" in words and "a:1 above b:1" in words and "a:1 above c:1" in words
    assert "a:1 above random:a:1" not in words  # overlapping intervals are not called wrong
    assert "Its top pick, a:1, is not the best start after fine-tuning (b:1)" in words
    case["validation"]["logme"].update(rho=1.0, low=0.5, fails=False)
    assert "It holds" in rank_study.verdict("biology", case)
