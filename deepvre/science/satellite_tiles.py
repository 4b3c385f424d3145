"""The Earth-observation notebook's tiles: which are used, their spatial blocks, and the split.

NASA's co-registered global day and night images (``earth.jpg``, ``night.jpg``; 2048x1024,
0.176° a pixel) are cut into a grid of ``tile`` x ``tile`` pixel tiles that never overlap (16 px:
2.8°, about 300 km at the equator). The notebook keeps the **land** tiles (under half open water by
``deepvre.training.shipped.water_fraction``, a colour rule used only to select tiles, never as a
label) between ``max_latitude`` south and north (polar ice is trivially dark at night and would
inflate every score). Neighbouring tiles look alike and have alike night lights, so a split per tile
leaks; each tile belongs to a spatial **block** of ``block`` x ``block`` tiles (``r03c17``), and
whole blocks go to train, val or test (60/20/20 of the blocks of each block row, so every latitude
band is in every split), drawn anew for each seed.

    x, lights, origins = cut(day, night, tile=16)                  # the grid without the pipeline
    keep = select(x, origins, tile=16, height=1024, max_latitude=60)
    groups = block_groups(origins[keep], tile=16, block=4)
    split = split_for_seed(groups, seed=3)                          # "train" / "val" / "test" per tile
    evaluation.check_no_leakage(split, groups, windows(origins[keep], 16))
"""

import numpy as np

from . import evaluation

FRACTIONS = (0.6, 0.2, 0.2)


def cut(day, night, tile):
    """``(x, lights, origins)`` of the whole grid: tiles in 0..1 (n, tile, tile, 3), the mean night
    light of each (0..255, over the night image's channels) and each tile's top-left pixel ``(row,
    col)``, in the order of the Dask ``rasters`` pipeline's grid (row-major)."""
    day, night = np.asarray(day), np.asarray(night, dtype=np.float64)
    if night.ndim == 3:
        night = night.mean(axis=-1)
    rows, cols = day.shape[0] // tile, day.shape[1] // tile
    x = (day[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile, -1).swapaxes(1, 2)
         .reshape(rows * cols, tile, tile, -1).astype(np.float32) / 255.0)
    lights = night[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile).mean(axis=(1, 3)).ravel()
    origins = np.stack(np.meshgrid(np.arange(rows) * tile, np.arange(cols) * tile, indexing="ij"), -1).reshape(-1, 2)
    return x, lights, origins


def latitude(origins, tile, height):
    """Latitude (degrees) of each tile's centre on an equirectangular scene ``height`` pixels high."""
    centre = np.asarray(origins)[:, 0] + tile / 2.0
    return 90.0 - centre * 180.0 / height


def select(x, origins, tile, height, max_latitude=60.0, max_water=0.5):
    """The tiles used: under ``max_water`` open water and within ``max_latitude`` of the equator."""
    from ..training.shipped import water_fraction

    return (water_fraction(x) < max_water) & (np.abs(latitude(origins, tile, height)) <= max_latitude)


def classes_of(lights, bins):
    """Class index of each mean night light: 0 below ``bins[0]``, 1 up to ``bins[1]``, ..."""
    return np.searchsorted(np.asarray(bins, dtype=float), np.asarray(lights, dtype=float), side="right")


def block_groups(origins, tile, block):
    """The spatial block of each tile, ``r<row>c<col>`` in units of ``block`` tiles."""
    side = tile * block
    return [f"r{int(y) // side:02d}c{int(x) // side:02d}" for y, x in np.asarray(origins)]


def block_row(group):
    """``"r03c17"`` -> ``"r03"``: the stratum (latitude band) of a block."""
    return group.split("c", 1)[0]


def split_for_seed(groups, seed, fractions=FRACTIONS):
    """The notebook's split of ``seed``: whole blocks, 60/20/20 of the blocks of each block row."""
    return evaluation.grouped_split(groups, fractions, seed=seed, strata=[block_row(g) for g in groups])


def windows(origins, tile, source="day"):
    """``(source, y0, x0, h, w)`` of each tile, for ``evaluation.check_no_leakage``."""
    return [(source, int(y), int(x), tile, tile) for y, x in np.asarray(origins)]


def oversampled(y):
    """Indices that repeat each class's items up to the largest class's count (deterministic)."""
    y = np.asarray(y)
    present = [np.flatnonzero(y == c) for c in np.unique(y)]
    most = max(len(p) for p in present)
    return np.concatenate([np.resize(p, most) for p in present])


def balanced_linear(train, val, test, n_classes, l2_grid=(1e-3, 1e-2, 1e-1, 1.0)):
    """:func:`evaluation.linear_model` trained on class-balanced (oversampled) training items,
    scored (and its penalty chosen on ``val``) by balanced accuracy.

    Returns ``{"balanced_accuracy": on test, "val_balanced_accuracy", "l2"}``.
    """
    from ..training.report import balanced_accuracy

    keep = oversampled(train[1])
    return evaluation.linear_model(
        (np.asarray(train[0])[keep], np.asarray(train[1])[keep]), val, test, n_classes, l2_grid,
        score=lambda y, predicted: balanced_accuracy(y, predicted, n_classes), name="balanced_accuracy")
