"""The page of the ranking's validation study (``deepvre.science.rank_study``): its pure builders, on a
study whose numbers are known (the study itself runs in ``deepvre results rank-validation``)."""

import re

import pytest

from deepvre.science import evaluation, rank_study, rank_validation


def candidate(model, logme, leep, probe, per_seed, floor=False):
    return {"model": model, "title": model, "floor": floor, "logme": logme, "leep": leep, "probe_accuracy": probe,
            "accuracy": evaluation.mean_ci(per_seed), "per_seed": per_seed}


def study_of(candidates):
    validation = {}
    for estimator, _ in rank_study.ESTIMATORS:
        rows = [{"model": c["model"], "score": c[estimator], "accuracy": c["accuracy"]["mean"]} for c in candidates
                if c[estimator] is not None]
        validation[estimator] = (rank_validation.validate({"biology": rows})["cases"]["biology"]
                                 if len(rows) >= rank_validation.MIN_CANDIDATES else None)
    settings = {k: v for k, v in rank_study.MODES["full"].items() if k not in rank_study.CASES}
    return {"mode": "full", "seeds": [0, 1, 2], "settings": settings, "load": [3.0, 4.0, 5.0], "wall_s": 125.0,
            "cases": {"biology": {"metric": "test accuracy", "note": "237 crops", "candidates": candidates,
                                  "validation": validation, "ranking_seconds": 61.0, "skipped": [],
                                  "splits": {"train": 141, "val": 59, "test": 37}}}}


INFO = {"id": "rank-validation-x", "commit": "abc123", "date": "2026-12-01", "command": "deepvre results rank-validation",
        "record": "results/rank-validation/study.json"}


def test_a_ranking_in_the_fine_tuned_order_holds_and_the_section_shows_every_number():
    study = study_of([candidate("mobilenet-v2-imagenet:1.0.0", 0.9, -0.5, 0.95, [1.0, 0.98, 0.99]),
                      candidate("satellite-mobilenet:1.0.0", 0.5, None, 0.90, [0.95, 0.96, 0.97]),
                      candidate("satellite-scratch:1.0.0", 0.3, None, 0.80, [0.90, 0.88, 0.92]),
                      candidate("random:mobilenet-v2-imagenet:1.0.0", 0.1, -1.3, 0.6, [0.80, 0.85, 0.90], floor=True)])
    text = rank_study.section(study, INFO, ["results/rank-validation/scores-vs-fine-tuned.png"])
    assert text.startswith("<!-- results:rank-validation (written by `deepvre results rank-validation`) -->")
    assert text.rstrip().endswith("<!-- /results:rank-validation -->") and "Smoke mode" not in text
    assert "Study `rank-validation-x` of commit `abc123` on 2026-12-01, 2 min 05 s wall (load average 3.0 / 4.0 / 5.0" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and ("mobilenet" in line or "scratch:" in line)]
    assert [r.split(" | ")[0] for r in rows] == ["| mobilenet-v2-imagenet:1.0.0", "| satellite-mobilenet:1.0.0",
                                                 "| satellite-scratch:1.0.0",
                                                 "| random:mobilenet-v2-imagenet:1.0.0 (floor)"]  # by LogME
    assert "| satellite-mobilenet:1.0.0 | 0.500 | - | 0.900 | 0.960 ± 0.025 | 0.950 0.960 0.970 |" in text
    assert "| LogME | +1.00 | +1.00 to +1.00 | 4 | no |" in text
    assert "| LEEP | - | - | - | not computed (fewer than 3 candidates with this score) |" in text  # two have LEEP
    assert "**Verdict:** biology: LogME's rho is +1.00" in text and "It holds" in text
    assert "- **lattice-qcd**:" in text and "- **security**:" in text
    assert "![score against fine-tuned accuracy](results/rank-validation/scores-vs-fine-tuned.png)" in text
    smoke = rank_study.section({**study, "note": "Ran in two invocations."}, INFO, smoke=True)
    assert "**Smoke mode" in smoke and "\nRan in two invocations.\n" in smoke


def test_a_reversed_ranking_fails_and_the_verdict_names_the_swapped_pairs():
    study = study_of([candidate("a:1", 0.9, None, 0.5, [0.50, 0.52, 0.48]),
                      candidate("b:1", 0.5, None, 0.7, [0.90, 0.92, 0.91]),
                      candidate("c:1", 0.3, None, 0.8, [0.70, 0.74, 0.72]),
                      candidate("random:a:1", 0.1, None, 0.6, [0.40, 0.80, 0.60], floor=True)])
    case = study["cases"]["biology"]
    assert case["validation"]["logme"]["fails"]
    words = rank_study.verdict("biology", case)
    assert re.match(r"biology: LogME's rho is -0\.\d\d, 95 % bootstrap interval", words)
    assert "It FAILS" in words and "a:1 above b:1" in words and "a:1 above c:1" in words
    assert "above random:a:1" not in words  # the floor's interval overlaps: not called wrong
    assert "Its top pick, a:1, is not the best start after fine-tuning (b:1)." in words
    assert case["validation"]["logme"]["rho"] == pytest.approx(
        rank_validation.spearman([0.9, 0.5, 0.3, 0.1], [0.5, 0.91, 0.72, 0.6]))


def test_the_figure_has_a_panel_per_case_and_estimator(tmp_path):
    pytest.importorskip("matplotlib")
    study = study_of([candidate("a:1", 0.9, -0.4, 0.5, [0.50, 0.52, 0.48]),
                      candidate("b:1", 0.5, -0.6, 0.7, [0.90, 0.92, 0.91]),
                      candidate("random:a:1", 0.1, -0.9, 0.6, [0.40, 0.80, 0.60], floor=True)])
    path = rank_study.figure(study, str(tmp_path / "f.png"))
    from PIL import Image

    width, height = Image.open(path).size
    assert width > 2.5 * height  # one row (one case) of three panels
