"""The evaluation harness: t quantiles against closed forms, intervals, the claim rule, grouped splits,
the leakage checker and the cheap baselines. No test depends on a library's numerical defaults."""

import math

import numpy as np
import pytest

from deepvre.science import evaluation as ev


def t4_quantile(p):
    """The closed form of Student's t quantile with 4 degrees of freedom."""
    alpha = 4 * p * (1 - p)
    q = math.cos(math.acos(math.sqrt(alpha)) / 3) / math.sqrt(alpha)
    return math.copysign(2 * math.sqrt(q - 1), p - 0.5)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.025])
def test_t_quantile_matches_closed_forms(p):
    assert ev.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)  # Cauchy
    assert ev.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert ev.t_quantile(p, 4) == pytest.approx(t4_quantile(p), rel=1e-9)


def test_t_quantile_tends_to_the_normal_and_inverts_the_cdf():
    z = 1.959963984540054  # the normal 97.5 % point
    assert ev.t_quantile(0.975, 1e7) == pytest.approx(z, abs=1e-6)
    assert ev.t_quantile(0.5, 3) == 0.0
    for df in (3, 9, 29):
        assert ev.t_cdf(ev.t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-12)
    with pytest.raises(ValueError):
        ev.t_quantile(1.0, 3)


def test_incomplete_beta_closed_forms():
    assert ev.incomplete_beta(0.3, 1, 1) == pytest.approx(0.3, rel=1e-12)
    assert ev.incomplete_beta(0.3, 2, 1) == pytest.approx(0.09, rel=1e-12)
    assert ev.incomplete_beta(0.25, 0.5, 0.5) == pytest.approx(2 / math.pi * math.asin(0.5), rel=1e-12)


def test_mean_ci_is_the_t_interval():
    ci = ev.mean_ci([1, 2, 3, 4, 5])
    half = t4_quantile(0.975) * math.sqrt(2.5) / math.sqrt(5)
    assert ci["mean"] == 3 and ci["n"] == 5 and ci["sd"] == pytest.approx(math.sqrt(2.5))
    assert (ci["low"], ci["high"]) == pytest.approx((3 - half, 3 + half), rel=1e-9)
    assert ev.mean_ci([0.7, 0.7, 0.7])["half_width"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="at least two"):
        ev.mean_ci([0.5])
    with pytest.raises(ValueError, match="at least two"):
        ev.run_arm(lambda s: s, [0])
    assert ev.run_arm(lambda s: s / 10, range(5)) == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_bootstrap_is_deterministic_and_agrees_with_t_on_a_large_sample():
    values = np.random.default_rng(1).normal(0.8, 0.05, size=400)
    a, b = ev.bootstrap_ci(values, seed=3), ev.bootstrap_ci(values, seed=3)
    assert a == b
    t = ev.mean_ci(values)
    # both estimate 1.96 sd / sqrt(n); with 10 000 resamples the Monte Carlo error is about 1 %
    assert a["half_width"] == pytest.approx(t["half_width"], rel=0.1)
    assert a["low"] < a["mean"] < a["high"]
    flat = ev.bootstrap_ci([0.5, 0.5, 0.5])
    assert (flat["low"], flat["high"]) == (0.5, 0.5)


def summary(mean, half):
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "sd": half, "n": 5}


def test_claim_needs_the_interval_to_clear_scratch_and_the_best_baseline():
    transfer = summary(0.90, 0.02)
    helps = ev.claim(transfer, summary(0.60, 0.05), {"colour": summary(0.70, 0.03), "probe": 0.80})
    assert helps["helps"] and helps["best_baseline"] == "probe"
    assert helps["sentence"].startswith("Transfer helps")

    overlap = ev.claim(transfer, summary(0.86, 0.03), {"colour": 0.5})
    assert not overlap["helps"] and "overlaps scratch" in overlap["sentence"]

    baseline = ev.claim(transfer, summary(0.60, 0.05), {"colour": summary(0.95, 0.01), "probe": 0.80})
    assert not baseline["helps"] and baseline["best_baseline"] == "colour"
    assert "does not clear the best baseline, colour" in baseline["sentence"]
    assert baseline["sentence"].startswith("Transfer does not demonstrably help")


def test_claim_for_an_error_metric():
    transfer = summary(0.10, 0.01)
    assert ev.claim(transfer, summary(0.30, 0.05), {"physics": 0.2}, "RMSE", higher_is_better=False)["helps"]
    verdict = ev.claim(transfer, summary(0.30, 0.05), {"physics": 0.05}, "RMSE", higher_is_better=False)
    assert not verdict["helps"] and verdict["best_baseline"] == "physics"


def test_grouped_split_keeps_groups_whole_and_strata_in_every_split():
    groups = [f"{src}-b{b}" for src in ("a", "b") for b in range(10) for _ in range(3)]
    strata = [g.split("-")[0] for g in groups]
    split = ev.grouped_split(groups, seed=4, strata=strata)
    assert ev.check_no_leakage(split, groups) == {"train": 12, "val": 4, "test": 4}
    for stratum in "ab":
        assert {s for s, st in zip(split, strata) if st == stratum} == set(ev.SPLITS)
    assert split == ev.grouped_split(groups, seed=4, strata=strata)
    assert split != ev.grouped_split(groups, seed=5, strata=strata)
    # the assignment depends on the groups, not on the order of the items
    order = np.random.default_rng(0).permutation(len(groups))
    again = ev.grouped_split([groups[i] for i in order], seed=4, strata=[strata[i] for i in order])
    assert again == [split[i] for i in order]


