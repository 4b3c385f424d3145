"""The validation harness of the ranking (issue 18, item 2), on small studies whose answer is known."""

import numpy as np
import pytest

from deepvre.science import rank_validation as rv


def rows(scores, accuracies):
    return [{"model": f"m{i}", "score": s, "accuracy": a} for i, (s, a) in enumerate(zip(scores, accuracies))]


def test_spearman_is_scipys_with_ties_and_constant_sides():
    assert rv.spearman([1, 2, 3, 4], [0.1, 0.5, 0.7, 0.9]) == pytest.approx(1.0)
    assert rv.spearman([1, 2, 3, 4], [0.9, 0.7, 0.5, 0.1]) == pytest.approx(-1.0)
    assert rv.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # ties averaged
    assert np.isnan(rv.spearman([1, 2, 3], [0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="as many accuracies"):
        rv.spearman([1, 2, 3], [1, 2])


def test_a_ranking_that_orders_the_fine_tuned_models_passes_and_a_reversed_one_fails():
    study = rv.validate({
        "agrees": rows([0.9, 0.4, -0.3, 0.1, 0.6, 0.2], [0.98, 0.80, 0.55, 0.70, 0.90, 0.72]),
        "reversed": rows([0.9, 0.4, -0.3, 0.1], [0.55, 0.80, 0.98, 0.90]),
    })
    agrees, reversed_ = study["cases"]["agrees"], study["cases"]["reversed"]
    assert agrees["rho"] == pytest.approx(1.0) and agrees["low"] > 0 and not agrees["fails"]
    assert reversed_["rho"] == pytest.approx(-1.0) and reversed_["fails"]
    assert [f["case"] for f in study["failures"]] == ["reversed"]
    assert "top by score m0, top by fine-tuned accuracy m2" in reversed_["sentence"]
    # the same seed gives the same interval
    assert rv.validate({"agrees": rows([0.9, 0.4, -0.3, 0.1], [0.98, 0.80, 0.55, 0.70])}) == \
        rv.validate({"agrees": rows([0.9, 0.4, -0.3, 0.1], [0.98, 0.80, 0.55, 0.70])})


def test_unrelated_scores_get_an_interval_around_zero_and_too_few_candidates_are_refused():
    rng = np.random.default_rng(3)
    noise = rv.bootstrap_spearman(rng.normal(size=12), rng.normal(size=12))
    assert noise["low"] < 0 < noise["high"]
    with pytest.raises(ValueError, match="biology: 2 candidate base models; the validation needs at least 3"):
        rv.validate({"biology": rows([1, 2], [0.5, 0.6])})


def test_candidates_come_from_a_ranking_answer_joined_with_fine_tuned_accuracies():
    result = {"models": [{"model": "mobilenet:1", "logme": 0.7, "leep": -0.7, "probe_accuracy": 1.0},
                         {"model": "random:mobilenet:1", "logme": -0.3, "leep": -1.3, "probe_accuracy": 0.8},
                         {"model": "cells:2", "logme": 0.2, "leep": None, "probe_accuracy": 0.9}]}
    accuracies = {"mobilenet:1": 0.99, "random:mobilenet:1": 0.92, "cells:2": 0.95}
    assert rv.candidates_from(result, accuracies) == [
        {"model": "mobilenet:1", "score": 0.7, "accuracy": 0.99},
        {"model": "random:mobilenet:1", "score": -0.3, "accuracy": 0.92},
        {"model": "cells:2", "score": 0.2, "accuracy": 0.95}]
    assert [r["model"] for r in rv.candidates_from(result, accuracies, "leep")] == ["mobilenet:1", "random:mobilenet:1"]
