"""Lattice configurations (lattice QCD): observables and field tensors for deep learning.

Observables per configuration (plaquette, Polyakov loop, topological charge): defined once, with
their angle convention, in ``deepvre.science.lattice_observables`` (array contract in ``lattice_io``).

The pipeline reads deepvre and ILDG files from INPUT (damaged files are bad records),
writes ``x`` = field tensors (U(1): cos and sin of each link angle; SU(N): real and
imaginary parts of the matrix entries, channels last), ``y`` = the ``target``
observable, ``observables`` = (plaquette, Polyakov, charge) and ``beta``.
"""

import os

import numpy as np

from ..science.lattice_observables import observables
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
