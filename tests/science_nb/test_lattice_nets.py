"""The lattice notebook's science: ensembles per beta, the plaquette check, the beta CNN."""

import os

import numpy as np
import pytest

from deepvre.pipelines.lattice_io import read_config
from deepvre.science import lattice as mc
from deepvre.science import lattice_nets as nets


def test_generate_ensembles_writes_one_folder_per_beta_with_beta_in_metadata(tmp_path):
    taus = nets.generate_ensembles(tmp_path, 8, [1.0, 2.5], n_configs=3, seed=1, n_therm=5, n_skip=2)
    assert sorted(taus) == [1.0, 2.5] and all(t >= 0.5 for t in taus.values())
    for beta in (1.0, 2.5):
        files = sorted(os.listdir(nets.beta_folder(tmp_path, beta)))
        assert len(files) == 3
        links, header = read_config(os.path.join(nets.beta_folder(tmp_path, beta), files[0]))
        assert links.shape == (2, 8, 8) and header["metadata"]["beta"] == beta
    with pytest.raises(FileExistsError):
        nets.generate_ensembles(tmp_path, 8, [1.0], n_configs=1, seed=1, n_therm=0, n_skip=1)


def validation_rows(seeds=(1, 3)):
    """plaquette_validation of 40 configurations at beta 1 and 3 (8^2), with tau from each chain."""
    plaq, beta, tau = [], [], {}
    for b, seed in zip((1.0, 3.0), seeds):
        configs, hist = mc.generate(8, b, 40, seed=seed, n_therm=30, n_skip=2)
        plaq += [mc.plaquette(c) for c in configs]
        beta += [b] * len(configs)
        tau[b] = max(0.5, mc.autocorrelation_time(hist["plaquette"]) / 2)
    return plaq, beta, tau


def test_plaquette_validation_accepts_monte_carlo_and_rejects_a_wrong_beta():
    plaq, beta, tau = validation_rows()
    rows = nets.plaquette_validation(plaq, beta, tau=tau)
    assert [r["beta"] for r in rows] == [1.0, 3.0]
    assert all(r["ok"] and r["n"] == 40 for r in rows), rows
    assert all(5 < r["limit"] < 10 for r in rows)  # 5 sigma, widened for an error from about 40 values
    # the same plaquettes labelled with swapped couplings are far off the exact curve
    wrong = nets.plaquette_validation(plaq, beta[::-1], tau=tau)
    assert not any(r["ok"] for r in wrong) and min(abs(r["pull"]) for r in wrong) > 20
    # a longer autocorrelation time widens the error
    independent = nets.plaquette_validation(plaq, beta)
    wide = nets.plaquette_validation(plaq, beta, tau={1.0: 2.0})
    assert wide[0]["error"] == pytest.approx(independent[0]["error"] * 2)
    assert wide[0]["limit"] > independent[0]["limit"]  # and leaves fewer independent values


def test_pull_limit_is_as_rare_as_five_sigma():
    from scipy import stats

    assert nets.pull_limit(10**7) == pytest.approx(5.0, abs=1e-3)
    assert nets.pull_limit(12) > 10 > nets.pull_limit(40) > nets.pull_limit(256) > 5
    assert 2 * stats.t.sf(nets.pull_limit(12), 11) == pytest.approx(2 * stats.norm.sf(5), rel=1e-6)
    assert nets.pull_limit(1000, n_sigma=3) == pytest.approx(3.0, abs=0.02)


def test_plaquette_validation_bad_input():
    with pytest.raises(ValueError, match="2 plaquettes but 1 betas"):
        nets.plaquette_validation([0.5, 0.6], [1.0])
    with pytest.raises(ValueError, match="no beta"):
        nets.plaquette_validation([0.5, 0.6], [1.0, float("nan")])
    with pytest.raises(ValueError, match="at least 2"):
        nets.plaquette_validation([0.5], [1.0])


def test_regression_metrics():
    m = nets.regression_metrics([1, 2, 3], [1, 2, 5])
    assert m["mae"] == pytest.approx(2 / 3) and m["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert m["r2"] == pytest.approx(1 - 4 / 2)
    with pytest.raises(ValueError):
        nets.regression_metrics([1, 2], [1])


def test_beta_cnn_weights_do_not_depend_on_the_lattice_size():
    import deepvre.market  # noqa: F401  (system SQLite before TensorFlow)
    from deepvre.training.transfer import resize_input

    small = nets.beta_cnn((8, 8, 4))
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 4)).astype("float32")
    large = resize_input(small, (16, 16, 4))
    assert large.predict(x, verbose=0).shape == (2, 1)
    assert all(np.array_equal(a, b) for a, b in zip(small.get_weights(), large.get_weights()))
