"""What a scientist looks at after training: curves, confusion matrix, predictions, errors.

Every function returns a ``matplotlib.figure.Figure`` (no pyplot state, so it works in a
kernel, a worker or a test alike) and, given ``path``, also saves it as a PNG.
"""

import numpy as np


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path):
    if path:
        fig.savefig(path, dpi=100)
    return fig


def history_dict(history):
    """``{metric: [per epoch]}`` from a Keras ``History``, a dict, or a list of either (concatenated)."""
    if isinstance(history, (list, tuple)):
        merged = {}
        for part in history:
            for key, values in history_dict(part).items():
                merged.setdefault(key, []).extend(values)
        return merged
    values = getattr(history, "history", history)
    if not isinstance(values, dict):
        raise TypeError(f"expected a Keras History or a dict of lists, got {type(history).__name__}")
    return {k: [float(v) for v in vs] for k, vs in values.items()}


def training_curves(history, path=None, title=""):
    """One panel per metric (loss, accuracy, ...), training and validation on the same axes."""
    values = history_dict(history)
    names = [k for k in values if not k.startswith("val_")]
    if not names:
        raise ValueError("the history holds no metrics")
    fig = _figure(4 * len(names), 3.2)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        epochs = np.arange(1, len(values[name]) + 1)
        ax.plot(epochs, values[name], "o-", label="train")
        if f"val_{name}" in values:
            ax.plot(epochs, values[f"val_{name}"], "s--", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion(y_true, y_pred, n_classes):
    """The confusion matrix: rows are true classes, columns predicted ones."""
    y_true, y_pred = np.asarray(y_true, dtype=int).ravel(), np.asarray(y_pred, dtype=int).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels, y_pred {y_pred.size}")
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def confusion_matrix(y_true, y_pred, labels, path=None, title="Confusion matrix"):
    """A heat map of :func:`confusion` with the counts written in each cell."""
    matrix = confusion(y_true, y_pred, len(labels))
    side = 1.5 + 0.6 * len(labels)
    fig = _figure(side + 1, side)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    ax.set_title(title)
    return _save(fig, path)


def _displayable(image):
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    low, high = float(np.min(image)), float(np.max(image))
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def sample_predictions(images, y_true, y_pred, labels=None, path=None, n=16, columns=8, title="Sample predictions"):
    """A grid of ``n`` images titled ``predicted (true)``; wrong ones in red."""
    n = min(n, len(images))
    if n == 0:
        raise ValueError("no images to show")
    rows = (n + columns - 1) // columns
    fig = _figure(1.6 * min(n, columns), 1.8 * rows)
    axes = fig.subplots(rows, min(n, columns), squeeze=False).ravel()
    name = (lambda i: labels[int(i)]) if labels is not None else (lambda v: f"{float(v):.3g}")
    for k, ax in enumerate(axes):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(_displayable(images[k]), cmap="gray")
        right = labels is None or int(y_pred[k]) == int(y_true[k])
        ax.set_title(f"{name(y_pred[k])}\n({name(y_true[k])})", fontsize=8, color="black" if right else "red")
    fig.suptitle(title)
    return _save(fig, path)


def error_scatter(y_true, y_pred, path=None, quantity="value", title="Predicted against true"):
    """Regression check: predictions against truth with the identity line, and the RMSE."""
    y_true, y_pred = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} values, y_pred {y_pred.size}")
    rmse = float(np.sqrt(np.mean((y_pred - y_true) ** 2))) if y_true.size else float("nan")
    fig = _figure(4.2, 4)
    ax = fig.subplots()
    ax.scatter(y_true, y_pred, s=10, alpha=0.6)
    if y_true.size:
        low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
        ax.plot([low, high], [low, high], "k--", lw=1, label="perfect")
        ax.legend()
    ax.set_xlabel(f"true {quantity}")
    ax.set_ylabel(f"predicted {quantity}")
    ax.set_title(f"{title} (RMSE {rmse:.3g})")
    return _save(fig, path)
