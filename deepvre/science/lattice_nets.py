"""The lattice-QCD notebook's science: ensembles at several beta, the plaquette check, the beta CNN.

    tau = generate_ensembles("data/L16", L=16, betas=[1.0, 2.0, 3.0], n_configs=64, seed=0)
    rows = plaquette_validation(plaquettes, betas, tau=tau)   # mean plaquette vs I1/I0 per beta
    model = beta_cnn((16, 16, 4))                             # field tensor -> beta

The CNN is fully convolutional up to a global average: a 2x2 convolution sees exactly the four
links of a plaquette, 1x1 convolutions build local features, the average makes them an
intensive quantity. Its weights do not depend on the lattice size, so a network trained on
16x16 runs on 32x32 unchanged (``deepvre.training.transfer.resize_input``).
"""

import math
import os

import numpy as np

from . import lattice as mc


def beta_folder(root, beta):
    """``root/beta_2.000``: one ensemble per folder."""
    return os.path.join(root, f"beta_{beta:.3f}")


def generate_ensembles(root, L, betas, n_configs, seed, n_therm=200, n_skip=5):
    """One ensemble per beta in :func:`beta_folder` (deepvre gauge files with beta in their metadata).

    Returns ``{beta: tau}``, the plaquette's integrated autocorrelation time in units of saved
    configurations (from the per-sweep history), which :func:`plaquette_validation` uses for errors.
    Different betas get different seeds (``seed + index``).
    """
    if not len(betas):
        raise ValueError("betas: give at least one inverse coupling")
    taus = {}
    for i, beta in enumerate(betas):
        configs, hist = mc.generate(L, float(beta), n_configs, seed + i, n_therm=n_therm, n_skip=n_skip)
        mc.save_ensemble(beta_folder(root, float(beta)), configs, hist["params"])
        taus[float(beta)] = max(0.5, mc.autocorrelation_time(hist["plaquette"]) / n_skip)
    return taus


def pull_limit(n, n_sigma=5.0):
    """The largest ``|pull|`` to accept for a mean whose error comes from ``n`` independent values.

    As rare as ``n_sigma`` for a Gaussian: the error is itself estimated, with ``n - 1`` degrees of
    freedom, so the limit is Student's t quantile (10.3 for 12 values, 6 for 40, 5.1 for 256).
    """
    from scipy import stats

    return float(stats.t.isf(stats.norm.sf(n_sigma), max(n - 1.0, 1.0)))


def plaquette_validation(plaquettes, betas, tau=None, n_sigma=5.0):
    """Mean plaquette per beta against the exact ``I1(beta)/I0(beta)`` of 2D U(1).

    ``plaquettes`` and ``betas`` are per configuration (any order); ``tau`` maps beta to the
    autocorrelation time in configurations (default 0.5: independent). The error of the mean is
    ``std / sqrt(n) * sqrt(2 tau)``. Returns one row per beta: ``beta, n, mean, error, exact,
    pull, limit, ok`` (``ok``: ``|pull| <= limit``, :func:`pull_limit` of the ``n / 2 tau``
    independent values). The 5 sigma default fails a right ensemble about once in a million.
    """
    plaquettes, betas = np.asarray(plaquettes, float).ravel(), np.asarray(betas, float).ravel()
    if plaquettes.shape != betas.shape:
        raise ValueError(f"{plaquettes.size} plaquettes but {betas.size} betas")
    if np.isnan(betas).any():
        raise ValueError("some configurations have no beta in their metadata")
    rows = []
    for beta in np.unique(betas):
        values = plaquettes[betas == beta]
        n = values.size
        if n < 2:
            raise ValueError(f"beta={beta}: {n} configuration, need at least 2 for an error")
        t = (tau or {}).get(float(beta), 0.5)
        error = float(values.std(ddof=1) / math.sqrt(n) * math.sqrt(2 * t))
        exact = mc.exact_plaquette(float(beta))
        pull = (float(values.mean()) - exact) / error if error > 0 else float("inf")
        limit = pull_limit(n / (2 * t), n_sigma)
        rows.append({"beta": float(beta), "n": int(n), "mean": float(values.mean()), "error": error,
                     "exact": exact, "pull": float(pull), "limit": limit, "ok": bool(abs(pull) <= limit)})
    return rows


def beta_cnn(shape, width=32, name="beta_cnn"):
    """Field tensor ``(L, L, 4)`` -> beta: 2x2 conv (plaquette-sized), two 1x1 convs, average, dense."""
    import keras

    inputs = keras.Input(tuple(shape), name="links")
    x = keras.layers.Conv2D(width, 2, activation="relu", name="plaquette_conv")(inputs)
    x = keras.layers.Conv2D(width, 1, activation="relu", name="local_1")(x)
    x = keras.layers.Conv2D(width // 2, 1, activation="relu", name="local_2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="average")(x)
    outputs = keras.layers.Dense(1, name="beta")(x)
    return keras.Model(inputs, outputs, name=name)


def regression_metrics(y_true, y_pred):
    """``rmse``, ``mae`` and ``r2`` of predictions against truth."""
    y_true, y_pred = np.asarray(y_true, float).ravel(), np.asarray(y_pred, float).ravel()
    if y_true.shape != y_pred.shape or not y_true.size:
        raise ValueError(f"need equal, non-empty arrays, got {y_true.size} and {y_pred.size} values")
    residual = y_pred - y_true
    spread = float(((y_true - y_true.mean()) ** 2).sum())
    return {"rmse": float(np.sqrt(np.mean(residual ** 2))), "mae": float(np.mean(np.abs(residual))),
            "r2": float(1 - (residual ** 2).sum() / spread) if spread > 0 else 0.0}
