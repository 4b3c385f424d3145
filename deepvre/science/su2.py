"""Monte Carlo for 2D SU(2) lattice gauge theory, vectorised with numpy.

Links are SU(2) matrices ``U = a0 + i (a1 s1 + a2 s2 + a3 s3)`` (``s`` the Pauli matrices),
held internally as unit quaternions ``a``: float64 arrays of shape ``(2, L, L, 4)``, periodic
in both directions. On the way out they become the array contract of
``deepvre.pipelines.lattice_io``: complex128 ``(2, L, L, 2, 2)``, direction first, ``(x, t)``::

    U = [[a0 + i a3,  a2 + i a1],
         [-a2 + i a1, a0 - i a3]]

The Wilson action is ``S = beta * sum_p (1 - 1/2 Re Tr U_p)`` with
``U_p(x) = U_mu(x) U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+``. A link's local action is
``-beta/2 Re Tr(U A)`` with ``A`` the sum of its two staples; a sum of SU(2) matrices is
``k V`` with ``V`` in SU(2), so with ``X = U V`` it is ``-beta k x0``. Links of one direction
and one checkerboard colour ((x + t) even or odd) share no plaquette and are updated together:

* heatbath: ``x0`` drawn from ``sqrt(1 - x0^2) exp(beta k x0)`` (Kennedy-Pendleton for
  ``beta k >= 2``; Haar proposals accepted with ``exp(beta k (x0 - 1))`` below), the rest of
  ``X`` uniform on the sphere, then ``U = X V^+``;
* overrelaxation (``n_overrelax`` per sweep): ``U -> V^+ U^+ V^+``, which keeps the action.

Every updated link is renormalised to a unit quaternion, so unitarity does not drift.
In two dimensions the theory is solvable: in infinite volume the mean plaquette
``<1/2 Tr U_p>`` is ``I2(beta) / I1(beta)`` (:func:`exact_plaquette`).
"""

import os

import numpy as np

from .lattice import _check_size, _masks

# --- quaternion algebra (last axis: a0, a1, a2, a3) ------------------------------------------

def qmul(a, b):
    """Product of quaternions ``a b``, matching the product of their SU(2) matrices."""
    a0, a1, a2, a3 = np.moveaxis(a, -1, 0)
    b0, b1, b2, b3 = np.moveaxis(b, -1, 0)
    # scalar a0 b0 - a.b, vector a0 b + b0 a - a x b
    return np.stack([a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
                     a0 * b1 + b0 * a1 - (a2 * b3 - a3 * b2),
                     a0 * b2 + b0 * a2 - (a3 * b1 - a1 * b3),
                     a0 * b3 + b0 * a3 - (a1 * b2 - a2 * b1)], axis=-1)


def qdag(a):
    """Hermitian conjugate (the inverse of a unit quaternion)."""
    return a * np.array([1.0, -1.0, -1.0, -1.0])


def normalize(a):
    """Project onto unit quaternions (reunitarization)."""
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def to_matrix(a):
    """Unit quaternions ``(..., 4)`` to complex128 SU(2) matrices ``(..., 2, 2)``."""
    a = np.asarray(a, dtype=np.float64)
    u = np.empty(a.shape[:-1] + (2, 2), dtype=np.complex128)
    u[..., 0, 0] = a[..., 0] + 1j * a[..., 3]
    u[..., 0, 1] = a[..., 2] + 1j * a[..., 1]
    u[..., 1, 0] = -a[..., 2] + 1j * a[..., 1]
    u[..., 1, 1] = a[..., 0] - 1j * a[..., 3]
    return u


def from_matrix(u):
    """SU(2) matrices ``(..., 2, 2)`` to quaternions ``(..., 4)``; ValueError if they are not SU(2)."""
    u = np.asarray(u)
    if u.shape[-2:] != (2, 2):
        raise ValueError(f"SU(2) links must end in (2, 2), not shape {u.shape}")
    a = np.stack([u[..., 0, 0].real, u[..., 0, 1].imag, u[..., 0, 1].real, u[..., 0, 0].imag], axis=-1)
    if not np.allclose(to_matrix(a), u, atol=1e-10) or not np.allclose(np.linalg.norm(a, axis=-1), 1, atol=1e-10):
        raise ValueError("links are not SU(2) matrices (need [[a, b], [-b*, a*]] with |a|^2 + |b|^2 = 1)")
    return a


