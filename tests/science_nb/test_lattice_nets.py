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


def test_plaquette_validation_accepts_monte_carlo_and_rejects_a_wrong_beta():
    plaq, beta = [], []
    for b in (1.0, 3.0):
        configs, _ = mc.generate(8, b, 40, seed=int(b), n_therm=30, n_skip=2)
        plaq += [mc.plaquette(c) for c in configs]
        beta += [b] * len(configs)
    rows = nets.plaquette_validation(plaq, beta)
    assert [r["beta"] for r in rows] == [1.0, 3.0]
    assert all(r["ok"] and r["n"] == 40 for r in rows), rows
    # the same plaquettes labelled with swapped couplings are far off the exact curve
    wrong = nets.plaquette_validation(plaq, beta[::-1])
    assert not any(r["ok"] for r in wrong)
    # a longer autocorrelation time widens the error
    wide = nets.plaquette_validation(plaq, beta, tau={1.0: 2.0})
    assert wide[0]["error"] == pytest.approx(rows[0]["error"] * 2)


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
