"""2D compact U(1) Monte Carlo, validated against the exact solution."""

import numpy as np
import pytest

from deepvre.science import lattice as lt
from tests.prereqs import require

L = 16


@pytest.mark.parametrize("mu", [0, 1])
def test_staples_give_the_exact_local_action_change(mu):
    rng = np.random.default_rng(3)
    theta = lt.hot_start(8, rng)
    k = lt.staple_sum(theta, mu)
    for x, t in [(0, 0), (3, 5), (7, 7), (0, 7)]:
        new = theta.copy()
        new[mu, x, t] += 0.7
        d_s = lt.action(new, 1.3) - lt.action(theta, 1.3)
        local = -1.3 * np.real((np.exp(1j * new[mu, x, t]) - np.exp(1j * theta[mu, x, t])) * k[x, t])
        assert d_s == pytest.approx(local, abs=1e-10)


@pytest.fixture(scope="module")
def ensembles():
    runs = {}
    for update, n_or in (("metropolis", 0), ("heatbath", 1)):
        for beta in (1.0, 2.0, 4.0):
            runs[update, beta] = lt.generate(L, beta, 400, seed=1, n_therm=200, n_skip=5,
                                             update=update, n_overrelax=n_or)
    return runs


@pytest.mark.parametrize("update", ["metropolis", "heatbath"])
@pytest.mark.parametrize("beta", [1.0, 2.0, 4.0])
def test_mean_plaquette_matches_bessel_ratio(ensembles, update, beta):
    _, hist = ensembles[update, beta]
    mean, err = lt.binned_error(hist["plaquette"], n_bins=20)
    exact = lt.exact_plaquette(beta)
    # the binned error agrees with the one from the autocorrelation time, and is small enough to matter
    tau = lt.autocorrelation_time(hist["plaquette"])
    err_tau = np.sqrt(2 * tau * hist["plaquette"].var() / len(hist["plaquette"]))
    assert 0.5 < err / err_tau < 2.0
    assert err < 0.003
    assert abs(mean - exact) < 3 * err, f"{update} beta={beta}: {mean:.5f} +- {err:.5f} vs exact {exact:.5f}"
    # and it is not the neighbouring beta's value
    assert abs(mean - lt.exact_plaquette(beta * 1.1)) > 3 * err


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_topological_susceptibility(ensembles, beta):
    _, hist = ensembles["heatbath", beta]
    q = hist["charge"]
    np.testing.assert_allclose(q, np.round(q), atol=1e-8)  # integer on the torus
    mean, err = lt.binned_error(q**2 / L**2, n_bins=20)
    assert abs(mean - lt.exact_susceptibility(beta)) < 3 * err


def test_configurations_shape_and_determinism(ensembles):
    configs, hist = ensembles["heatbath", 2.0]
    assert configs.shape == (400, 2, L, L) and configs.dtype == np.float64
    assert np.all(configs >= -np.pi) and np.all(configs < np.pi)
    again, _ = lt.generate(L, 2.0, 3, seed=1, n_therm=200, n_skip=5, update="heatbath")
    np.testing.assert_array_equal(again, configs[:3])
    other, _ = lt.generate(L, 2.0, 3, seed=2, n_therm=200, n_skip=5, update="heatbath")
    assert not np.array_equal(other, configs[:3])
    assert lt.plaquette(configs[-1]) == pytest.approx(hist["plaquette"][-1])


def test_overrelaxation_keeps_the_action():
    rng = np.random.default_rng(5)
    theta = lt.hot_start(L, rng)
    before = lt.action(theta, 2.0)
    lt.sweep(theta, 2.0, rng, "heatbath", n_overrelax=0)
    mid = lt.action(theta, 2.0)
    theta2 = theta.copy()
    for mu in (0, 1):
        for mask in lt._masks(L):
            k = lt.staple_sum(theta2, mu)[mask]
            theta2[mu][mask] = -2 * np.angle(k) - theta2[mu][mask]
    assert lt.action(theta2, 2.0) == pytest.approx(mid, abs=1e-9)
    assert mid != pytest.approx(before)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="even"):
        lt.cold_start(15)
    with pytest.raises(ValueError, match="update"):
        lt.sweep(lt.cold_start(4), 1.0, np.random.default_rng(0), "gibbs")


def test_saved_ensemble_reads_back(ensembles, tmp_path):
    try:
        from deepvre.pipelines import lattice_io
    except ImportError:
        require(False, "deepvre.pipelines.lattice_io (preprocessing area) is needed")
    configs, hist = ensembles["metropolis", 1.0]
    paths = lt.save_ensemble(str(tmp_path), configs[:4], hist["params"])
    assert len(paths) == 4
    links, header = lattice_io.read_config(paths[2])
    np.testing.assert_array_equal(links, configs[2])
    assert header["metadata"]["beta"] == 1.0 and header["metadata"]["index"] == 2
    with pytest.raises(FileExistsError):
        lt.save_ensemble(str(tmp_path), configs[:1], hist["params"])


def test_cli_writes_an_ensemble(tmp_path):
    from click.testing import CliRunner

    from deepvre.cli import main

    try:
        from deepvre.pipelines import lattice_io
    except ImportError:
        require(False, "deepvre.pipelines.lattice_io (preprocessing area) is needed")
    out = tmp_path / "u1"
    args = ["data", "lattice", str(out), "--size", "8", "--beta", "1.5", "--configs", "4", "--therm", "20"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "exact 0.5" in result.output  # I1(1.5)/I0(1.5) = 0.5630
    links, header = lattice_io.read_config(str(out / "cfg_00003.dvgauge"))
    assert links.shape == (2, 8, 8) and header["metadata"]["beta"] == 1.5
