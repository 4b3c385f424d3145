"""The one set of lattice observables: its angle convention on hand-built configurations, and the
Monte Carlo (``science.lattice``) and the pipeline (``pipelines.lattice``) giving the same numbers."""

import numpy as np
import pytest

from deepvre.science import lattice as mc
from deepvre.science import lattice_observables as obs

L = 4


def one_link(angle):
    """A cold L x L configuration but one x-link at the origin: two plaquettes, angles +angle and -angle."""
    theta = np.zeros((2, L, L))
    theta[0, 0, 0] = angle
    return theta


def test_wrap_is_the_principal_value():
    angles = np.array([0.0, np.pi, -np.pi, 3 * np.pi, -3 * np.pi, 2 * np.pi, np.pi / 2, -np.pi / 2, -3 * np.pi / 2])
    np.testing.assert_allclose(obs.wrap(angles), [0.0, np.pi, np.pi, np.pi, np.pi, 0.0, np.pi / 2, -np.pi / 2,
                                                  np.pi / 2], atol=1e-12)
    inside = np.linspace(-3.1, 3.1, 25) + 2 * np.pi * np.arange(-12, 13)
    np.testing.assert_allclose(obs.wrap(inside), np.angle(np.exp(1j * inside)), atol=1e-12)


def test_unit_configurations():
    cold = np.zeros((2, L, L))
    assert obs.plaquette(cold) == 1.0 and obs.polyakov(cold) == 1.0
    assert obs.topological_charge(cold) == 0.0 and not np.signbit(obs.topological_charge(cold))
    identity = np.broadcast_to(np.eye(3, dtype=complex), (2, L, L, 3, 3))
    assert obs.plaquette(identity) == pytest.approx(1.0) and obs.polyakov(identity) == pytest.approx(1.0)
    assert np.isnan(obs.topological_charge(identity))


def test_plaquette_angles_follow_the_documented_orientation():
    theta = one_link(0.3)
    (angles,) = obs.u1_plaquette_angles(theta)
    # theta_p(x, t) = theta_0(x, t) + theta_1(x+1, t) - theta_0(x, t+1) - theta_1(x, t)
    expected = np.zeros((L, L))
    expected[0, 0], expected[0, L - 1] = 0.3, -0.3
    np.testing.assert_allclose(angles, expected)
    theta = np.zeros((2, L, L))
    theta[1, 1, 0] = 0.3  # the time link at x + 1 enters the plaquette at x with +
    assert obs.u1_plaquette_angles(theta)[0, 0, 0] == pytest.approx(0.3)


@pytest.mark.parametrize("angle", [0.3, -2.0, 3.0])
def test_one_link_below_pi_has_no_charge(angle):
    theta = one_link(angle)
    assert obs.plaquette(theta) == pytest.approx(1 - 2 * (1 - np.cos(angle)) / L**2)
    assert obs.topological_charge(theta) == 0.0


@pytest.mark.parametrize("angle", [np.pi, -np.pi])
def test_plaquette_angles_of_exactly_pi_count_as_plus_pi(angle):
    """Angles +-pi wrap to +pi, so both plaquettes add +1/2: Q = +1 ([-pi, pi) would give -1)."""
    theta = one_link(angle)
    assert obs.plaquette(theta) == pytest.approx(1 - 4 / L**2)
    assert obs.topological_charge(theta) == 1.0


def test_monte_carlo_and_pipeline_agree(tmp_path):
    """The charge and plaquette the generator records, and those the pipeline computes from the files."""
    from deepvre.pipelines import lattice as pipeline

    rng = np.random.default_rng(5)
    configs = [one_link(np.pi), one_link(-np.pi), one_link(0.3), mc.hot_start(L, rng), mc.hot_start(L, rng)]
    params = {"L": L, "beta": 1.0}
    paths = mc.save_ensemble(str(tmp_path), configs, params)
    data, counts, bad = pipeline.lattice_shard(str(tmp_path), [p.rsplit("/", 1)[1] for p in paths],
                                               {"target": "charge"})
    assert counts == {"configurations": len(configs)} and bad == []
    plaquettes, _, charges = data["observables"].T
    np.testing.assert_array_equal(charges, [mc.topological_charge(c) for c in configs])
    np.testing.assert_array_equal(plaquettes, [mc.plaquette(c) for c in configs])
    assert list(charges[:3]) == [1.0, 1.0, 0.0]
    for config in configs:
        assert pipeline.observables(config) == obs.observables(config)
        assert mc.topological_charge(config) == float(np.round(mc.topological_charge(config)))
