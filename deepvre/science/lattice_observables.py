"""Observables of lattice gauge configurations: the one definition, used by the Monte Carlo
(``deepvre.science.lattice``, ``deepvre.science.su2``) and the preprocessing pipeline
(``deepvre.pipelines.lattice``).

Links follow the array contract of ``deepvre.pipelines.lattice_io``: direction first, then the
sites (time = the last dimension), periodic in every direction. U(1): real link angles
``theta[mu, *x]``; SU(N): complex matrices ``U[mu, *x, N, N]``.

The convention, for sites ``x`` and planes ``mu < nu`` (``x + mu``: one step in direction ``mu``):

* plaquette angle (U(1)): ``theta_p = theta_mu(x) + theta_nu(x + mu) - theta_mu(x + nu) - theta_nu(x)``,
  not wrapped; SU(N): ``U_p = U_mu(x) U_nu(x + mu) U_mu(x + nu)^+ U_nu(x)^+``;
* plaquette: mean over sites and planes of ``Re tr U_p / N`` (U(1): ``cos theta_p``); 1 for a cold
  (unit) configuration;
* Polyakov loop: ``|mean over spatial sites of tr(prod_t U_t(x, t)) / N|``;
* topological charge (2D U(1) only, else NaN): ``Q = sum_p wrap(theta_p) / 2 pi`` with angles
  wrapped to **(-pi, pi]** (the principal value: a plaquette angle of exactly ``+-pi`` counts as
  ``+pi``), rounded to 9 decimals; an integer on the torus.
"""

import numpy as np


def wrap(angle):
    """Angles wrapped to (-pi, pi]: ``pi`` and ``-pi`` both give ``pi``."""
    return np.pi - np.mod(np.pi - np.asarray(angle, dtype=np.float64), 2 * np.pi)


def u1_plaquette_angles(theta):
    """Plaquette angles ``theta_p`` (not wrapped) of U(1) link angles, shape ``(n_planes, *dims)``
    with the planes ``mu < nu`` in order (one plane in 2D)."""
    d = theta.shape[0]
    planes = []
    for mu in range(d):
        for nu in range(mu + 1, d):
            planes.append(theta[mu] + np.roll(theta[nu], -1, axis=mu)
                          - np.roll(theta[mu], -1, axis=nu) - theta[nu])
    return np.stack(planes)


def _dagger(u):
    return np.conj(np.swapaxes(u, -1, -2))


def plaquette(links):
    """Mean plaquette: ``<cos theta_p>`` (U(1)) or ``<Re tr U_p / N>`` (SU(N)); 1 when cold."""
    links = np.asarray(links)
    if np.isrealobj(links):
        return float(np.mean(np.cos(u1_plaquette_angles(links))))
    d, n = links.shape[0], links.shape[-1]
    values = []
    for mu in range(d):
        for nu in range(mu + 1, d):
            p = (links[mu] @ np.roll(links[nu], -1, axis=mu)
                 @ _dagger(np.roll(links[mu], -1, axis=nu)) @ _dagger(links[nu]))
            values.append(np.trace(p, axis1=-2, axis2=-1).real / n)
    return float(np.mean(values))


def polyakov(links):
    """Modulus of the mean Polyakov loop (time = last dimension)."""
    links = np.asarray(links)
    d = links.shape[0]
    if np.isrealobj(links):
        loops = np.exp(1j * links[d - 1].sum(axis=d - 1))
        return float(abs(loops.mean()))
    u = links[d - 1]
    prod = u[..., 0, :, :]
    for t in range(1, u.shape[d - 1]):
        prod = prod @ u[..., t, :, :]
    return float(abs(np.trace(prod, axis1=-2, axis2=-1).mean() / links.shape[-1]))


def topological_charge(links):
    """2D U(1): ``sum_p wrap(theta_p) / 2 pi``, wrapped to (-pi, pi], rounded to 9 decimals; else NaN."""
    links = np.asarray(links)
    if not np.isrealobj(links) or links.shape[0] != 2:
        return float("nan")
    return float(np.round(wrap(u1_plaquette_angles(links)).sum() / (2 * np.pi), 9)) + 0.0


def observables(links):
    """``{"plaquette", "polyakov", "charge"}`` of one configuration."""
    return {"plaquette": plaquette(links), "polyakov": polyakov(links), "charge": topological_charge(links)}
