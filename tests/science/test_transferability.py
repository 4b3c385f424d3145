"""LogME and LEEP (deepvre.science.transferability) checked against what they must equal: the
closed-form evidence maximised by a general optimiser, and LEEP's exact values at its extremes."""

import numpy as np
import pytest
from scipy.optimize import minimize

from deepvre.science import transferability as tr


def informative(n, d, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d))
    return f, (f[:, 0] + noise * rng.normal(size=n) > 0).astype(int)


def brute_force_evidence(f, y):
    """The largest closed-form evidence Nelder-Mead finds over (log alpha, log beta)."""
    found = minimize(lambda p: -tr.evidence(f, y, np.exp(p[0]), np.exp(p[1])), [0.0, 0.0], method="Nelder-Mead",
                     options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 8000})
    return -found.fun


def test_logme_is_the_maximum_evidence_when_there_are_more_samples_than_features():
    f, y = informative(200, 10)
    expected = np.mean([brute_force_evidence(f, (y == k).astype(float)) for k in (0, 1)])
    assert tr.logme(f, y) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(("n", "d"), [(200, 10), (30, 50)])
def test_the_spectral_evidence_is_the_closed_form(n, d):
    """Also with fewer samples than features (through the n x n Gram matrix)."""
    f, y = informative(n, d, seed=1)
    target = (y == 1).astype(float)
    value, alpha, beta = tr.max_evidence(f, target)
    assert value == pytest.approx(tr.evidence(f, target, alpha, beta), abs=1e-9)


def test_the_fixed_point_is_a_maximum_of_the_closed_form():
    f, y = informative(200, 10, seed=1)
    target = (y == 1).astype(float)
    value, alpha, beta = tr.max_evidence(f, target)
    for da, db in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        assert tr.evidence(f, target, alpha * np.exp(da), beta * np.exp(db)) <= value + 1e-9


def test_logme_ranks_informative_features_above_noise_and_regression_works():
    f, y = informative(300, 8, seed=2)
    noise = np.random.default_rng(3).normal(size=f.shape)
    assert tr.logme(f, y) > tr.logme(noise, y) + 0.05
    target = f @ np.arange(8) + 0.1 * np.random.default_rng(4).normal(size=300)
    assert tr.logme(f, target, regression=True) > tr.logme(noise, target, regression=True) + 1.0
    assert tr.logme(f, np.stack([target, -target], axis=1), regression=True) == pytest.approx(
        tr.logme(f, target, regression=True), abs=1e-9)  # a column and its negative carry the same evidence


def test_leep_at_its_extremes():
    labels = np.array([0, 0, 1, 2, 2, 2])
    # a source whose own labels determine the target labels: the empirical predictor is exact
    perfect = np.eye(4)[[1, 1, 3, 0, 0, 0]]
    assert tr.leep(perfect, labels) == pytest.approx(0.0, abs=1e-12)
    # an uninformative source: the target's label frequencies, i.e. minus the labels' entropy
    uniform = np.full((6, 4), 0.25)
    p = np.array([2, 1, 3]) / 6
    assert tr.leep(uniform, labels) == pytest.approx(float(np.sum(p * np.log(p))), abs=1e-12)
    partial = 0.5 * perfect + 0.5 * uniform
    assert tr.leep(uniform, labels) < tr.leep(partial, labels) < 0


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="0..K-1"):
        tr.logme(np.ones((4, 2)), [-1, 0, 1, 0])
    with pytest.raises(ValueError, match="source classes"):
        tr.leep(np.ones((3, 2)) / 2, [0, 1])
