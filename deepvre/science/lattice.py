"""Monte Carlo for 2D compact U(1) lattice gauge theory, vectorised with numpy.

Configurations are float64 link angles of shape ``(2, L, L)``: ``theta[mu, x, t]`` is
the link leaving site ``(x, t)`` in direction ``mu`` (0: x, 1: t), periodic in both.
The Wilson action is ``S = -beta * sum_p cos(theta_p)`` with the plaquette angle

    theta_p(x, t) = theta[0, x, t] + theta[1, x+1, t] - theta[0, x, t+1] - theta[1, x, t]

A link's local action is ``-beta * Re(exp(i theta) K)`` with ``K`` the sum of its two
staples, so links of one direction and one checkerboard colour ((x + t) even or odd)
never share a plaquette and are updated together. Three local updates:

* ``metropolis``: propose ``theta + U(-delta, delta)``, accept with ``min(1, exp(-dS))``;
* ``heatbath``: draw ``theta`` exactly from ``exp(beta |K| cos(theta + arg K))`` (von Mises);
* overrelaxation (``n_overrelax`` per sweep): the reflection ``theta -> -2 arg K - theta``,
  which keeps the action and decorrelates faster.

Observables: mean plaquette ``<cos theta_p>`` (exact in infinite volume:
``I1(beta)/I0(beta)``) and the topological charge ``Q = sum_p wrap(theta_p) / 2 pi``
(angles wrapped to (-pi, pi]), an integer on the torus; both from
``deepvre.science.lattice_observables``, the one definition the preprocessing pipeline uses too.
Errors come from binning (:func:`binned_error`) and the integrated autocorrelation time
(:func:`autocorrelation_time`).
"""

import math
import os

import numpy as np

from .lattice_observables import plaquette, topological_charge, u1_plaquette_angles

UPDATES = ("metropolis", "heatbath")


def cold_start(L):
    """All links zero (every plaquette 1)."""
    _check_size(L)
    return np.zeros((2, L, L), dtype=np.float64)


def hot_start(L, rng):
    """Links uniform in [-pi, pi)."""
    _check_size(L)
    return rng.uniform(-np.pi, np.pi, size=(2, L, L))


def _check_size(L):
    if L < 2 or L % 2:
        raise ValueError(f"lattice size L must be even and >= 2 for the checkerboard, got {L}")


def action(theta, beta):
    """Wilson action ``-beta * sum_p cos theta_p``."""
    return float(-beta * np.cos(u1_plaquette_angles(theta)).sum())


def staple_sum(theta, mu):
    """``K`` for every link of direction ``mu``: its local action is ``-beta Re(exp(i theta) K)``."""
    t0, t1 = theta
    if mu == 0:
        # plaquette at (x,t): +theta0(x,t) + t1(x+1,t) - t0(x,t+1) - t1(x,t)
        # plaquette at (x,t-1): -theta0(x,t) + t0(x,t-1) + t1(x+1,t-1) - t1(x,t-1)
        a = np.roll(t1, -1, axis=0) - np.roll(t0, -1, axis=1) - t1
        b = np.roll(t0, 1, axis=1) + np.roll(np.roll(t1, -1, axis=0), 1, axis=1) - np.roll(t1, 1, axis=1)
    else:
        # plaquette at (x-1,t): +theta1(x,t) + t0(x-1,t) - t0(x-1,t+1) - t1(x-1,t)
        # plaquette at (x,t):   -theta1(x,t) + t0(x,t) + t1(x+1,t) - t0(x,t+1)
        a = np.roll(t0, 1, axis=0) - np.roll(np.roll(t0, 1, axis=0), -1, axis=1) - np.roll(t1, 1, axis=0)
        b = t0 + np.roll(t1, -1, axis=0) - np.roll(t0, -1, axis=1)
    return np.exp(1j * a) + np.exp(-1j * b)


def _masks(L):
    x, t = np.indices((L, L))
    even = (x + t) % 2 == 0
    return (even, ~even)


def sweep(theta, beta, rng, update="metropolis", delta=None, n_overrelax=0):
    """One sweep over all links in place; returns the Metropolis acceptance rate (1.0 for heatbath).

    ``delta`` is the Metropolis step (default ``min(pi, 2.5 / sqrt(beta))``, about 50-70 % acceptance).
    """
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, not {update!r}")
    if delta is None:
        delta = min(np.pi, 2.5 / math.sqrt(max(beta, 1e-12)))
    L = theta.shape[1]
    accepted = proposed = 0
    for mu in (0, 1):
        for mask in _masks(L):
            k = staple_sum(theta, mu)[mask]
            old = theta[mu][mask]
            if update == "heatbath":
                kappa = beta * np.abs(k)
                new = rng.vonmises(-np.angle(k), np.maximum(kappa, 1e-300))
            else:
                new = old + rng.uniform(-delta, delta, size=old.shape)
                d_s = -beta * (np.real(np.exp(1j * new) * k) - np.real(np.exp(1j * old) * k))
                accept = rng.random(old.shape) < np.exp(np.minimum(-d_s, 0.0))
                new = np.where(accept, new, old)
                accepted += int(accept.sum())
                proposed += accept.size
            theta[mu][mask] = (new + np.pi) % (2 * np.pi) - np.pi
    for _ in range(n_overrelax):
        for mu in (0, 1):
            for mask in _masks(L):
                k = staple_sum(theta, mu)[mask]
                new = -2 * np.angle(k) - theta[mu][mask]
                theta[mu][mask] = (new + np.pi) % (2 * np.pi) - np.pi
    return accepted / proposed if proposed else 1.0


