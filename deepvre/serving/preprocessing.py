"""Raw input -> model input, from an artifact's ``preprocessing.json``.

Format (written by the publishers, read here and nowhere else)::

    {"input": {"shape": [224, 224, 3], "dtype": "float32",
               "scale": 0.00784313725490196, "offset": -1.0,     # x = pixel * scale + offset
               "mean": null, "std": null},                       # then (x - mean) / std if given
     "labels": ["tench", "goldfish", ...]}

An image is decoded with Pillow, converted to RGB (or L for one channel), resized to the
input's height and width (bilinear), and scaled. The same function serves in-process use and the
DEEPaaS adapter, so both give the same predictions. A client's input that does not fit raises
:class:`InputError` (the service answers 400 with its message).
"""

import io
import json

import numpy as np

# Largest image decoded (width x height): a small compressed file can expand to gigabytes, and
# Pillow itself refuses only beyond twice its 89 Mpixels (between, it warns and decodes).
MAX_PIXELS = 50_000_000


class InputError(ValueError):
    """A client's input the model cannot take (not an image, wrong shape or type): a 400, not a 500."""


def read_spec(path):
    spec = json.loads(open(path).read())
    if "input" not in spec or "shape" not in spec["input"]:
        raise ValueError(f"{path}: preprocessing.json needs input.shape")
    return spec


def image_array(data, spec):
    """Encoded image bytes -> a float batch of one, shaped like the model's input."""
    from PIL import Image

    shape = spec["input"]["shape"]
    height, width, channels = shape[0], shape[1], shape[2] if len(shape) > 2 else 1
    if not data:
        raise InputError("the image file is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:  # from the header, before anything is decoded
                raise InputError(f"the image is {img.width} x {img.height} pixels, over the limit of "
                                 f"{MAX_PIXELS} pixels; resize it first")
            img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
            pixels = np.asarray(img, dtype="float32").reshape(height, width, channels)
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # Pillow's decode errors
        raise InputError(f"not an image Pillow can read ({len(data)} bytes): {err}") from None
    return scale(pixels, spec)[None]


def scale(pixels, spec):
    """Apply ``scale``/``offset`` and optional ``mean``/``std`` to raw pixel values."""
    inp = spec["input"]
    x = np.asarray(pixels, dtype="float32") * float(inp.get("scale", 1.0)) + float(inp.get("offset", 0.0))
    if inp.get("mean") is not None:
        x = (x - np.asarray(inp["mean"], dtype="float32")) / np.asarray(inp.get("std") or 1.0, dtype="float32")
    return x.astype(inp.get("dtype", "float32"))


def array_input(values, spec):
    """A nested list (one sample or a batch) -> a batch array matching the input shape."""
    shape = tuple(spec["input"]["shape"])
    dtype = spec["input"].get("dtype", "float32")
    try:
        x = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as err:  # ragged lists, strings, objects
        raise InputError(f"array is not a rectangular array of {dtype} numbers: {err}") from None
    if x.shape == shape:
        x = x[None]
    if x.shape[1:] != shape or x.shape[0] == 0:
        raise InputError(f"array of shape {list(x.shape)} fits neither the input shape {list(shape)} "
                         f"nor a batch of it [n, {', '.join(map(str, shape))}]")
    if not np.all(np.isfinite(x)):
        raise InputError("array holds NaN or infinite values")
    return x


def top_labels(probabilities, labels, top=5):
    """One sample's probabilities -> [{"label", "probability"}], best first."""
    probs = np.asarray(probabilities, dtype="float64").ravel()
    order = np.argsort(-probs)[: max(1, int(top))]
    names = labels if labels and len(labels) == probs.size else [str(i) for i in range(probs.size)]
    return [{"label": names[i], "probability": float(probs[i])} for i in order]
