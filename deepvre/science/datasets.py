"""Locate and load the real data that installs offline (see ``data-packages.txt`` and ``.ci/run``).

The one locator of that data (:func:`package_file`, :func:`earth_paths`, :func:`locate`): a file
that is not there raises :class:`MissingData`, whose message says how to install it.
``deepvre.training.shipped`` builds the notebooks' data sets from these loaders.

Every loader reads the files directly (the packages themselves are never imported:
they pin old dependencies) and returns a named tuple of numpy arrays plus a
``provenance`` string: package, file and licence.

=================  ==============================================  =====================================
loader             what                                            from
=================  ==============================================  =====================================
stardist_nuclei    512x512 fluorescence nuclei + label mask (125)  PyPI stardist 0.9.2 (--no-deps)
stardist_he        H&E stained RGB crop                            PyPI stardist 0.9.2
neon_crowns        NEON airborne RGB + tree-crown boxes            PyPI deepforest 2.1.0 (--no-deps)
skimage_sample     retina, cell, microaneurysms, ... photos        scikit-image (bundled samples)
earth_day_night    NASA day Earth + night lights, 2048x1024        Debian xplanet-images
=================  ==============================================  =====================================
"""

import os
import xml.etree.ElementTree as ET
from importlib import util as importlib_util
from typing import NamedTuple

import numpy as np

XPLANET_DIR = "/usr/share/xplanet/images"
NEON_IMAGES = ("OSBS_029", "SOAP_061", "2019_YELL_2_541000_4977000_image_crop",
               "2019_YELL_2_528000_4978000_image_crop2")
SKIMAGE_SAMPLES = ("retina", "cell", "microaneurysms", "immunohistochemistry", "chelsea", "coffee")


class Nuclei(NamedTuple):
    image: np.ndarray      # (512, 512) uint16 fluorescence
    mask: np.ndarray       # (512, 512) integer labels, 0 = background, 1..N one per nucleus
    provenance: str


class Crowns(NamedTuple):
    image: np.ndarray      # (H, W, 3) uint8 RGB
    boxes: np.ndarray      # (N, 4) int: xmin, ymin, xmax, ymax in pixels
    labels: list           # N class names ("Tree", "Dead", ...)
    provenance: str


class Photo(NamedTuple):
    image: np.ndarray
    provenance: str


class EarthPair(NamedTuple):
    day: np.ndarray        # (1024, 2048, 3) uint8, equirectangular
    night: np.ndarray      # (1024, 2048, 3) uint8, same grid
    provenance: str


class MissingData(FileNotFoundError):
    """An offline data package is not installed; the message says how to install it."""


INSTALL = {
    "stardist": "pip install --no-deps stardist==0.9.2 (see data-packages.txt)",
    "deepforest": "pip install --no-deps deepforest==2.1.0 (see data-packages.txt)",
}


def package_file(package, *parts):
    """The path of a data file inside an installed package, found without importing the package.

    Raises :class:`MissingData` (a ``FileNotFoundError``) that says how to install it, e.g.
    ``package_file("stardist", "data", "images", "img2d.tif")``.
    """
    install = INSTALL.get(package, "pip install --no-deps -r data-packages.txt")
    spec = importlib_util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingData(f"{package} is not installed: {install}")
    path = os.path.join(next(iter(spec.submodule_search_locations)), *parts)
    if not os.path.isfile(path):
        raise MissingData(f"{path} is missing ({install})")
    return path


def _stardist(name):
    return package_file("stardist", "data", "images", name)


def stardist_nuclei():
    """stardist's 2D fluorescence nuclei image with its instance mask."""
    import tifffile

    image = tifffile.imread(_stardist("img2d.tif"))
    mask = tifffile.imread(_stardist("mask2d.tif"))
    return Nuclei(image, mask, (
        "stardist 0.9.2 (PyPI, BSD-3-Clause): stardist/data/images/img2d.tif + mask2d.tif; image from the "
        "2018 Kaggle Data Science Bowl (Caicedo et al., Nature Methods 16, 2019; BBBC038, CC0)"))


def stardist_he():
    """stardist's H&E stained RGB example crop (from The Cancer Imaging Archive)."""
    from PIL import Image

    path = _stardist("histo.jpg")
    return Photo(np.asarray(Image.open(path).convert("RGB")), (
        "stardist 0.9.2 (PyPI, BSD-3-Clause): stardist/data/images/histo.jpg; H&E crop from The Cancer "
        "Imaging Archive"))


def _voc_boxes(path):
    root = ET.parse(path).getroot()
    boxes, labels = [], []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        boxes.append([int(float(box.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax")])
        labels.append(obj.find("name").text)
    return np.array(boxes, dtype=np.int64).reshape(-1, 4), labels


def _neon(name):
    return package_file("deepforest", "data", name)


def neon_crowns(name="OSBS_029"):
    """A NEON airborne RGB image with its tree-crown boxes (Pascal VOC annotations shipped by deepforest)."""
    from PIL import Image

    if name not in NEON_IMAGES:
        raise ValueError(f"unknown NEON image {name!r}: choose one of {NEON_IMAGES}")
    image_path = _neon(f"{name}.png")
    boxes, labels = _voc_boxes(_neon(f"{name}.xml"))
    image = np.asarray(Image.open(image_path).convert("RGB"))
    return Crowns(image, boxes, labels, (
        f"deepforest 2.1.0 (PyPI, MIT): deepforest/data/{name}.png + {name}.xml; NEON Airborne "
        "Observation Platform RGB imagery (National Ecological Observatory Network, public data)"))


def skimage_sample(name):
    """One of scikit-image's bundled sample images (those that need no download)."""
    import skimage
    import skimage.data

    if name not in SKIMAGE_SAMPLES:
        raise ValueError(f"unknown sample {name!r}: choose one of {SKIMAGE_SAMPLES} (others need a download)")
    return Photo(getattr(skimage.data, name)(), (
        f"scikit-image {skimage.__version__} (PyPI, BSD-3-Clause): skimage.data.{name}() bundled sample; "
        "see skimage/data/README.txt for the image's own source and licence"))


def earth_paths(folder=XPLANET_DIR):
    """``[day, night]`` paths of NASA's co-registered global images (Debian xplanet-images)."""
    paths = [os.path.join(folder, f) for f in ("earth.jpg", "night.jpg")]
    for path in paths:
        if not os.path.isfile(path):
            raise MissingData(f"{path} is missing: apt-get install xplanet-images")
    return paths


def earth_day_night(folder=XPLANET_DIR):
    """NASA's daytime Earth and night-lights images on the same 2048x1024 equirectangular grid."""
    from PIL import Image

    day, night = (np.asarray(Image.open(p).convert("RGB")) for p in earth_paths(folder))
    return EarthPair(day, night, (
        "Debian xplanet-images: /usr/share/xplanet/images/earth.jpg (NASA Visible Earth) and night.jpg "
        "(NASA city lights, rescaled); NASA imagery, not copyrighted (see the package's README)"))


def locate():
    """``{name: [paths] or "missing: <how to install>"}`` for each offline data set, without loading pixels."""
    checks = {
        "stardist_nuclei": lambda: [_stardist("img2d.tif"), _stardist("mask2d.tif")],
        "stardist_he": lambda: [_stardist("histo.jpg")],
        "neon_crowns": lambda: [_neon(f"{n}{ext}") for n in NEON_IMAGES for ext in (".png", ".xml")],
        "earth_day_night": earth_paths,
    }
    found = {}
    for name, check in checks.items():
        try:
            found[name] = check()
        except MissingData as err:
            found[name] = f"missing: {err}"
    return found
