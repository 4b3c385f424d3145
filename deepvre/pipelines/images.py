"""Images (biology): class folders, or images with masks or boxes, to patches in shards.

Layouts of INPUT, detected in this order:

* ``annotations.csv`` (boxes, as deepforest writes them): columns
  ``image_path,xmin,ymin,xmax,ymax,label``; one sample per box, a square patch
  around it (``margin`` of its size), ``y`` = class index.
* ``images/`` + ``masks/`` (same file stems): masks are label images, each object an
  integer > 0; one sample per object, a square patch around it, ``y`` = that
  object's binary mask patch. Split by image, so no image feeds two splits.
* otherwise class sub-folders (the ``keras.utils.image_dataset_from_directory``
  layout): one sample per image, ``y`` = class index.

Each image is decoded and validated; a corrupt or unreadable file is a bad record
(counted in the manifest, logged, skipped). Steps (``-p steps=resize,normalize``)
run on every sample; the split is stratified by label and seeded.
"""

import csv
import os

import numpy as np

from .params import resolve
from .registry import get_step, register_pipeline, register_step
from .run import Plan, Shard
from .splits import shards_by_split, stratified_split

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
DEFAULTS = {
    "size": 64,          # output patch side in pixels
    "channels": 3,       # 1 (grayscale) or 3 (RGB)
    "margin": 0.25,      # extra context around an object, as a fraction of its size
    "steps": ("resize", "normalize"),
    "split": (0.8, 0.1, 0.1),
    "seed": 0,
    "shard_size": 64,    # samples per shard (one Dask task each)
}


@register_step("resize")
def resize(array, params):
    """Resize to ``size`` x ``size`` (bilinear)."""
    from PIL import Image

    size = params["size"]
    if array.shape[:2] == (size, size):
        return array
    squeeze = array.ndim == 3 and array.shape[2] == 1
    img = Image.fromarray(array[..., 0] if squeeze else array)
    out = np.asarray(img.resize((size, size), Image.BILINEAR))
    return out[..., None] if squeeze else out


@register_step("normalize")
def normalize(array, params):
    """Scale 8-bit values to float32 in [0, 1]."""
    return array.astype(np.float32) / 255.0


@register_step("standardize")
def standardize(array, params):
    """Per-sample zero mean, unit variance (float32)."""
    a = array.astype(np.float32)
    return (a - a.mean()) / max(float(a.std()), 1e-6)


