"""2D SU(2) Monte Carlo, validated against the exact solution I2(beta)/I1(beta)."""

import numpy as np
import pytest

from deepvre.science import lattice as u1
from deepvre.science import su2
from tests.prereqs import require

L = 16
BETAS = (1.0, 2.0, 4.0)


def single_plaquette_moment(beta, power):
    """<x^power> for the exact plaquette density sqrt(1 - x^2) exp(beta x) on [-1, 1] (independent of su2.py)."""
    from scipy.integrate import quad

    weight = lambda x: np.sqrt(1 - x * x) * np.exp(beta * (x - 1))
    return quad(lambda x: x**power * weight(x), -1, 1)[0] / quad(weight, -1, 1)[0]


def test_quaternions_are_su2_matrices():
    rng = np.random.default_rng(0)
    a, b = su2.random_su2((5,), rng), su2.random_su2((5,), rng)
    ua, ub = su2.to_matrix(a), su2.to_matrix(b)
    np.testing.assert_allclose(su2.to_matrix(su2.qmul(a, b)), ua @ ub, atol=1e-14)
    np.testing.assert_allclose(su2.to_matrix(su2.qdag(a)), np.conj(np.swapaxes(ua, -1, -2)), atol=1e-15)
    assert su2.unitarity_error(ua) < 1e-14
    np.testing.assert_allclose(su2.from_matrix(ua), a, atol=1e-15)
    with pytest.raises(ValueError, match="not SU"):
        su2.from_matrix(2 * ua)
    with pytest.raises(ValueError, match="not SU"):
        su2.from_matrix(np.diag([1j, 1j]))  # unitary, det -1


@pytest.mark.parametrize("mu", [0, 1])
def test_staples_give_the_exact_local_action_change(mu):
    rng = np.random.default_rng(3)
    q = su2.hot_start(8, rng)
    a = su2.staple_sum(q, mu)
    for x, t in [(0, 0), (3, 5), (7, 7), (0, 7)]:
        new = q.copy()
        new[mu, x, t] = su2.random_su2((), rng)
        d_s = su2.action(new, 1.3) - su2.action(q, 1.3)
        local = -1.3 * (su2.qmul(new[mu, x, t], a[x, t])[0] - su2.qmul(q[mu, x, t], a[x, t])[0])
        assert d_s == pytest.approx(local, abs=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.99, 2.0, 6.0])
def test_heatbath_draws_the_exact_x0_distribution(alpha):
    """Both samplers (Haar rejection below alpha = 2, Kennedy-Pendleton above) against the density."""
    from scipy import stats
    from scipy.integrate import quad

    x0 = su2.sample_x0(np.full(20000, alpha), np.random.default_rng(7))
    assert np.all(np.abs(x0) <= 1)
    weight = lambda x: np.sqrt(1 - x * x) * np.exp(alpha * (x - 1))
    norm = quad(weight, -1, 1)[0]
    cdf = np.vectorize(lambda v: quad(weight, -1, v)[0] / norm)
    grid = np.linspace(-1, 1, 401)
    table = cdf(grid)
    assert stats.kstest(x0, lambda v: np.interp(v, grid, table)).pvalue > 1e-3
    exact = su2.exact_plaquette(alpha) if alpha else 0.0
    assert abs(x0.mean() - exact) < 4 * x0.std() / np.sqrt(len(x0))


@pytest.fixture(scope="module")
def ensembles():
    return {beta: su2.generate(L, beta, 300, seed=1, n_therm=50, n_skip=2) for beta in BETAS}


@pytest.mark.parametrize("beta", BETAS)
def test_mean_plaquette_matches_bessel_ratio(ensembles, beta):
    _, hist = ensembles[beta]
    series = hist["plaquette"]
    mean, err = u1.binned_error(series, n_bins=20)
    exact = su2.exact_plaquette(beta)
    assert exact == pytest.approx(single_plaquette_moment(beta, 1), rel=1e-8)
    # the binned error agrees with the one from the autocorrelation time, and is small enough to matter
    err_tau = np.sqrt(2 * u1.autocorrelation_time(series) * series.var() / len(series))
    assert 0.5 < err / err_tau < 2.0
    assert err < 0.0025
    assert abs(mean - exact) < 3 * err, f"beta={beta}: {mean:.5f} +- {err:.5f} vs exact {exact:.5f}"
    assert abs(mean - su2.exact_plaquette(beta * 1.1)) > 3 * err  # not the neighbouring beta's value


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_plaquette_spread_matches_the_exact_distribution(ensembles, beta):
    """In 2D the plaquettes are independent with density sqrt(1 - x^2) exp(beta x): check <x^2> too."""
    configs, _ = ensembles[beta]
    second = [np.mean(su2.plaquettes(su2.from_matrix(c)) ** 2) for c in configs]
    mean, err = u1.binned_error(second, n_bins=20)
    assert abs(mean - single_plaquette_moment(beta, 2)) < 3 * err


def test_configurations_are_unitary_and_reproducible(ensembles):
    configs, hist = ensembles[2.0]
    assert configs.shape == (300, 2, L, L, 2, 2) and configs.dtype == np.complex128
    assert su2.unitarity_error(configs) < 1e-12
    again, _ = su2.generate(L, 2.0, 3, seed=1, n_therm=50, n_skip=2)
    np.testing.assert_array_equal(again, configs[:3])
    other, _ = su2.generate(L, 2.0, 3, seed=2, n_therm=50, n_skip=2)
    assert not np.array_equal(other, configs[:3])
    assert su2.plaquette(su2.from_matrix(configs[-1])) == pytest.approx(hist["plaquette"][-1], abs=1e-14)