def exact_plaquette(beta):
    """Infinite-volume ``<cos theta_p>`` of 2D U(1): ``I1(beta) / I0(beta)``."""
    from scipy.special import i0e, i1e

    return float(i1e(beta) / i0e(beta))


def exact_susceptibility(beta):
    """Infinite-volume ``<Q^2>/V`` of 2D U(1) for the charge above: ``<phi^2> / 4 pi^2``, phi ~ exp(beta cos phi)."""
    from scipy.integrate import quad

    weight = lambda phi: math.exp(beta * (math.cos(phi) - 1))
    norm = quad(weight, -math.pi, math.pi)[0]
    second = quad(lambda phi: phi * phi * weight(phi), -math.pi, math.pi)[0]
    return second / norm / (4 * math.pi**2)


def binned_error(series, n_bins=20):
    """Mean and its error from ``n_bins`` equal bins (the error is right once bins outlast the autocorrelation)."""
    series = np.asarray(series, dtype=float)
    size = len(series) // n_bins
    if size < 1:
        raise ValueError(f"{len(series)} measurements cannot fill {n_bins} bins")
    means = series[: size * n_bins].reshape(n_bins, size).mean(axis=1)
    return float(series.mean()), float(means.std(ddof=1) / math.sqrt(n_bins))


def autocorrelation_time(series, c=6.0):
    """Integrated autocorrelation time with Madras-Sokal automatic windowing (window W >= c * tau)."""
    x = np.asarray(series, dtype=float)
    x = x - x.mean()
    n = len(x)
    if n < 4 or not x.any():
        return 0.5
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    acf /= acf[0]
    tau = 0.5
    for w in range(1, n):
        tau += acf[w]
        if w >= c * tau:
            break
    return float(max(tau, 0.5))


def generate(L, beta, n_configs, seed, n_therm=200, n_skip=5, update="heatbath",
             n_overrelax=1, start="hot"):
    """An ensemble: thermalize ``n_therm`` sweeps, then keep a configuration every ``n_skip`` sweeps.

    Returns ``(configs, history)``: ``configs`` float64 ``(n_configs, 2, L, L)``; ``history``
    a dict of per-sweep arrays ``plaquette``, ``charge`` and ``acceptance`` after thermalization,
    plus ``seed`` and the parameters. The same arguments give the same ensemble.
    """
    if n_configs < 1 or n_skip < 1 or n_therm < 0:
        raise ValueError("n_configs and n_skip must be >= 1, n_therm >= 0")
    rng = np.random.default_rng(seed)
    theta = hot_start(L, rng) if start == "hot" else cold_start(L)
    for _ in range(n_therm):
        sweep(theta, beta, rng, update, n_overrelax=n_overrelax)
    configs = np.empty((n_configs, 2, L, L))
    n_sweeps = n_configs * n_skip
    plaq, charge, acc = np.empty(n_sweeps), np.empty(n_sweeps), np.empty(n_sweeps)
    for i in range(n_sweeps):
        acc[i] = sweep(theta, beta, rng, update, n_overrelax=n_overrelax)
        plaq[i], charge[i] = plaquette(theta), topological_charge(theta)
        if (i + 1) % n_skip == 0:
            configs[i // n_skip] = theta
    params = {"L": L, "beta": beta, "seed": seed, "n_therm": n_therm, "n_skip": n_skip,
              "update": update, "n_overrelax": n_overrelax, "start": start}
    return configs, {"plaquette": plaq, "charge": charge, "acceptance": acc, "params": params}


def save_ensemble(out_dir, configs, params):
    """Write each configuration as ``cfg_00000.dvgauge`` (deepvre gauge format) with its metadata.

    Uses ``deepvre.pipelines.lattice_io.write_config``; returns the list of paths.
    """
    from ..pipelines import lattice_io

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i, links in enumerate(configs):
        path = os.path.join(out_dir, f"cfg_{i:05d}.dvgauge")
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; choose an empty folder")
        meta = dict(params, index=i, generator="deepvre.science.lattice", group="U1",
                    plaquette=plaquette(links), charge=topological_charge(links))
        lattice_io.write_config(path, links, meta)
        paths.append(path)
    return paths