# --- configurations and observables ---------------------------------------------------------

def cold_start(L):
    """All links the identity (every plaquette 1)."""
    _check_size(L)
    q = np.zeros((2, L, L, 4))
    q[..., 0] = 1.0
    return q


def random_su2(shape, rng):
    """Haar-random SU(2) quaternions of ``shape + (4,)`` (a normalised 4D Gaussian)."""
    return normalize(rng.normal(size=tuple(shape) + (4,)))


def hot_start(L, rng):
    """Haar-random links."""
    _check_size(L)
    return random_su2((2, L, L), rng)


def _shift(q, mu, step):
    """``q`` at ``x + step * mu`` (periodic)."""
    return np.roll(q, -step, axis=mu)


def plaquettes(q):
    """``1/2 Tr U_p`` for every plaquette, shape ``(L, L)``."""
    u0, u1 = q
    p = qmul(qmul(u0, _shift(u1, 0, 1)), qmul(qdag(_shift(u0, 1, 1)), qdag(u1)))
    return p[..., 0]


def plaquette(q):
    """Mean plaquette ``<1/2 Tr U_p>`` of one configuration."""
    return float(plaquettes(q).mean())


def action(q, beta):
    """Wilson action ``beta * sum_p (1 - 1/2 Re Tr U_p)``."""
    return float(beta * (1.0 - plaquettes(q)).sum())


def staple_sum(q, mu):
    """``A`` (a non-unit quaternion) for every link of direction ``mu``: local action ``-beta/2 Re Tr(U A)``."""
    nu = 1 - mu
    u_mu, u_nu = q[mu], q[nu]
    # U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+  and  U_nu(x+mu-nu)^+ U_mu(x-nu)^+ U_nu(x-nu)
    up = qmul(_shift(u_nu, mu, 1), qmul(qdag(_shift(u_mu, nu, 1)), qdag(u_nu)))
    down_nu = _shift(u_nu, nu, -1)
    down = qmul(qdag(_shift(down_nu, mu, 1)), qmul(qdag(_shift(u_mu, nu, -1)), down_nu))
    return up + down


def sample_x0(alpha, rng):
    """``x0`` in [-1, 1] with density ``sqrt(1 - x0^2) exp(alpha x0)``, for an array ``alpha >= 0``."""
    alpha = np.asarray(alpha, dtype=float)
    x0 = np.empty(alpha.shape)
    todo = np.arange(alpha.size)
    flat = alpha.ravel()
    while todo.size:
        a = flat[todo]
        kp = a >= 2.0
        r1, r2, r3, r4 = (1.0 - rng.random(todo.size) for _ in range(4))  # in (0, 1]
        # Kennedy-Pendleton: X = 1 - x0 from exp(-alpha X) sqrt(X), accept with sqrt(1 - X/2)
        big = np.where(kp, a, 1.0)
        lam = -(np.log(r1) + np.cos(2 * np.pi * r2) ** 2 * np.log(r3)) / big
        ok_kp = r4**2 <= 1.0 - lam / 2
        # small alpha: Haar proposal (x0 ~ sqrt(1 - x0^2) is cos of a 4D direction), accept exp(alpha (x0 - 1))
        haar = np.cos(_haar_angle(rng, todo.size))
        ok_haar = r4 <= np.exp(a * (haar - 1.0))
        value = np.where(kp, 1.0 - lam, haar)
        ok = np.where(kp, ok_kp, ok_haar)
        x0.ravel()[todo[ok]] = value[ok]
        todo = todo[~ok]
    return x0


def _haar_angle(rng, n):
    """Angle ``psi`` in [0, pi] with density ``sin^2 psi`` (so ``cos psi`` has density ``sqrt(1 - x^2)``)."""
    g = rng.normal(size=(n, 4))
    return np.arccos(np.clip(g[:, 0] / np.linalg.norm(g, axis=1), -1.0, 1.0))


