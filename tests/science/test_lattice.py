"""2D compact U(1) Monte Carlo, validated against the exact solution."""

import numpy as np
import pytest

from deepvre.science import lattice as lt
from tests.prereqs import require
from tests.science import agreement, staples

L = 16


@pytest.mark.parametrize("mu", [0, 1])
def test_staples_give_the_exact_local_action_change(mu):
    staples.check_local_action_change(
        lt, mu, lambda old, rng: old + 0.7,
        lambda new, old, k, beta: -beta * np.real((np.exp(1j * new) - np.exp(1j * old)) * k))


@pytest.fixture(scope="module")
def ensembles():
    """Small ensembles for the format and reproducibility tests (the statistics use :func:`measure`)."""
    return {("heatbath", 2.0): lt.generate(L, 2.0, 16, seed=1, n_therm=200, n_skip=5, update="heatbath"),
            ("metropolis", 1.0): lt.generate(L, 1.0, 16, seed=1, n_therm=200, n_skip=5, update="metropolis",
                                             n_overrelax=0)}


# The statistics: independent chains on a 64^2 lattice (2D plaquettes are independent, so a large
# lattice is cheap statistics), measured every sweep and cut into 10 bins each, longer than tau
# (about 0.7 sweeps for heatbath with overrelaxation, 1 to 2.5 for Metropolis).
STATS_L, SEEDS = 64, (1, 2, 3, 4)
N_THERM = {"heatbath": 20, "metropolis": 100}  # from a hot start Metropolis at beta = 4 needs about 100 sweeps
SWEEPS = {("heatbath", 1.0): 70, ("heatbath", 2.0): 50, ("heatbath", 4.0): 60,  # per chain: a 2 % change
          ("metropolis", 1.0): 150, ("metropolis", 2.0): 100, ("metropolis", 4.0): 180}  # of beta is >= 10 errors


def measure(update, beta, generate_at=None, seeds=SEEDS):
    """Per chain, the mean plaquette of every sweep, generated at ``generate_at`` (default ``beta``)."""
    n_or = 1 if update == "heatbath" else 0
    return [lt.generate(STATS_L, generate_at or beta, SWEEPS[update, beta], seed=seed, n_therm=N_THERM[update],
                        n_skip=1, update=update, n_overrelax=n_or)[1]["plaquette"] for seed in seeds]


def check_plaquette(chains, beta):
    """The shared check: the mean plaquette of the chains against I1(beta)/I0(beta)."""
    return agreement.check_mean(chains, lt.exact_plaquette(beta))


@pytest.mark.parametrize("update", ["metropolis", "heatbath"])
@pytest.mark.parametrize("beta", [1.0, 2.0, 4.0])
def test_mean_plaquette_matches_bessel_ratio(update, beta):
    verdict = check_plaquette(measure(update, beta), beta)
    assert verdict.ok, f"{update} beta={beta}: {verdict}"
    # small enough to matter: a 2 % change of beta moves the plaquette by more than 8 errors
    assert abs(lt.exact_plaquette(agreement.BIAS * beta) - lt.exact_plaquette(beta)) > 8 * verdict.error


@pytest.mark.parametrize("update", ["metropolis", "heatbath"])
@pytest.mark.parametrize("beta", [1.0, 2.0, 4.0])
def test_a_two_percent_wrong_beta_fails_the_plaquette_check(update, beta):
    """The same check on chains generated at 1.02 beta rejects them: the test above has the power it claims."""
    verdict = check_plaquette(measure(update, beta, generate_at=agreement.BIAS * beta), beta)
    assert not verdict.ok, f"{update} beta={beta}: generated at {agreement.BIAS} beta, yet {verdict}"


# The topological susceptibility: Q^2 / V fluctuates by sqrt(2) of its mean per configuration
# whatever the volume, so it needs many sweeps of a small lattice; 4 chains of 1000 give 2.5 %.
CHARGE_SWEEPS = 1000


def measure_charge(beta, seeds=SEEDS):
    """Per chain, ``Q^2 / V`` of every sweep (heatbath with overrelaxation on a 16^2 lattice)."""
    return [lt.generate(L, beta, CHARGE_SWEEPS, seed=seed, n_therm=50, n_skip=1)[1]["charge"] ** 2 / L**2
            for seed in seeds]


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_topological_susceptibility(beta):
    chains = measure_charge(beta)
    np.testing.assert_allclose(np.concatenate(chains), np.round(np.concatenate(chains) * L**2) / L**2,
                               atol=1e-8)  # Q is an integer on the torus
    verdict = agreement.check_mean(chains, lt.exact_susceptibility(beta))
    assert verdict.ok, f"beta={beta}: {verdict}"
    assert verdict.error < 0.04 * verdict.exact  # about 2.5 %: a 40 % change of beta moves Q^2 by 10 errors


def ar1(rho, n, seed):
    """An AR(1) series ``x_t = rho x_(t-1) + e_t``: tau = (1 + rho) / (2 (1 - rho)), var = 1 / (1 - rho^2)."""
    from scipy.signal import lfilter

    return lfilter([1.0], [1.0, -rho], np.random.default_rng(seed).normal(size=n))


def test_error_tools_on_a_series_with_known_autocorrelation():
    x = ar1(0.8, 400_000, seed=9)  # tau = 4.5 sweeps
    exact_err = np.sqrt(2 * 4.5 / (1 - 0.64) / len(x))
    mean, err = lt.binned_error(x, n_bins=200)  # bins of 2000: 5 % uncertain
    assert abs(mean) < 5 * exact_err and 0.75 < err / exact_err < 1.25
    assert lt.autocorrelation_time(x) == pytest.approx(4.5, rel=0.15)  # about 2.5 % uncertain
    assert lt.autocorrelation_time(np.random.default_rng(1).normal(size=10_000)) == pytest.approx(0.5, abs=0.1)


def test_configurations_shape_and_determinism(ensembles):
    configs, hist = ensembles["heatbath", 2.0]
    assert configs.shape == (16, 2, L, L) and configs.dtype == np.float64
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
