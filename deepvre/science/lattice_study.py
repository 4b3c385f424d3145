"""The lattice-QCD notebook's study design: independent Markov chains, splits that cannot leak,
the plaquette check with its resolution, and the physics estimators a referee asks for first.

    chains = generate_chains("data/L32", L=32, betas=[0.5, 0.75, 1.0], n_chains=3, n_configs=12, seed=0)
    split = split_chains([c["chain"] for c in chains], [c["beta"] for c in chains], test_betas=[0.75])
    check_split(split, chains_of_items, betas_of_items)        # raises evaluation.Leakage otherwise
    rows = plaquette_check(chains)                             # per beta: mean +- error, pull, resolution
    beta_hat = invert_plaquette(mean_plaquettes)               # the maximum-likelihood estimate of beta

**Why the mean plaquette is the estimator to beat.** With the Wilson action the probability of a
configuration is ``exp(beta S(U)) / Z(beta)`` with ``S = sum_p cos theta_p``: an exponential family,
so ``S`` (the mean plaquette times the volume) is a *sufficient statistic* for beta, exactly, on any
lattice. No function of the configuration carries more information about beta; the
maximum-likelihood estimate solves ``<P>_beta = P(U)``, which in 2D U(1) is ``I1(beta)/I0(beta) = P``
(the torus correction, of relative order ``(I1/I0)^V``, is below 1e-6 for the sizes used here).
A network can at best learn this function.

**Splits.** Every configuration belongs to one Markov chain; a chain lies wholly in one split, and the
test split holds only chains at *held-out* beta values that no training or validation chain has
(interpolation between the training betas). :func:`check_split` asserts both.
"""

import math
import os

import numpy as np

from . import evaluation
from . import lattice as mc
from .lattice_nets import pull_limit

TRAIN_BETAS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
TEST_BETAS = (0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75)  # held out: midpoints, never trained on


def chain_id(beta, k):
    """``beta_2.000/chain_01``: the chain's folder under an ensemble root, and its group name."""
    return f"beta_{float(beta):.3f}/chain_{int(k):02d}"


def chain_seed(seed, L, beta, k):
    """A distinct, reproducible seed for chain ``k`` at ``beta`` on ``L x L``."""
    return int(np.random.SeedSequence([int(seed), int(L), int(round(float(beta) * 1000)), int(k)]).generate_state(1)[0])


def generate_chains(root, L, betas, n_chains, n_configs, seed, n_therm=200, n_skip=5, n_bins=20):
    """``n_chains`` independent chains per beta (own seed, own hot start, own thermalisation), each
    keeping ``n_configs`` configurations, written to ``root/<chain_id>/cfg_*.dvgauge``.

    Returns one record per chain: ``chain, beta, L, n_configs, n_sweeps, plaquette, error, tau``:
    the plaquette's mean over *every* sweep after thermalisation, its binned error (``n_bins`` bins),
    and its integrated autocorrelation time in sweeps (for :func:`plaquette_check`).
    """
    if not len(betas) or n_chains < 1:
        raise ValueError("give at least one beta and one chain per beta")
    records = []
    for beta in betas:
        for k in range(n_chains):
            name = chain_id(beta, k)
            configs, hist = mc.generate(L, float(beta), n_configs, chain_seed(seed, L, beta, k),
                                        n_therm=n_therm, n_skip=n_skip)
            mc.save_ensemble(os.path.join(root, name), configs, dict(hist["params"], chain=name))
            mean, error = mc.binned_error(hist["plaquette"], n_bins=min(n_bins, len(hist["plaquette"])))
            records.append({"chain": name, "beta": float(beta), "L": int(L), "n_configs": int(n_configs),
                            "n_sweeps": int(len(hist["plaquette"])), "plaquette": mean, "error": error,
                            "n_bins": int(min(n_bins, len(hist["plaquette"]))),
                            "tau": mc.autocorrelation_time(hist["plaquette"])})
    return records