def test_grouped_split_gives_small_strata_a_group_per_split_and_refuses_bad_input():
    split = ev.grouped_split(["x", "y", "z"], seed=0)
    assert sorted(split) == ["test", "train", "val"]
    with pytest.raises(ValueError, match="two strata"):
        ev.grouped_split(["g", "g"], strata=["a", "b"])
    with pytest.raises(ValueError, match="fractions"):
        ev.grouped_split(["g"], fractions=(0.5, 0.5, 0.5))


def test_leakage_checker_raises_on_a_shared_group_and_on_overlapping_crops():
    with pytest.raises(ev.Leakage, match="1 group"):
        ev.check_no_leakage(["train", "test", "train"], ["a", "a", "b"])
    windows = [("img", 0, 0, 32, 32), ("img", 16, 16, 32, 32), ("img", 100, 100, 32, 32), ("other", 0, 0, 32, 32)]
    # overlapping crops in one split, and the same pixels of different images, are fine
    ev.check_no_leakage(["train", "train", "test", "test"], ["a", "b", "c", "d"], windows)
    with pytest.raises(ev.Leakage, match="overlaps"):
        ev.check_no_leakage(["train", "test", "test", "test"], ["a", "b", "c", "d"], windows)
    # touching edges do not overlap
    ev.check_no_leakage(["train", "test"], ["a", "b"], [("img", 0, 0, 32, 32), ("img", 0, 32, 32, 32)])


def test_colour_statistics_of_known_images():
    flat = np.full((2, 8, 8, 3), 0.25)
    stats = ev.colour_statistics(flat)
    assert stats.shape == (2, 17)
    np.testing.assert_allclose(stats[:, :3], 0.25)       # means
    np.testing.assert_allclose(stats[:, 3:6], 0)         # sds
    np.testing.assert_allclose(stats[:, -2:], 0)         # no gradient, no Laplacian
    stripes = np.zeros((1, 4, 4, 1))
    stripes[:, :, 1::2] = 1.0
    s = ev.colour_statistics(stripes)[0]
    assert s[0] == 0.5 and s[1] == 0.5 and s[-2] == 1.0  # mean, sd, |d/dx| + |d/dy| = 1 + 0


def test_logistic_regression_separates_and_meets_its_optimality_condition():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [4, 0], [0, 4]])
    y = np.repeat(np.arange(3), 30)
    x = centres[y] + rng.normal(0, 0.5, size=(90, 2))
    model = ev.fit_logistic(x, y, 3, l2=0.1, steps=3000)
    assert np.mean(ev.predict_logistic(model, x) == y) == 1.0
    # the gradient of the penalised loss vanishes at the optimum
    z = np.hstack([(x - model["centre"]) / model["scale"], np.ones((90, 1))])
    logits = z @ model["weights"]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = z.T @ (p - np.eye(3)[y]) / 90
    grad[:-1] += 0.1 * model["weights"][:-1]
    assert np.abs(grad).max() < 1e-6
    again = ev.fit_logistic(x, y, 3, l2=0.1, steps=3000)
    assert np.array_equal(again["weights"], model["weights"])


def test_baselines_on_colour_separable_images():
    rng = np.random.default_rng(2)

    def images(n, colour):
        return np.clip(rng.normal(colour, 0.05, size=(n, 8, 8, 3)), 0, 1)

    parts = []
    for n in (20, 10, 10):
        x = np.concatenate([images(n, [0.8, 0.2, 0.2]), images(n, [0.2, 0.2, 0.8])])
        parts.append((x, np.repeat([0, 1], n)))
    assert ev.colour_baseline(*parts, 2)["accuracy"] == 1.0
    probe = ev.linear_probe(lambda x: x[:, :2, :2, :], *parts, 2)  # a feature map (n, 2, 2, 3), pooled
    assert probe["accuracy"] == 1.0 and probe["l2"] in (1e-3, 1e-2, 1e-1, 1.0)
    assert ev.pooled(np.ones((3, 2, 2, 5))).shape == (3, 5)


def test_comparison_block_summarises_every_arm_and_applies_the_claim_rule():
    block = ev.comparison(
        "accuracy", {"fine-tuned": [0.90, 0.92, 0.91], "scratch": [0.60, 0.62, 0.61], "colour": 0.95},
        transfer="fine-tuned")
    labels = [row["label"] for row in block["arms"]]
    assert labels == ["fine-tuned", "scratch", "colour"]
    tuned = block["arms"][0]
    assert tuned["per_seed"] == [0.90, 0.92, 0.91] and tuned["n"] == 3
    assert tuned["low"] < 0.91 < tuned["high"]
    assert block["arms"][2]["half_width"] == 0.0  # a deterministic baseline
    assert block["claim"]["best_baseline"] == "colour" and not block["claim"]["helps"]
    error = ev.comparison("rmse", {"transfer": [0.1, 0.11], "scratch": [0.5, 0.52]},
                                  higher_is_better=False)
    assert error["claim"]["helps"]
    with pytest.raises(ValueError, match="lack"):
        ev.comparison("accuracy", {"transfer": [1, 1]})


def test_the_step_size_uses_the_exact_spectral_norm_of_tall_and_wide_matrices():
    rng = np.random.default_rng(3)
    for shape in ((40, 7), (7, 40), (1, 1)):
        z = rng.normal(size=shape)
        assert ev.squared_spectral_norm(z) == pytest.approx(np.linalg.norm(z, 2) ** 2, rel=1e-12)
