"""The lattice notebook's physics estimators and the plaquette check with its resolution."""

import numpy as np
import pytest

from deepvre.science import lattice as mc
from deepvre.science import lattice_study as study


def test_inverting_the_bessel_ratio_recovers_beta():
    betas = np.array([0.05, 0.5, 1.0, 2.5, 4.0, 10.0])
    assert np.allclose(study.invert_plaquette(study.exact_plaquette_array(betas)), betas, atol=1e-9)
    assert np.allclose(study.exact_plaquette_array(betas), [mc.exact_plaquette(b) for b in betas], atol=1e-14)
    assert study.invert_plaquette([-0.1, 0.0]).tolist() == [0.0, 0.0]
    assert study.invert_plaquette(1.0) == pytest.approx(200.0)


def test_the_inversion_is_nearly_unbiased_and_as_good_as_its_error_says():
    """On independent 32x32 configurations at beta = 2 the estimate scatters by the Cramer-Rao bound
    1 / sqrt(V Var(cos theta_p)) (plaquettes independent in 2D), not more."""
    configs, _ = mc.generate(32, 2.0, 40, seed=7, n_therm=100, n_skip=3)
    estimate = study.invert_plaquette([study.cheap_statistics(
        np.moveaxis(np.concatenate([np.cos(c), np.sin(c)]), 0, -1)[None])[0, 0] for c in configs])
    p = mc.exact_plaquette(2.0)
    second = 1 - p / 2.0  # <cos^2> = 1 - I1/(beta I0) for the von Mises density exp(beta cos)
    bound = 1 / np.sqrt(32 * 32 * (second - p * p))
    assert abs(estimate.mean() - 2.0) < 4 * bound / np.sqrt(len(estimate))
    assert 0.6 * bound < estimate.std(ddof=1) < 1.5 * bound


def test_cheap_statistics_match_the_observables():
    from deepvre.pipelines.lattice import field_tensor
    from deepvre.science.lattice_observables import observables

    configs, _ = mc.generate(8, 1.0, 3, seed=2, n_therm=10, n_skip=2)
    x = np.stack([field_tensor(c) for c in configs])
    assert np.allclose(study.link_angles(x), (configs + np.pi) % (2 * np.pi) - np.pi, atol=1e-5)
    stats = study.cheap_statistics(x)
    assert stats.shape == (3, 6)
    for row, c in zip(stats, configs):
        obs = observables(c)
        assert row[0] == pytest.approx(obs["plaquette"], abs=1e-5)
        assert row[3] == pytest.approx(abs(obs["charge"]), abs=1e-5)
        assert row[5] == pytest.approx(obs["polyakov"], abs=1e-5)


def test_ridge_recovers_a_linear_law_and_picks_its_penalty_on_validation():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 3))
    y = 2.0 * f[:, 0] - f[:, 2] + 0.5
    model = study.ridge_baseline((f[:100], y[:100]), (f[100:], y[100:]))
    assert model["l2"] == 1e-4
    assert np.allclose(study.ridge_predict(model, f[100:]), y[100:], atol=0.01)


def chains(beta, generate_at, n=2, sweeps=60):
    """Per-sweep records as generate_chains keeps them, on 48x48 (cheap statistics: plaquettes are independent)."""
    out = []
    for k in range(n):
        _, hist = mc.generate(48, generate_at, sweeps, seed=100 + k, n_therm=30, n_skip=1)
        mean, error = mc.binned_error(hist["plaquette"], 20)
        out.append({"beta": beta, "plaquette": mean, "error": error, "n_bins": 20, "n_sweeps": sweeps})
    return out


def test_the_check_passes_right_chains_and_states_its_resolution():
    (row,) = study.plaquette_check(chains(2.0, 2.0))
    assert row["ok"] and row["chains"] == 2 and row["sweeps"] == 120
    assert row["resolution"] == pytest.approx(row["limit"] * row["error"])
    assert 1e-4 < row["error"] < 2e-3 and row["resolution"] < 0.01


def test_the_check_catches_a_deviation_above_its_resolution():
    """Chains at beta = 2.5 labelled 2.0: the plaquette is off by 0.05, far above the resolution."""
    (row,) = study.plaquette_check(chains(2.0, 2.5))
    assert abs(row["mean"] - row["exact"]) > 3 * row["resolution"]
    assert not row["ok"]