def test_unitarity_holds_over_long_overrelaxation():
    rng = np.random.default_rng(4)
    q = su2.hot_start(8, rng)
    for _ in range(300):
        su2.sweep(q, 3.0, rng, n_overrelax=3)
    assert su2.unitarity_error(su2.to_matrix(q)) < 1e-12


def test_overrelaxation_keeps_the_action():
    rng = np.random.default_rng(5)
    q = su2.hot_start(L, rng)
    su2.sweep(q, 2.0, rng, n_overrelax=0)
    before = su2.action(q, 2.0)
    moved = q.copy()
    for mu in (0, 1):
        for mask in u1._masks(L):
            moved[mu][mask] = su2.overrelax_links(moved[mu][mask], su2.staple_sum(moved, mu)[mask])
    assert su2.action(moved, 2.0) == pytest.approx(before, abs=1e-9)
    assert np.abs(moved - q).max() > 0.1


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="even"):
        su2.cold_start(15)
    with pytest.raises(ValueError, match="beta"):
        su2.generate(4, -1.0, 1, seed=0)
    with pytest.raises(ValueError, match="format"):
        su2.save_ensemble(str(tmp_path), np.zeros((1, 2, 4, 4, 2, 2), complex), {}, format="npz")
    assert su2.plaquette(su2.cold_start(4)) == 1.0


@pytest.fixture()
def lattice_io():
    try:
        from deepvre.pipelines import lattice_io
    except ImportError:
        require(False, "deepvre.pipelines.lattice_io (preprocessing area) is needed")
    return lattice_io


@pytest.mark.parametrize("fmt", ["deepvre", "ildg"])
def test_saved_ensemble_round_trips_and_pipeline_agrees(ensembles, tmp_path, fmt, lattice_io):
    from deepvre.pipelines import lattice as pipeline

    configs, hist = ensembles[4.0]
    paths = su2.save_ensemble(str(tmp_path), configs[:4], hist["params"], format=fmt)
    assert paths[0].endswith(".dvgauge" if fmt == "deepvre" else ".lime")
    for i, path in enumerate(paths):
        links, header = lattice_io.read_config(path)
        np.testing.assert_array_equal(links, configs[i])
        assert header["group"] == "SU2" and header["metadata"]["beta"] == 4.0 and header["metadata"]["index"] == i
        own = su2.plaquette(su2.from_matrix(links))
        assert pipeline.plaquette(links) == pytest.approx(own, abs=1e-12)
        assert header["metadata"]["plaquette"] == pytest.approx(own, abs=1e-14)
        assert 0.0 <= pipeline.polyakov(links) <= 1.0
    with pytest.raises(FileExistsError):
        su2.save_ensemble(str(tmp_path), configs[:1], hist["params"], format=fmt)


def test_dask_pipeline_reads_su2_ensembles(ensembles, tmp_path, lattice_io):
    """The real preprocess pipeline (in-process Dask) on mixed-format SU(2) files: same plaquettes."""
    from distributed import Client

    from deepvre.pipelines.dataset import open_split
    from deepvre.pipelines.run import preprocess

    src = tmp_path / "configs"
    own = {}
    for beta in (1.0, 4.0):
        configs, hist = ensembles[beta]
        for fmt in ("deepvre", "ildg"):
            chosen = configs[:4] if fmt == "deepvre" else configs[4:8]
            su2.save_ensemble(str(src / f"b{beta}-{fmt}"), chosen, hist["params"], format=fmt)
            own[beta] = own.get(beta, []) + [su2.plaquette(su2.from_matrix(c)) for c in chosen]
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        preprocess("lattice", str(src), str(tmp_path / "out"), {"target": "plaquette", "split": "0.5,0.25,0.25"},
                   client=client, progress=False)
    got = {1.0: [], 4.0: []}
    for split in ("train", "val", "test"):
        x, y, beta = open_split(str(tmp_path / "out"), split, arrays=("x", "y", "beta"))
        assert x.shape[1:] == (L, L, 16)  # 2 directions x 4 entries x (re, im)
        for b, value in zip(beta, y):
            got[float(b)].append(value)
    for beta in (1.0, 4.0):
        np.testing.assert_allclose(sorted(got[beta]), sorted(own[beta]), atol=1e-12)


def test_cli_writes_an_su2_ensemble(tmp_path, lattice_io):
    from click.testing import CliRunner

    from deepvre.cli import main

    out = tmp_path / "su2"
    args = ["data", "lattice", str(out), "--group", "su2", "--size", "8", "--beta", "2.0", "--configs", "4",
            "--therm", "10", "--format", "ildg"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "exact 0.43313" in result.output  # I2(2)/I1(2)
    links, header = lattice_io.read_config(str(out / "cfg_00003.lime"))
    assert links.shape == (2, 8, 8, 2, 2) and header["group"] == "SU2" and header["metadata"]["beta"] == 2.0
    bad = CliRunner().invoke(main, ["data", "lattice", str(tmp_path / "x"), "--beta", "1", "--format", "ildg"])
    assert bad.exit_code != 0 and "su2 only" in bad.output
