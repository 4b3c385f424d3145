"""The real data the biology and Earth-observation notebooks ship with (all installs offline).

Biology (:func:`biology_classes`) writes a folder of class sub-folders cut from real annotated
images, the layout any user's own data set can take instead:

- ``nucleus``: one crop per nucleus of stardist's fluorescence image ``img2d.tif``, located by
  its label mask ``mask2d.tif`` (PyPI stardist 0.9.2, BSD-3-Clause);
- ``background``: crops of the same image that touch no nucleus in the mask;
- ``tree_crown``: one crop per annotated crown box of deepforest's NEON airborne image
  ``OSBS_029.png`` (PyPI deepforest 2.1.0, MIT);
- ``retina``: patches of scikit-image's colour fundus photograph ``retina()``.

Earth observation (:func:`earth_scenes`): NASA's daytime ``earth.jpg`` and night-lights
``night.jpg`` from Debian ``xplanet-images`` (public domain), co-registered 2048x1024 maps.

The files are located and read by ``deepvre.science.datasets`` (the one locator): missing data
raises its ``MissingData`` (a ``FileNotFoundError``) with the command that installs it.
"""

import os

import numpy as np

from ..science import datasets

CLASSES = ("background", "nucleus", "retina", "tree_crown")


def _to_uint8(image):
    low, high = np.percentile(image, (1, 99.8))
    return (np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)


def _square(cx, cy, side, shape):
    h, w = shape[:2]
    side = int(min(side, h, w))
    x0 = int(min(max(cx - side // 2, 0), w - side))
    y0 = int(min(max(cy - side // 2, 0), h - side))
    return slice(y0, y0 + side), slice(x0, x0 + side)


def nuclei_crops(per_class, rng, side=32):
    """Crops around nuclei, and crops with no nucleus, of stardist's fluorescence image (RGB)."""
    data = datasets.stardist_nuclei()
    image, mask = _to_uint8(data.image.astype(np.float32)), data.mask
    rgb = np.repeat(image[..., None], 3, axis=2)
    nuclei = []
    for obj in rng.permutation(np.unique(mask[mask > 0]))[:per_class]:
        rows, cols = np.nonzero(mask == obj)
        extent = max(np.ptp(rows), np.ptp(cols)) + 1
        ys, xs = _square(int(cols.mean()), int(rows.mean()), max(side, int(extent * 1.5)), mask.shape)
        nuclei.append(rgb[ys, xs])
    background, tries = [], 0
    while len(background) < per_class and tries < 200 * per_class:
        tries += 1
        y, x = rng.integers(0, mask.shape[0] - side), rng.integers(0, mask.shape[1] - side)
        if not mask[y:y + side, x:x + side].any():
            background.append(rgb[y:y + side, x:x + side])
    return nuclei, background


def crown_crops(per_class, rng):
    """One crop per annotated tree crown of deepforest's OSBS_029 NEON image."""
    crowns = datasets.neon_crowns("OSBS_029")
    image = crowns.image
    crops = []
    for k in rng.permutation(len(crowns.boxes))[:per_class]:
        x0, y0, x1, y1 = (float(v) for v in crowns.boxes[k])
        ys, xs = _square(int((x0 + x1) / 2), int((y0 + y1) / 2), int(max(x1 - x0, y1 - y0) * 1.3), image.shape)
        crops.append(image[ys, xs])
    return crops


def retina_patches(per_class, rng, side=96):
    """Patches inside the fundus (not the black surround) of scikit-image's retina photo."""
    image = datasets.skimage_sample("retina").image
    patches, tries = [], 0
    while len(patches) < per_class and tries < 100 * per_class:
        tries += 1
        y, x = rng.integers(0, image.shape[0] - side), rng.integers(0, image.shape[1] - side)
        patch = image[y:y + side, x:x + side]
        if (patch.max(axis=2) > 20).mean() > 0.95:
            patches.append(patch)
    return patches


def _read(path):
    with open(path) as fh:
        return fh.read()


def biology_classes(out, per_class=60, seed=0):
    """Write ``out/<class>/<n>.png`` for the four classes; returns ``{class: count}``.

    Refuses a folder that already holds other files (nothing of the user's is overwritten);
    a folder this function wrote before with the same ``per_class`` and ``seed`` is reused.
    """
    from PIL import Image

    stamp = f"biology_classes per_class={per_class} seed={seed}\n"
    marker = os.path.join(out, ".deepvre-shipped")
    if os.path.isfile(marker) and _read(marker) == stamp:
        return {c: len(os.listdir(os.path.join(out, c))) for c in CLASSES}
    if os.path.isdir(out) and os.listdir(out):
        raise FileExistsError(f"{out} is not empty: choose an empty folder for the shipped data")
    rng = np.random.default_rng(seed)
    nuclei, background = nuclei_crops(per_class, rng)
    crops = {"nucleus": nuclei, "background": background, "tree_crown": crown_crops(per_class, rng),
             "retina": retina_patches(per_class, rng)}
    for name in CLASSES:
        os.makedirs(os.path.join(out, name), exist_ok=True)
        for i, crop in enumerate(crops[name]):
            Image.fromarray(np.ascontiguousarray(crop)).save(os.path.join(out, name, f"{i:04d}.png"))
    with open(marker, "w") as fh:
        fh.write(stamp)
    return {name: len(crops[name]) for name in CLASSES}


def earth_scenes(folder=datasets.XPLANET_DIR):
    """``(day, night)`` paths of NASA's co-registered global images (Debian xplanet-images)."""
    return tuple(datasets.earth_paths(folder))


def water_fraction(tiles):
    """Per tile, the fraction of open-water pixels in a daytime RGB tile (values 0..1).

    A documented colour rule on the Blue Marble palette: water is where blue exceeds red by 0.08
    and green by 0.02 and the pixel is not bright (clouds, ice). It labels land vs water for the
    second task; it is not a learned quantity.
    """
    tiles = np.asarray(tiles, dtype=np.float32)
    r, g, b = tiles[..., 0], tiles[..., 1], tiles[..., 2]
    water = (b > r + 0.08) & (b > g + 0.02) & (tiles.mean(axis=-1) < 0.6)
    return water.mean(axis=(1, 2))
