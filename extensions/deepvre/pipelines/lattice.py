"""Lattice configurations (lattice QCD): observables and field tensors for deep learning.

Observables per configuration (array contract in ``lattice_io``):

* plaquette: mean over sites and planes mu < nu of Re tr(U_mu(x) U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+) / N
  (U(1): cos of the plaquette angle); a cold configuration gives 1.
* Polyakov loop: |mean over spatial sites of tr(prod_t U_t(x, t)) / N| (time = last dimension).
* topological charge (2D U(1) only): sum of plaquette angles wrapped to (-pi, pi], over 2 pi.

The pipeline reads deepvre and ILDG files from INPUT (damaged files are bad records),
writes ``x`` = field tensors (U(1): cos and sin of each link angle; SU(N): real and
imaginary parts of the matrix entries, channels last), ``y`` = the ``target``
observable, ``observables`` = (plaquette, Polyakov, charge) and ``beta``.
"""

import os

import numpy as np

from .lattice_io import read_config, read_header
from .params import resolve
from .registry import register_pipeline
from .run import Plan, Shard
from .splits import shards_by_split, stratified_split

OBSERVABLES = ("plaquette", "polyakov", "charge")
EXTENSIONS = (".dvgauge", ".lime", ".ildg")
DEFAULTS = {
    "target": "charge",  # y: plaquette, polyakov, charge or beta
    "split": (0.8, 0.1, 0.1),
    "seed": 0,
    "shard_size": 32,
}


def wrap(angle):
    """Angles wrapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - angle, 2 * np.pi)


def u1_plaquette_angles(theta):
    """Plaquette angles of a U(1) configuration, shape ``(n_planes, *dims)``."""
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
    """Mean plaquette (1 for a cold configuration)."""
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
    """2D U(1): sum of wrapped plaquette angles / 2 pi (an integer up to rounding); else NaN."""
    links = np.asarray(links)
    if not np.isrealobj(links) or links.shape[0] != 2:
        return float("nan")
    return float(wrap(u1_plaquette_angles(links)).sum() / (2 * np.pi))


def observables(links):
    return {"plaquette": plaquette(links), "polyakov": polyakov(links), "charge": topological_charge(links)}


def field_tensor(links):
    """Channels-last float32 tensor for deep learning: ``(*dims, channels)``."""
    links = np.asarray(links)
    d = links.shape[0]
    if np.isrealobj(links):
        parts = np.concatenate([np.cos(links), np.sin(links)])  # (2D, *dims)
    else:
        n = links.shape[-1]
        flat = np.moveaxis(links, 0, -3).reshape(links.shape[1:-2] + (d * n * n,))
        return np.concatenate([flat.real, flat.imag], axis=-1).astype(np.float32)
    return np.moveaxis(parts, 0, -1).astype(np.float32)


def lattice_shard(root, files, params):
    xs, obs, betas, bad = [], [], [], []
    for rel in files:
        try:
            links, header = read_config(os.path.join(root, rel))
            values = observables(links)
            x = field_tensor(links)
            if xs and x.shape != xs[0].shape:
                raise ValueError(f"lattice shape {x.shape} differs from {xs[0].shape}")
        except Exception as err:  # noqa: BLE001 - a damaged file is a bad record
            bad.append({"record": rel, "error": f"{type(err).__name__}: {err}"})
            continue
        xs.append(x)
        obs.append([values[k] for k in OBSERVABLES])
        betas.append(float(header.get("metadata", {}).get("beta", np.nan)))
    obs = np.asarray(obs, dtype=np.float64).reshape(-1, len(OBSERVABLES))
    beta = np.asarray(betas, dtype=np.float64)
    target = params["target"]
    y = beta if target == "beta" else obs[:, OBSERVABLES.index(target)]
    x = np.stack(xs) if xs else np.zeros((0, 1), np.float32)
    return {"x": x, "y": y, "observables": obs, "beta": beta}, {"configurations": len(xs)}, bad


def _beta_of(path):
    """beta from the file's metadata, for stratifying the split (cheap: header only)."""
    try:
        return read_header(path).get("metadata", {}).get("beta", "none")
    except Exception:  # noqa: BLE001 - reported by the shard that reads it
        return "unreadable"


@register_pipeline("lattice")
def plan(input, output, params):
    """Lattice: deepvre/ILDG gauge configurations -> observables and field tensors."""
    p = resolve("lattice", params, DEFAULTS)
    if p["target"] not in OBSERVABLES + ("beta",):
        raise ValueError(f"lattice: target must be one of {', '.join(OBSERVABLES + ('beta',))}")
    root = os.path.abspath(input)
    if os.path.isfile(root):
        root, files = os.path.dirname(root), [os.path.basename(root)]
    else:
        files = sorted(
            os.path.relpath(os.path.join(d, n), root)
            for d, _, names in os.walk(root) for n in names if n.lower().endswith(EXTENSIONS))
    if not files:
        raise ValueError(f"lattice: no {', '.join(EXTENSIONS)} files in {input!r}")
    strata = [_beta_of(os.path.join(root, f)) for f in files]
    assignment = stratified_split(strata, p["split"], p["seed"])
    shards = [Shard(split, i, lattice_shard, {"root": root, "files": group, "params": p}, cost=len(group))
              for split, groups in shards_by_split(files, assignment, p["shard_size"], p["seed"]).items()
              for i, group in enumerate(groups)]
    return Plan("lattice", root, p, shards, {"files": len(files), "observables": list(OBSERVABLES)},
                chunk=min(32, p["shard_size"]))
