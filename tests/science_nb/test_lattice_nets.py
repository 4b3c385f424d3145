"""The lattice notebook's networks and numbers: the pull limit, the metrics, the CNNs (the study design:
tests/science/test_lattice_study.py and test_lattice_leakage.py)."""

import numpy as np
import pytest

from deepvre.science import lattice_nets as nets


def test_pull_limit_is_as_rare_as_five_sigma():
    from scipy import stats

    assert nets.pull_limit(10**7) == pytest.approx(5.0, abs=1e-3)
    assert nets.pull_limit(12) > 10 > nets.pull_limit(40) > nets.pull_limit(256) > 5
    assert 2 * stats.t.sf(nets.pull_limit(12), 11) == pytest.approx(2 * stats.norm.sf(5), rel=1e-6)
    assert nets.pull_limit(1000, n_sigma=3) == pytest.approx(3.0, abs=0.02)


def test_regression_metrics():
    m = nets.regression_metrics([1, 2, 3], [1, 2, 5])
    assert m["mae"] == pytest.approx(2 / 3) and m["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert m["r2"] == pytest.approx(1 - 4 / 2)
    with pytest.raises(ValueError):
        nets.regression_metrics([1, 2], [1])


@pytest.mark.parametrize("make", ["beta_cnn", "flow_cnn"])
def test_cnn_weights_do_not_depend_on_the_lattice_size(make):
    import deepvre.market  # noqa: F401  (system SQLite before TensorFlow)
    from deepvre.training.transfer import resize_input

    small = getattr(nets, make)((8, 8, 4))
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 4)).astype("float32")
    large = resize_input(small, (16, 16, 4))
    assert large.predict(x, verbose=0).shape == (2, 1)
    assert all(np.array_equal(a, b) for a, b in zip(small.get_weights(), large.get_weights()))