def chains_in(root):
    """``{chain: [files]}`` of a folder of configurations: a chain is the folder holding its files
    (relative to ``root``), the layout :func:`generate_chains` writes; your own data: one folder per chain."""
    from ..pipelines.lattice import EXTENSIONS

    root = os.path.abspath(root)
    found = {}
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            if name.lower().endswith(EXTENSIONS):
                found.setdefault(os.path.relpath(folder, root), []).append(os.path.join(folder, name))
    if not found:
        raise ValueError(f"{root}: no {', '.join(EXTENSIONS)} files")
    return dict(sorted(found.items()))


def beta_of_chain(files):
    """The one beta in the metadata of a chain's files (a chain at two betas is an error)."""
    from ..pipelines.lattice_io import read_header

    betas = {float(read_header(f).get("metadata", {}).get("beta", float("nan"))) for f in files}
    if len(betas) != 1 or any(math.isnan(b) for b in betas):
        raise ValueError(f"a chain must have one beta in its metadata, found {sorted(betas)} in {files[0]}...")
    return betas.pop()


def _key(beta):
    return round(float(beta), 6)


def split_chains(chains, betas, test_betas, val_fraction=0.25, seed=0):
    """The split of each item (a chain, or a configuration with its chain): whole chains only.

    Items at a beta in ``test_betas`` go to ``test``; at every other beta the chains are shuffled
    with ``seed`` and ``round(val_fraction * n)`` of them (at least one where there are two or
    more) go to ``val``, the rest to ``train``. Returns a list of split names.
    """
    chains, betas = [str(c) for c in chains], [float(b) for b in betas]
    if len(chains) != len(betas):
        raise ValueError("chains and betas differ in length")
    held_out = {_key(b) for b in test_betas}
    beta_of = {}
    for c, b in zip(chains, betas):
        if beta_of.setdefault(c, _key(b)) != _key(b):
            raise ValueError(f"chain {c!r} has two betas ({beta_of[c]}, {b})")
    rng = np.random.default_rng(seed)
    split_of = {}
    for beta in sorted(set(beta_of.values())):
        members = sorted(c for c, b in beta_of.items() if b == beta)
        if beta in held_out:
            split_of.update({c: "test" for c in members})
            continue
        members = [members[i] for i in rng.permutation(len(members))]
        n_val = max(1, int(round(val_fraction * len(members)))) if len(members) >= 2 and val_fraction > 0 else 0
        split_of.update({c: "val" if i < n_val else "train" for i, c in enumerate(members)})
    return [split_of[c] for c in chains]


def check_split(split, chains, betas):
    """Raise :class:`evaluation.Leakage` if a chain lies in two splits or a test beta is also a
    training or validation beta; returns ``{split: chains}`` counts plus the betas of each split."""
    counts = evaluation.check_no_leakage(split, chains)
    seen = {s: {_key(b) for s2, b in zip(split, betas) if s2 == s} for s in evaluation.SPLITS}
    shared = seen["test"] & (seen["train"] | seen["val"])
    if shared:
        raise evaluation.Leakage(f"beta {sorted(shared)} in the test split and in training or validation")
    return {"chains": counts, "betas": {s: sorted(v) for s, v in seen.items()}}


def plaquette_check(chains, n_sigma=5.0):
    """Per beta, the plaquette over every sweep of all its chains against the exact I1/I0.

    ``chains``: records of :func:`generate_chains`. The chains are independent, so the beta's error
    is ``sqrt(sum error_k^2) / n_chains`` (each chain's error binned). Returns one row per beta:
    ``beta, chains, sweeps, mean, error, exact, pull, limit, resolution, ok``, where ``limit`` is
    the ``n_sigma`` Student-t limit on ``|pull|`` (the bins' degrees of freedom) and
    ``resolution = limit * error``: the smallest deviation from I1/I0 this check would catch.
    """
    by_beta = {}
    for c in chains:
        by_beta.setdefault(float(c["beta"]), []).append(c)
    rows = []
    for beta in sorted(by_beta):
        group = by_beta[beta]
        mean = float(np.mean([c["plaquette"] for c in group]))
        error = float(math.sqrt(sum(c["error"] ** 2 for c in group)) / len(group))
        exact = mc.exact_plaquette(beta)
        pull = (mean - exact) / error if error > 0 else float("inf")
        limit = pull_limit(sum(c["n_bins"] for c in group), n_sigma)
        rows.append({"beta": beta, "chains": len(group), "sweeps": int(sum(c["n_sweeps"] for c in group)),
                     "mean": mean, "error": error, "exact": exact, "pull": float(pull), "limit": limit,
                     "resolution": limit * error, "ok": bool(abs(pull) <= limit)})
    return rows


