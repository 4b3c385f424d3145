"""Gradient (Wilson) flow of 2D U(1) gauge configurations: a smoothed, non-local observable.

    flowed = flow(theta, t=2.0)            # (n, 2, L, L) or (2, L, L) link angles, flowed to time t
    e = flowed_energy(theta, t=2.0)        # per configuration: mean of 1 - cos(plaquette angle) at time t

The flow integrates ``d theta_l / dt = -d S / d theta_l`` with ``S = sum_p (1 - cos theta_p)``
(classical RK4 on the angles; U(1) is abelian, so no Lie-group integrator is needed). For the
plaquette convention of ``deepvre.science.lattice_observables`` (``theta_p(x, t) = theta_0(x, t) +
theta_1(x + 1, t) - theta_0(x, t + 1) - theta_1(x, t)``), with ``s = sin theta_p``::

    d theta_0(x, t) / dt = -(s(x, t) - s(x, t - 1))        d theta_1(x, t) / dt = -(s(x - 1, t) - s(x, t))

For small angles the plaquette field obeys the lattice heat equation ``d theta_p / dt = Laplacian
theta_p``, whose exact solution (:func:`heat_kernel_plaquettes`, by FFT) the tests compare with.
The flowed energy at time ``t`` averages the plaquettes over a radius of about ``sqrt(4 t)``: it
depends on how plaquette angles are arranged, not only on their histogram.
"""

import numpy as np

from .lattice_observables import u1_plaquette_angles


def _batched(theta):
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim == 3:
        return theta[None], True
    if theta.ndim != 4 or theta.shape[1] != 2:
        raise ValueError(f"2D U(1) link angles must have shape (2, L, L) or (n, 2, L, L), not {theta.shape}")
    return theta, False


def plaquettes(theta):
    """Plaquette angles (not wrapped) of ``(n, 2, L, L)`` link angles: ``(n, L, L)``."""
    t0, t1 = theta[:, 0], theta[:, 1]
    return t0 + np.roll(t1, -1, axis=1) - np.roll(t0, -1, axis=2) - t1


def force(theta):
    """``-d S / d theta`` for every link, ``S = sum_p (1 - cos theta_p)``: shape of ``theta``."""
    s = np.sin(plaquettes(theta))
    return np.stack([-(s - np.roll(s, 1, axis=2)), -(np.roll(s, 1, axis=1) - s)], axis=1)


def flow(theta, t, step=0.05):
    """The link angles flowed to time ``t`` (RK4, ``ceil(t / step)`` equal steps)."""
    theta, single = _batched(theta)
    if t < 0:
        raise ValueError(f"flow time must be >= 0, got {t}")
    n = max(1, int(np.ceil(t / step - 1e-9))) if t > 0 else 0
    h = t / n if n else 0.0
    x = theta.copy()
    for _ in range(n):
        k1 = force(x)
        k2 = force(x + h / 2 * k1)
        k3 = force(x + h / 2 * k2)
        k4 = force(x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[0] if single else x


def energy(theta):
    """Mean over plaquettes of ``1 - cos theta_p``, per configuration."""
    theta, single = _batched(theta)
    e = (1 - np.cos(plaquettes(theta))).mean(axis=(1, 2))
    return float(e[0]) if single else e


def flowed_energy(theta, t, step=0.05):
    """:func:`energy` after :func:`flow` to time ``t``."""
    return energy(flow(theta, t, step))


def heat_kernel_plaquettes(phi, t):
    """The exact solution of ``d phi / dt = Laplacian phi`` on the periodic ``L x L`` lattice at time
    ``t`` (FFT), for a plaquette field ``phi`` ``(L, L)``: the small-angle limit of the flow."""
    L0, L1 = phi.shape
    k0 = 2 * np.pi * np.fft.fftfreq(L0)[:, None]
    k1 = 2 * np.pi * np.fft.fftfreq(L1)[None, :]
    decay = np.exp(-t * (4 * np.sin(k0 / 2) ** 2 + 4 * np.sin(k1 / 2) ** 2))
    return np.real(np.fft.ifft2(np.fft.fft2(phi) * decay))


def check_plaquettes(theta):
    """:func:`plaquettes` agrees with ``lattice_observables.u1_plaquette_angles`` (one convention)."""
    theta, _ = _batched(theta)
    return all(np.allclose(p, u1_plaquette_angles(c)[0]) for p, c in zip(plaquettes(theta), theta))


def neighbour_statistics(theta):
    """Per configuration, the cheapest non-local statistics: over the two neighbour directions of the
    plaquette lattice, the means of ``cos(theta_p - theta_p')``, ``sin theta_p sin theta_p'`` and
    ``cos theta_p cos theta_p'`` for neighbouring plaquettes ``p, p'``. ``(n, 6)``."""
    theta, _ = _batched(theta)
    phi = plaquettes(theta)
    rows = []
    for axis in (1, 2):
        other = np.roll(phi, -1, axis=axis)
        rows += [np.cos(phi - other).mean(axis=(1, 2)), (np.sin(phi) * np.sin(other)).mean(axis=(1, 2)),
                 (np.cos(phi) * np.cos(other)).mean(axis=(1, 2))]
    return np.stack(rows, axis=1)
