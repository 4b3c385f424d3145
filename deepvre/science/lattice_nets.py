"""The lattice-QCD notebook's networks and numbers: the beta CNN, its metrics, the pull limit.

    model = beta_cnn((16, 16, 4))                             # field tensor -> beta
    regression_metrics(y_true, y_pred)                        # rmse, mae, r2

The CNN is fully convolutional up to a global average: a 2x2 convolution sees exactly the four
links of a plaquette, 1x1 convolutions build local features, the average makes them an
intensive quantity, and a small dense read-out maps that average to beta (so the network can
represent the maximum-likelihood estimate, a nonlinear function of the mean plaquette; see
``deepvre.science.lattice_study``). Its weights do not depend on the lattice size, so a network
trained on 16x16 runs on 32x32 unchanged (``deepvre.training.transfer.resize_input``).
The study design (chains, splits, the plaquette check, the physics estimators) is in
``deepvre.science.lattice_study``.
"""

import numpy as np


def pull_limit(n, n_sigma=5.0):
    """The largest ``|pull|`` to accept for a mean whose error comes from ``n`` independent values.

    As rare as ``n_sigma`` for a Gaussian: the error is itself estimated, with ``n - 1`` degrees of
    freedom, so the limit is Student's t quantile (10.3 for 12 values, 6 for 40, 5.1 for 256).
    """
    from scipy import stats

    return float(stats.t.isf(stats.norm.sf(n_sigma), max(n - 1.0, 1.0)))


def beta_cnn(shape, width=32, readout=16, name="beta_cnn"):
    """Field tensor ``(L, L, 4)`` -> beta: 2x2 conv (plaquette-sized), two 1x1 convs, average, then a
    dense read-out of ``readout`` units (0: none, a linear map of the average) and the output."""
    import keras

    inputs = keras.Input(tuple(shape), name="links")
    x = keras.layers.Conv2D(width, 2, activation="relu", name="plaquette_conv")(inputs)
    x = keras.layers.Conv2D(width, 1, activation="relu", name="local_1")(x)
    x = keras.layers.Conv2D(width // 2, 1, activation="relu", name="local_2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="average")(x)
    if readout:
        x = keras.layers.Dense(readout, activation="relu", name="readout")(x)
    outputs = keras.layers.Dense(1, name="beta")(x)
    return keras.Model(inputs, outputs, name=name)


def flow_cnn(shape, width=24, depth=3, readout=16, name="flow_cnn"):
    """Field tensor ``(L, L, 4)`` -> a flowed observable: the plaquette-sized 2x2 convolution, then
    ``depth`` 3x3 convolutions (``valid``: no padding, so no boundary that depends on ``L``; receptive
    field ``2 + 2 depth`` sites, about the flow's smoothing radius), the average and a dense read-out.
    Like :func:`beta_cnn`, its weights do not depend on the lattice size."""
    import keras

    inputs = keras.Input(tuple(shape), name="links")
    x = keras.layers.Conv2D(width, 2, activation="relu", name="plaquette_conv")(inputs)
    for k in range(depth):
        x = keras.layers.Conv2D(width, 3, activation="relu", name=f"neighbourhood_{k + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="average")(x)
    x = keras.layers.Dense(readout, activation="relu", name="readout")(x)
    outputs = keras.layers.Dense(1, name="flowed")(x)
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
