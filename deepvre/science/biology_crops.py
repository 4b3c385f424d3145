"""The biology notebook's real crops, each tagged with its source image and spatial block.

The four classes come from few images (``nucleus`` and ``background`` from stardist's fluorescence
image ``img2d.tif``, ``tree_crown`` from deepforest's NEON images ``OSBS_029`` and ``SOAP_061``,
``retina`` from scikit-image's fundus photo), so a split per crop leaks: neighbouring crops overlap.
Here each source image is cut into a grid of blocks, every crop lies wholly inside one block, and the
block (``source-bNN``) is the group of :func:`deepvre.science.evaluation.grouped_split`. Crops of
different blocks never share a pixel, so a split by block cannot put the same pixels in two splits.

    crops, records = cut(per_class=60, seed=0)
    write_class_folders("data", crops, records)         # data/<class>__<group>/<n>.png
    split = split_for_seed(records, seed=3)              # the notebook's split of seed 3
"""

import os

import numpy as np

from . import datasets

CLASSES = ("background", "nucleus", "retina", "tree_crown")
SEPARATOR = "__"               # folder name: <class>__<group>
GRID = {"stardist": 4, "OSBS_029": 3, "SOAP_061": 3, "retina": 4}   # blocks per side of each source
FRACTIONS = (0.6, 0.2, 0.2)


def _to_uint8(image):
    low, high = np.percentile(image, (1, 99.8))
    return (np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)


def block_of(y0, x0, side, shape, grid):
    """The block index of a square window wholly inside one cell of a ``grid`` x ``grid`` cut, else None."""
    h, w = shape[:2]
    rows, cols = np.linspace(0, h, grid + 1).astype(int), np.linspace(0, w, grid + 1).astype(int)
    r = int(np.searchsorted(rows, y0, side="right")) - 1
    c = int(np.searchsorted(cols, x0, side="right")) - 1
    if r >= grid or c >= grid or y0 + side > rows[r + 1] or x0 + side > cols[c + 1]:
        return None
    return r * grid + c


def _centred(cx, cy, side, shape):
    h, w = shape[:2]
    side = int(min(side, h, w))
    return int(min(max(cy - side // 2, 0), h - side)), int(min(max(cx - side // 2, 0), w - side)), side


def _record(cls, source, y0, x0, side, shape):
    block = block_of(y0, x0, side, shape, GRID[source])
    if block is None:
        return None
    return {"class": cls, "source": source, "group": f"{source}-b{block:02d}", "window": [y0, x0, side, side]}


def _random_crops(cls, source, image, per_class, side, rng, accept, tries=200):
    crops, records = [], []
    for _ in range(tries * per_class):
        if len(crops) >= per_class:
            break
        y0, x0 = int(rng.integers(0, image.shape[0] - side)), int(rng.integers(0, image.shape[1] - side))
        rec = _record(cls, source, y0, x0, side, image.shape)
        if rec and accept(y0, x0):
            crops.append(image[y0:y0 + side, x0:x0 + side])
            records.append(rec)
    return crops, records


def cut(per_class=60, seed=0):
    """``(crops, records)``: up to ``per_class`` crops per class and, for each, ``{class, source,
    group, window: [y0, x0, h, w]}``. Object crops (nuclei, crowns) that straddle two blocks are dropped."""
    rng = np.random.default_rng(seed)
    crops, records = [], []

    def add(c, r):
        crops.extend(c)
        records.extend(r)

    nuclei = datasets.stardist_nuclei()
    rgb = np.repeat(_to_uint8(nuclei.image.astype(np.float32))[..., None], 3, axis=2)
    mask, taken = nuclei.mask, 0
    for obj in rng.permutation(np.unique(mask[mask > 0])):
        if taken >= per_class:
            break
        rows, cols = np.nonzero(mask == obj)
        extent = max(np.ptp(rows), np.ptp(cols)) + 1
        y0, x0, side = _centred(int(cols.mean()), int(rows.mean()), max(32, int(extent * 1.5)), mask.shape)
        rec = _record("nucleus", "stardist", y0, x0, side, mask.shape)
        if rec:
            add([rgb[y0:y0 + side, x0:x0 + side]], [rec])
            taken += 1
    add(*_random_crops("background", "stardist", rgb, per_class, 32, rng,
                       lambda y0, x0: not mask[y0:y0 + 32, x0:x0 + 32].any()))

    boxes = []
    for name in ("OSBS_029", "SOAP_061"):
        crowns = datasets.neon_crowns(name)
        boxes += [(name, crowns.image, box) for box in crowns.boxes]
    taken = 0
    for k in rng.permutation(len(boxes)):
        if taken >= per_class:
            break
        name, image, box = boxes[k]
        x0b, y0b, x1b, y1b = (float(v) for v in box)
        y0, x0, side = _centred(int((x0b + x1b) / 2), int((y0b + y1b) / 2), int(max(x1b - x0b, y1b - y0b) * 1.3),
                                image.shape)
        rec = _record("tree_crown", name, y0, x0, side, image.shape)
        if rec:
            add([image[y0:y0 + side, x0:x0 + side]], [rec])
            taken += 1

    retina = datasets.skimage_sample("retina").image
    add(*_random_crops("retina", "retina", retina, per_class, 96, rng,
                       lambda y0, x0: (retina[y0:y0 + 96, x0:x0 + 96].max(axis=2) > 20).mean() > 0.95))
    return crops, records


def write_class_folders(out, crops, records):
    """Write ``out/<class>__<group>/<n>.png`` (the pipeline's class-folder layout, the group in the name)."""
    from PIL import Image

    counts = {}
    for crop, rec in zip(crops, records):
        folder = os.path.join(out, f"{rec['class']}{SEPARATOR}{rec['group']}")
        os.makedirs(folder, exist_ok=True)
        n = counts.get(folder, 0)
        Image.fromarray(np.ascontiguousarray(crop)).save(os.path.join(folder, f"{n:04d}.png"))
        counts[folder] = n + 1
    return len(crops)


def parse_folder(name):
    """``"nucleus__stardist-b05"`` -> ``("nucleus", "stardist-b05")``; a plain class folder is its own group."""
    cls, sep, group = name.partition(SEPARATOR)
    return cls, (group if sep else None)


def source_of(group):
    """The source image of a group name (``"stardist-b05"`` -> ``"stardist"``)."""
    return group.rsplit("-b", 1)[0]


def split_for_seed(groups, seed, fractions=FRACTIONS):
    """The notebook's split for ``seed``: grouped by block, stratified by source image."""
    from .evaluation import grouped_split

    groups = [g["group"] if isinstance(g, dict) else g for g in groups]
    return grouped_split(groups, fractions, seed=seed, strata=[source_of(g) for g in groups])
