"""Rasters (Earth observation): large scenes cut into tiles, labelled from a second raster.

INPUT is a scene: a GeoTIFF (read with rasterio, tile windows only: a task never
loads the whole scene) or a plain JPEG/PNG (read with PIL: these formats cannot be
decoded by window, so each task decodes the scene once and cuts its many tiles;
tasks are coarse for that reason). ``labels=PATH`` names a co-registered raster
(e.g. night lights for daytime imagery), scaled to the scene if its size differs:

* ``label_mode=mean``: ``y`` = mean label value of the tile (regression); with
  ``bins=t1,t2,...`` the class index of that mean instead.
* ``label_mode=mask``: ``y`` = the label tile itself (a label image, nearest).

Tiles are assigned to train/val/test by blocks of ``block`` x ``block`` tiles (seeded),
so neighbouring tiles rarely straddle splits. A tile with non-finite values or a
failed read is a bad record.

Tiles of 8- and 16-bit scenes are stored in the scene's dtype (a quarter or half of
float32's bytes, and far less to compress); the manifest's ``decode`` section records the
division (``scale``) that ``deepvre.pipelines.dataset`` readers apply, so a reader still
gets float32 values in 0..1. Other dtypes are stored as float32, already divided.
"""

import os

import numpy as np

from .params import resolve
from .registry import register_pipeline
from .run import Plan, Shard
from .splits import SPLITS, chunked

GEOTIFF = (".tif", ".tiff")
DEFAULTS = {
    "tile": 64,
    "labels": "",          # co-registered label raster (path); empty: no labels (y = 0)
    "label_mode": "mean",  # mean or mask
    "bins": (),            # thresholds turning the mean label into classes
    "bands": (),           # 1-based band numbers to keep (GeoTIFF); empty: all
    "scale": 0.0,          # divide pixel values by this; 0: 255 for 8-bit, 65535 for 16-bit
    "split": (0.8, 0.1, 0.1),
    "block": 4,
    "seed": 0,
    "tiles_per_shard": 256,
}


# PIL modes -> numpy dtype of the decoded pixels (np.asarray of the image)
PIL_DTYPES = {"1": "bool", "L": "uint8", "P": "uint8", "LA": "uint8", "RGB": "uint8", "RGBA": "uint8",
              "CMYK": "uint8", "YCbCr": "uint8", "I;16": "uint16", "I": "int32", "F": "float32"}
STORED_AS_IS = ("uint8", "uint16")  # kept in the scene's dtype, divided by the readers


def raster_info(path, bands=()):
    """``((height, width), dtype of the pixels)`` from the header only."""
    if path.lower().endswith(GEOTIFF):
        import rasterio

        with rasterio.open(path) as src:
            return (src.height, src.width), src.dtypes[(bands[0] - 1) if bands else 0]
    from PIL import Image

    with Image.open(path) as img:
        return (img.height, img.width), PIL_DTYPES.get(img.mode, "float32")


def raster_size(path):
    """``(height, width)`` from the header only."""
    return raster_info(path)[0]


class WindowReader:
    """Read ``(row, col, h, w)`` windows as (h, w, bands) arrays from either kind of file."""

    def __init__(self, path, bands=()):
        self.path, self.bands = path, list(bands) or None
        self.geotiff = path.lower().endswith(GEOTIFF)
        self._src = self._array = None

    def __enter__(self):
        if self.geotiff:
            import warnings

            import rasterio

            with warnings.catch_warnings():  # a plain label TIFF has no geotransform: fine here
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._src = rasterio.open(self.path)
        else:
            from PIL import Image

            with Image.open(self.path) as img:
                img.load()
                self._array = np.asarray(img)  # PIL cannot decode a window: once per task
            if self._array.ndim == 2:
                self._array = self._array[..., None]
        return self

    def __exit__(self, *exc):
        if self._src is not None:
            self._src.close()

    @property
    def dtype(self):
        return np.dtype(self._src.dtypes[0]) if self.geotiff else self._array.dtype

    def read(self, row, col, h, w):
        if self.geotiff:
            from rasterio.windows import Window

            data = self._src.read(self.bands, window=Window(col, row, w, h))
            return np.moveaxis(data, 0, -1)
        return self._array[row:row + h, col:col + w]


def tile_split(row, col, block, seed, fractions):
    """The split of tile (row, col): one seeded draw per block of tiles."""
    draw = np.random.default_rng([seed, row // block, col // block]).random()
    return "train" if draw < fractions[0] else "val" if draw < fractions[0] + fractions[1] else "test"


def _scale_of(dtype, scale):
    if scale:
        return scale
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype), 1.0)