def decode(path, channels):
    """Decode and validate one image file as uint8 (H, W, channels)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.width < 1 or img.height < 1:
            raise ValueError("empty image")
        img = img.convert("L" if channels == 1 else "RGB")
        array = np.asarray(img)
    return array[..., None] if channels == 1 else array


def decode_label_image(path):
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return np.asarray(img).astype(np.int64)


def square_box(xmin, ymin, xmax, ymax, margin, shape):
    """A square window (x0, y0, side) around a box, grown by ``margin``, inside the image."""
    h, w = shape[:2]
    side = int(round(max(xmax - xmin, ymax - ymin) * (1 + 2 * margin)))
    side = max(1, min(side, h, w))
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    x0 = int(round(min(max(cx - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2, 0), h - side)))
    return x0, y0, side


def _apply(steps, array, params):
    for name in steps:
        array = get_step(name)(array, params)
    return array


def _stack(samples, params, dtype=np.float32):
    size, ch = params["size"], params["channels"]
    if samples:
        return np.stack(samples)
    return np.zeros((0, size, size, ch), dtype=dtype)


def _bad(root, path, err):
    return {"record": os.path.relpath(path, root), "error": f"{type(err).__name__}: {err}"}


def folder_shard(root, items, params):
    """Class folders: items are ``[relpath, class_index]``."""
    xs, ys, counts, bad = [], [], {}, []
    for rel, label in items:
        path = os.path.join(root, rel)
        try:
            x = _apply(params["steps"], decode(path, params["channels"]), params)
        except Exception as err:  # noqa: BLE001 - any decoding failure is a bad record
            bad.append(_bad(root, path, err))
            continue
        xs.append(x)
        ys.append(label)
        counts[label] = counts.get(label, 0) + 1
    return {"x": _stack(xs, params), "y": np.asarray(ys, dtype=np.int64)}, counts, bad


def box_shard(root, items, params):
    """Boxes: items are ``[relpath, [xmin, ymin, xmax, ymax], class_index]``, grouped by image."""
    xs, ys, counts, bad = [], [], {}, []
    cache = {}
    for rel, box, label in items:
        path = os.path.join(root, rel)
        if rel not in cache:
            try:
                cache[rel] = decode(path, params["channels"])
            except Exception as err:  # noqa: BLE001
                cache[rel] = err
                bad.append(_bad(root, path, err))
        image = cache[rel]
        if isinstance(image, Exception):
            continue
        x0, y0, side = square_box(*box, params["margin"], image.shape)
        xs.append(_apply(params["steps"], image[y0:y0 + side, x0:x0 + side], params))
        ys.append(label)
        counts[label] = counts.get(label, 0) + 1
    return {"x": _stack(xs, params), "y": np.asarray(ys, dtype=np.int64)}, counts, bad


def mask_shard(root, items, params):
    """Masks: items are ``[image relpath, mask relpath]``; one sample per object."""
    from PIL import Image

    xs, ys, bad, n_objects = [], [], [], 0
    size = params["size"]
    for rel, mask_rel in items:
        try:
            image = decode(os.path.join(root, rel), params["channels"])
            labels = decode_label_image(os.path.join(root, mask_rel))
            if labels.shape[:2] != image.shape[:2]:
                raise ValueError(f"mask {labels.shape[:2]} and image {image.shape[:2]} differ in size")
        except Exception as err:  # noqa: BLE001
            bad.append(_bad(root, os.path.join(root, rel), err))
            continue
        for obj in np.unique(labels):
            if obj == 0:
                continue
            rows, cols = np.nonzero(labels == obj)
            x0, y0, side = square_box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1,
                                      params["margin"], image.shape)
            xs.append(_apply(params["steps"], image[y0:y0 + side, x0:x0 + side], params))
            m = (labels[y0:y0 + side, x0:x0 + side] == obj).astype(np.uint8)
            ys.append(np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST)))
            n_objects += 1
    y = np.stack(ys) if ys else np.zeros((0, size, size), np.uint8)
    return {"x": _stack(xs, params), "y": y}, {"object": n_objects}, bad


def _images_in(folder):
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS) and not n.startswith("."))


def _read_boxes(root, csv_path):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"image_path", "xmin", "ymin", "xmax", "ymax", "label"}
    if rows and not need <= set(rows[0]):
        raise ValueError(f"{csv_path}: columns must include {', '.join(sorted(need))}")
    items, bad = [], []
    for n, row in enumerate(rows, start=2):
        try:
            box = [float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            if box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(f"empty box {box}")
            rel = os.path.normpath(row["image_path"])
            if rel.startswith("..") or os.path.isabs(rel):
                raise ValueError(f"image_path {row['image_path']!r} leaves the input folder")
            items.append((rel, box, row["label"]))
        except (ValueError, TypeError) as err:
            bad.append({"record": f"{os.path.basename(csv_path)}:{n}", "error": str(err)})
    return items, bad


@register_pipeline("images")
def plan(input, output, params):
    """Images: class folders, or images with masks or boxes -> resized, normalized patches."""
    p = resolve("images", params, DEFAULTS)
    for name in p["steps"]:
        get_step(name)  # fail early on an unknown step
    root = os.path.abspath(input)
    if not os.path.isdir(root):
        raise ValueError(f"images: input {input!r} must be a folder")
    csv_path = os.path.join(root, "annotations.csv")
    bad = []
    if os.path.isfile(csv_path):
        layout = "boxes"
        boxes, bad = _read_boxes(root, csv_path)
        classes = sorted({b[2] for b in boxes})
        items = [[rel, box, classes.index(label)] for rel, box, label in sorted(boxes, key=lambda b: (b[0], b[1]))]
        strata = [item[2] for item in items]
        func = box_shard
    elif os.path.isdir(os.path.join(root, "images")) and os.path.isdir(os.path.join(root, "masks")):
        layout, classes, func = "masks", ["object"], mask_shard
        masks = {os.path.splitext(n)[0]: n for n in _images_in(os.path.join(root, "masks"))}
        items = []
        for name in _images_in(os.path.join(root, "images")):
            stem = os.path.splitext(name)[0]
            if stem in masks:
                items.append([f"images/{name}", f"masks/{masks[stem]}"])
            else:
                bad.append({"record": f"images/{name}", "error": "no mask with the same name in masks/"})
        strata = ["object"] * len(items)
    else:
        layout, func = "folders", folder_shard
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        if not classes:
            raise ValueError(f"images: {input!r} has no class sub-folders, no images/+masks/, no annotations.csv")
        items = [[f"{c}/{n}", i] for i, c in enumerate(classes) for n in _images_in(os.path.join(root, c))]
        strata = [item[1] for item in items]
    assignment = stratified_split(strata, p["split"], p["seed"])
    shards = [
        Shard(split, i, func, {"root": root, "items": group, "params": p}, cost=len(group))
        for split, groups in shards_by_split(items, assignment, p["shard_size"], p["seed"]).items()
        for i, group in enumerate(groups)
    ]
    summary = {"layout": layout, "classes": classes, "items": len(items)}
    return Plan("images", root, p, shards, summary, chunk=min(64, p["shard_size"]), bad=bad)
