"""2D SU(2) Monte Carlo, validated against the exact solution I2(beta)/I1(beta)."""

import functools

import numpy as np
import pytest

from deepvre.science import lattice as u1
from deepvre.science import su2
from tests.prereqs import require
from tests.science import agreement, staples

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
    staples.check_local_action_change(
        su2, mu, lambda old, rng: su2.random_su2((), rng),
        lambda new, old, a, beta: -beta * (su2.qmul(new, a)[0] - su2.qmul(old, a)[0]))


def check_x0(x0, alpha):
    """The shared check of heatbath draws against the density at ``alpha``: Kolmogorov-Smirnov and the mean.

    Returns ``(ok, KS p-value, Verdict of the mean)``; both must pass at about one in a million.
    """
    from scipy import stats
    from scipy.integrate import quad

    weight = lambda x: np.sqrt(1 - x * x) * np.exp(alpha * (x - 1))
    norm = quad(weight, -1, 1)[0]
    grid = np.linspace(-1, 1, 2001)  # interpolating the CDF errs by < 3e-5, far below the KS statistic's 1e-3
    table = np.array([quad(weight, -1, v)[0] / norm for v in grid])
    p = stats.kstest(x0, lambda v: np.interp(v, grid, table)).pvalue
    verdict = agreement.check_mean([x0], su2.exact_plaquette(alpha) if alpha else 0.0, n_bins=1000)  # iid draws
    return p > 1e-6 and verdict.ok, p, verdict


X0_DRAWS = 10**6


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.99, 2.0, 6.0])
def test_heatbath_draws_the_exact_x0_distribution(alpha):
    """Both samplers (Haar rejection below alpha = 2, Kennedy-Pendleton above) against the density."""
    x0 = su2.sample_x0(np.full(X0_DRAWS, alpha), np.random.default_rng(7))
    assert np.all(np.abs(x0) <= 1)
    ok, p, verdict = check_x0(x0, alpha)
    assert ok, f"alpha={alpha}: KS p={p:.2g}, mean {verdict}"


@pytest.mark.parametrize("alpha", [1.99, 2.0, 6.0])
def test_x0_drawn_at_a_two_percent_wrong_alpha_fails_the_check(alpha):
    """At 1.02 alpha the mean moves by 16 errors or more (below alpha = 1 a 2 % change is too small to see)."""
    x0 = su2.sample_x0(np.full(X0_DRAWS, agreement.BIAS * alpha), np.random.default_rng(7))
    ok, p, verdict = check_x0(x0, alpha)
    assert not ok, f"alpha={alpha}: drawn at {agreement.BIAS} alpha, yet KS p={p:.2g}, mean {verdict}"


@pytest.fixture(scope="module")
def ensembles():
    """Small ensembles for the format, pipeline and reproducibility tests (the statistics use :func:`measure`)."""
    return {beta: su2.generate(L, beta, 16, seed=1, n_therm=50, n_skip=2) for beta in BETAS}


# The statistics: independent chains on a 64^2 lattice (2D plaquettes are independent, so a large
# lattice is cheap statistics), each measured every sweep and cut into 10 bins (tau is about 0.6).
STATS_L, SEEDS, N_THERM = 64, (1, 2, 3, 4), 10
SWEEPS = {1.0: 90, 2.0: 40, 4.0: 40}  # per chain: a 2 % change of beta is >= 10 errors at every beta


def measure(beta, generate_at=None, seeds=SEEDS):
    """Per chain: the mean plaquette of every sweep and ``<x^2>`` of every second, generated at ``generate_at``."""
    first, second = [], []
    for seed in seeds:
        configs, hist = su2.generate(STATS_L, generate_at or beta, SWEEPS[beta] // 2, seed=seed, n_therm=N_THERM,
                                     n_skip=2)
        first.append(hist["plaquette"])
        second.append([np.mean(su2.plaquettes(su2.from_matrix(c)) ** 2) for c in configs])
    return {1: first, 2: second}


@pytest.fixture(scope="module")
def measured():
    """``measured(beta)``: :func:`measure` once per beta for the module."""
    return functools.lru_cache(maxsize=None)(measure)


def check_plaquette(series, beta, power=1):
    """The shared check: the plaquette's ``power``-th moment against the exact density's."""
    return agreement.check_mean(series, single_plaquette_moment(beta, power))


@pytest.mark.parametrize("beta", BETAS)
def test_mean_plaquette_matches_bessel_ratio(measured, beta):
    exact = su2.exact_plaquette(beta)
    assert exact == pytest.approx(single_plaquette_moment(beta, 1), rel=1e-8)
    verdict = check_plaquette(measured(beta)[1], beta)
    assert verdict.ok, f"beta={beta}: {verdict}"
    # small enough to matter: a 2 % change of beta moves the plaquette by more than 8 errors
    assert abs(su2.exact_plaquette(agreement.BIAS * beta) - exact) > 8 * verdict.error


@pytest.mark.parametrize("beta", BETAS)
def test_a_two_percent_wrong_beta_fails_the_plaquette_check(beta):
    """The same check on chains generated at 1.02 beta rejects them: the test above has the power it claims."""
    verdict = check_plaquette(measure(beta, generate_at=agreement.BIAS * beta)[1], beta)
    assert not verdict.ok, f"beta={beta}: generated at {agreement.BIAS} beta, yet {verdict}"


@pytest.mark.parametrize("beta", BETAS)
def test_plaquette_spread_matches_the_exact_distribution(measured, beta):
    """In 2D the plaquettes are independent with density sqrt(1 - x^2) exp(beta x): check <x^2> too."""
    verdict = check_plaquette(measured(beta)[2], beta, power=2)
    assert verdict.ok, f"beta={beta}: {verdict}"
    assert verdict.error < 0.001


def test_configurations_are_unitary_and_reproducible(ensembles):
    configs, hist = ensembles[2.0]
    assert configs.shape == (16, 2, L, L, 2, 2) and configs.dtype == np.complex128
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
    from deepvre.science import lattice_observables

    configs, hist = ensembles[4.0]
    paths = su2.save_ensemble(str(tmp_path), configs[:4], hist["params"], format=fmt)
    assert paths[0].endswith(".dvgauge" if fmt == "deepvre" else ".lime")
    for i, path in enumerate(paths):
        links, header = lattice_io.read_config(path)
        np.testing.assert_array_equal(links, configs[i])
        assert header["group"] == "SU2" and header["metadata"]["beta"] == 4.0 and header["metadata"]["index"] == i
        own = su2.plaquette(su2.from_matrix(links))
        assert lattice_observables.plaquette(links) == pytest.approx(own, abs=1e-12)
        assert header["metadata"]["plaquette"] == pytest.approx(own, abs=1e-14)
        assert 0.0 <= lattice_observables.polyakov(links) <= 1.0
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