def tile_shard(path, tiles, params, label_path="", label_size=None, size=None, stored="float32"):
    """Read ``tiles`` (``[row, col]`` in tile units) and their labels; return arrays.

    ``x`` is kept in the scene's dtype when ``stored`` names it (uint8, uint16: the readers
    divide), else float32 divided by the scale here.
    """
    t = params["tile"]
    xs, ys, origins, bad = [], [], [], []
    counts = {}
    as_is = stored in STORED_AS_IS
    with WindowReader(path, params["bands"]) as scene:
        scale = _scale_of(scene.dtype, params["scale"])
        labels = WindowReader(label_path).__enter__() if label_path else None
        try:
            for row, col in tiles:
                try:
                    x = scene.read(row * t, col * t, t, t)
                    x = x.astype(stored, copy=False) if as_is else x.astype(np.float32) / scale
                    if x.shape[:2] != (t, t) or not (as_is or np.isfinite(x).all()):
                        raise ValueError("incomplete tile or non-finite values")
                    y = _label(labels, row, col, params, label_size, size) if labels else np.float32(0)
                except Exception as err:  # noqa: BLE001 - a bad tile is a bad record
                    bad.append({"record": f"tile {row},{col}", "error": f"{type(err).__name__}: {err}"})
                    continue
                xs.append(x)
                ys.append(y)
                origins.append((row * t, col * t))
                key = str(int(y)) if params["bins"] and params["label_mode"] == "mean" else "tiles"
                counts[key] = counts.get(key, 0) + 1
        finally:
            if labels:
                labels.__exit__()
    bands = len(params["bands"]) or (xs[0].shape[-1] if xs else 1)
    x = np.stack(xs) if xs else np.zeros((0, t, t, bands), stored if as_is else np.float32)
    if params["label_mode"] == "mask" and label_path:
        y = np.stack(ys) if ys else np.zeros((0, t, t), np.int64)
    else:
        y = np.asarray(ys, dtype=np.int64 if params["bins"] else np.float32)
    return {"x": x, "y": y, "origin": np.asarray(origins, np.int64).reshape(-1, 2)}, counts, bad


def _label(labels, row, col, params, label_size, size):
    t = params["tile"]
    fy, fx = label_size[0] / size[0], label_size[1] / size[1]
    r0, c0 = int(np.floor(row * t * fy)), int(np.floor(col * t * fx))
    r1, c1 = max(r0 + 1, int(np.ceil((row + 1) * t * fy))), max(c0 + 1, int(np.ceil((col + 1) * t * fx)))
    window = labels.read(r0, c0, r1 - r0, c1 - c0).astype(np.float64)
    if params["label_mode"] == "mask":
        from PIL import Image

        return np.asarray(Image.fromarray(window[..., 0].astype(np.int32)).resize((t, t), Image.NEAREST)).astype(np.int64)
    value = float(window.mean())
    if params["bins"]:
        return int(np.searchsorted(np.asarray(params["bins"], float), value, side="right"))
    return np.float32(value)


@register_pipeline("rasters")
def plan(input, output, params):
    """Rasters: GeoTIFF/JPEG/PNG scenes -> tiles with labels from a co-registered raster."""
    p = resolve("rasters", params, DEFAULTS)
    p["bins"] = [float(b) for b in p["bins"]]
    p["bands"] = [int(b) for b in p["bands"]]
    if p["label_mode"] not in ("mean", "mask"):
        raise ValueError("rasters: label_mode must be mean or mask")
    path = os.path.abspath(input)
    if not os.path.isfile(path):
        raise ValueError(f"rasters: input {input!r} must be a GeoTIFF, JPEG or PNG file")
    size, dtype = raster_info(path, p["bands"])
    stored = str(dtype) if str(dtype) in STORED_AS_IS else "float32"
    decode = {"x": {"dtype": "float32", "divide_by": _scale_of(dtype, p["scale"])}} if stored != "float32" else {}
    label_path = os.path.abspath(p["labels"]) if p["labels"] else ""
    label_size = raster_size(label_path) if label_path else None
    t = p["tile"]
    rows, cols = size[0] // t, size[1] // t
    by_split = {s: [] for s in SPLITS}
    for r in range(rows):
        for c in range(cols):
            by_split[tile_split(r, c, p["block"], p["seed"], p["split"])].append([r, c])
    shards = [
        Shard(split, i, tile_shard, {"path": path, "tiles": group, "params": p, "label_path": label_path,
                                     "label_size": label_size, "size": size, "stored": stored}, cost=len(group))
        for split in SPLITS for i, group in enumerate(chunked(by_split[split], p["tiles_per_shard"]))
    ]
    summary = {"size": list(size), "tiles": rows * cols, "labels": os.path.basename(label_path),
               "reader": "rasterio windows" if path.lower().endswith(GEOTIFF) else "PIL, one decode per task"}
    return Plan("rasters", path, p, shards, summary, chunk=min(256, p["tiles_per_shard"]), decode=decode)