def exact_plaquette_array(beta):
    """``I1(beta)/I0(beta)`` for an array of beta (exponentially scaled Bessel functions: no overflow)."""
    from scipy.special import i0e, i1e

    b = np.asarray(beta, dtype=np.float64)
    return i1e(b) / i0e(b)


def invert_plaquette(plaquette, high=200.0, iterations=80):
    """beta with ``I1(beta)/I0(beta) = plaquette``, per value (bisection; monotone in beta).

    The maximum-likelihood estimate of beta from one configuration's mean plaquette (see the
    module docstring). A plaquette <= 0 gives 0; one at or above ``I1/I0(high)`` gives ``high``.
    """
    p = np.asarray(plaquette, dtype=np.float64)
    low, top = np.zeros_like(p), np.full_like(p, high)
    for _ in range(iterations):
        mid = (low + top) / 2
        below = exact_plaquette_array(mid) < p
        low, top = np.where(below, mid, low), np.where(below, top, mid)
    return np.where(p <= 0, 0.0, (low + top) / 2)


def link_angles(x):
    """U(1) link angles ``(n, 2, L, L)`` from the pipeline's field tensors ``(n, L, L, 4)`` (cos, sin)."""
    x = np.asarray(x, dtype=np.float64)
    return np.moveaxis(np.arctan2(x[..., 2:], x[..., :2]), -1, 1)


def cheap_statistics(x):
    """Per configuration, local statistics a physicist computes in a line each: the mean plaquette,
    the means of ``cos^2`` and ``cos 2 theta_p`` over plaquettes, ``|Q|``, ``Q^2 / V`` and the Polyakov
    loop's modulus. ``x``: field tensors ``(n, L, L, 4)``. Returns ``(n, 6)``."""
    from .lattice_observables import polyakov, topological_charge, u1_plaquette_angles

    rows = []
    for links in link_angles(x):
        theta = u1_plaquette_angles(links)[0]
        q = topological_charge(links)
        rows.append([np.cos(theta).mean(), (np.cos(theta) ** 2).mean(), np.cos(2 * theta).mean(),
                     abs(q), q * q / theta.size, polyakov(links)])
    return np.asarray(rows, dtype=np.float64)


def ridge_fit(features, y, l2=1e-3):
    """Linear regression with an L2 penalty on standardised features (closed form; bias free)."""
    f = np.asarray(features, dtype=np.float64)
    centre, scale = f.mean(axis=0), f.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = (f - centre) / scale
    y = np.asarray(y, dtype=np.float64).ravel()
    w = np.linalg.solve(z.T @ z + l2 * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return {"centre": centre, "scale": scale, "weights": w, "bias": float(y.mean()), "l2": l2}


def ridge_predict(model, features):
    z = (np.asarray(features, dtype=np.float64) - model["centre"]) / model["scale"]
    return z @ model["weights"] + model["bias"]


def ridge_baseline(train, val, l2_grid=(1e-4, 1e-3, 1e-2, 1e-1)):
    """:func:`ridge_fit` on ``train = (features, y)`` with ``l2`` chosen on ``val`` (lowest RMSE)."""
    best = None
    for l2 in l2_grid:
        model = ridge_fit(*train, l2=l2)
        rmse = float(np.sqrt(np.mean((ridge_predict(model, val[0]) - np.asarray(val[1]).ravel()) ** 2)))
        if best is None or rmse < best[0]:
            best = (rmse, model)
    return best[1]

