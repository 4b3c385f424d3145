"""The gradient flow of 2D U(1): against the exact small-angle solution, and its defining properties."""

import numpy as np
import pytest

from deepvre.science import lattice as mc
from deepvre.science import lattice_flow as fl


def test_plaquettes_follow_the_one_convention():
    configs, _ = mc.generate(8, 1.0, 3, seed=3, n_therm=5, n_skip=1)
    assert fl.check_plaquettes(configs)


def test_small_angles_flow_as_the_exact_heat_kernel():
    rng = np.random.default_rng(0)
    theta = rng.normal(scale=1e-4, size=(2, 12, 10))
    for t in (0.3, 1.0, 2.5):
        exact = fl.heat_kernel_plaquettes(fl.plaquettes(theta[None])[0], t)
        errors = [np.abs(fl.plaquettes(fl.flow(theta, t, step)[None])[0] - exact).max() / np.abs(exact).max()
                  for step in (0.05, 0.01)]
        assert errors[1] < 1e-6 and errors[1] < errors[0] / 100  # RK4: the error falls as step^4


def test_the_force_is_minus_the_gradient_of_the_action():
    rng = np.random.default_rng(1)
    theta = rng.uniform(-np.pi, np.pi, size=(1, 2, 6, 6))
    f = fl.force(theta)
    for index in [(0, 0, 1, 2), (0, 1, 5, 0), (0, 1, 3, 3)]:
        d = np.zeros_like(theta)
        d[index] = 1e-6
        action = lambda x: fl.energy(x)[0] * 36  # noqa: E731  (S = sum_p (1 - cos theta_p))
        assert -(action(theta + d) - action(theta - d)) / 2e-6 == pytest.approx(f[index], abs=1e-6)


def test_the_flow_lowers_the_action_and_converges_in_the_step():
    configs, _ = mc.generate(16, 2.0, 4, seed=5, n_therm=50, n_skip=3)
    e = [fl.energy(configs)] + [fl.flowed_energy(configs, t) for t in (0.5, 1.0, 2.0)]
    assert all((a > b).all() for a, b in zip(e, e[1:]))
    assert np.allclose(fl.flowed_energy(configs, 2.0, step=0.1), fl.flowed_energy(configs, 2.0, step=0.025),
                       rtol=1e-4)
    assert fl.flow(configs[0], 0.0) == pytest.approx(configs[0])