def heatbath_links(staples, beta, rng):
    """New links drawn exactly from ``exp(beta/2 Re Tr(U A))`` for staple sums ``A`` ``(n, 4)``."""
    k = np.linalg.norm(staples, axis=-1)
    v = staples / np.maximum(k, 1e-300)[:, None]
    x0 = sample_x0(beta * k, rng)
    direction = rng.normal(size=(len(k), 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    x = np.concatenate([x0[:, None], np.sqrt(np.maximum(1.0 - x0**2, 0.0))[:, None] * direction], axis=1)
    return normalize(qmul(x, qdag(v)))


def overrelax_links(links, staples):
    """The reflection ``U -> V^+ U^+ V^+`` (``V = A / |A|``), which keeps ``Re Tr(U A)``."""
    v = normalize(staples)
    return normalize(qmul(qdag(v), qmul(qdag(links), qdag(v))))


def sweep(q, beta, rng, n_overrelax=1):
    """One heatbath sweep plus ``n_overrelax`` overrelaxation sweeps over all links, in place."""
    masks = _masks(q.shape[1])
    for mu in (0, 1):
        for mask in masks:
            q[mu][mask] = heatbath_links(staple_sum(q, mu)[mask], beta, rng)
    for _ in range(n_overrelax):
        for mu in (0, 1):
            for mask in masks:
                q[mu][mask] = overrelax_links(q[mu][mask], staple_sum(q, mu)[mask])


def exact_plaquette(beta):
    """Infinite-volume ``<1/2 Tr U_p>`` of 2D SU(2): ``I2(beta) / I1(beta)``."""
    from scipy.special import ive

    return float(ive(2, beta) / ive(1, beta))


def generate(L, beta, n_configs, seed, n_therm=100, n_skip=2, n_overrelax=1, start="hot"):
    """An ensemble: thermalize ``n_therm`` sweeps, then keep a configuration every ``n_skip`` sweeps.

    Returns ``(configs, history)``: ``configs`` complex128 ``(n_configs, 2, L, L, 2, 2)`` (the
    ``lattice_io`` contract); ``history`` the per-sweep ``plaquette`` after thermalization and the
    ``params``. The same arguments give the same ensemble.
    """
    if n_configs < 1 or n_skip < 1 or n_therm < 0:
        raise ValueError("n_configs and n_skip must be >= 1, n_therm >= 0")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if start not in ("hot", "cold"):
        raise ValueError(f"start must be hot or cold, not {start!r}")
    rng = np.random.default_rng(seed)
    q = hot_start(L, rng) if start == "hot" else cold_start(L)
    for _ in range(n_therm):
        sweep(q, beta, rng, n_overrelax)
    configs = np.empty((n_configs, 2, L, L, 2, 2), dtype=np.complex128)
    plaq = np.empty(n_configs * n_skip)
    for i in range(len(plaq)):
        sweep(q, beta, rng, n_overrelax)
        plaq[i] = plaquette(q)
        if (i + 1) % n_skip == 0:
            configs[i // n_skip] = to_matrix(q)
    params = {"L": L, "beta": beta, "seed": seed, "n_therm": n_therm, "n_skip": n_skip,
              "n_overrelax": n_overrelax, "start": start, "update": "heatbath"}
    return configs, {"plaquette": plaq, "params": params}


def save_ensemble(out_dir, configs, params, format="deepvre"):
    """Write each configuration as ``cfg_00000.dvgauge`` (or ``.lime`` for ``format="ildg"``).

    Uses ``deepvre.pipelines.lattice_io.write_config``; metadata carries ``params``, the index,
    ``group: SU2`` and the plaquette. Refuses to overwrite; returns the list of paths.
    """
    from ..pipelines import lattice_io

    suffix = {"deepvre": ".dvgauge", "ildg": ".lime"}.get(format)
    if suffix is None:
        raise ValueError(f"format must be deepvre or ildg, not {format!r}")
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"cfg_{i:05d}{suffix}") for i in range(len(configs))]
    taken = [p for p in paths if os.path.exists(p)]
    if taken:
        raise FileExistsError(f"{taken[0]} exists; choose an empty folder")
    for i, (path, links) in enumerate(zip(paths, configs)):
        meta = dict(params, index=i, generator="deepvre.science.su2", group="SU2",
                    plaquette=plaquette(from_matrix(links)))
        lattice_io.write_config(path, links, meta, format=format)
    return paths


def unitarity_error(links):
    """Largest ``|U^+ U - 1|`` and ``|det U - 1|`` over complex links ``(..., 2, 2)``."""
    links = np.asarray(links)
    eye = np.eye(links.shape[-1])
    gram = np.conj(np.swapaxes(links, -1, -2)) @ links
    return float(max(np.abs(gram - eye).max(), np.abs(np.linalg.det(links) - 1).max()))

