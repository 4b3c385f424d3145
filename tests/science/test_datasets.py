"""The offline data sets load, with shapes and annotations that line up with the pixels."""

import os

import numpy as np
import pytest

from deepvre.science import datasets
from tests.prereqs import require


def load(loader, *args):
    try:
        return loader(*args)
    except datasets.MissingData as err:
        require(False, str(err))


def test_stardist_nuclei_mask_lines_up():
    nuclei = load(datasets.stardist_nuclei)
    assert nuclei.image.shape == nuclei.mask.shape == (512, 512)
    labels = np.unique(nuclei.mask)
    assert labels[0] == 0 and len(labels) - 1 == 125
    image = nuclei.image.astype(float)
    # nuclei are bright: every labelled region is brighter than the background, on average 2x
    assert image[nuclei.mask > 0].mean() > 2 * image[nuclei.mask == 0].mean()
    shifted = np.roll(nuclei.mask, 40, axis=(0, 1))
    assert image[shifted > 0].mean() < image[nuclei.mask > 0].mean()
    assert "stardist 0.9.2" in nuclei.provenance and "BSD-3-Clause" in nuclei.provenance


def test_stardist_he_is_rgb():
    he = load(datasets.stardist_he)
    assert he.image.ndim == 3 and he.image.shape[2] == 3 and he.image.dtype == np.uint8
    assert "histo.jpg" in he.provenance


@pytest.mark.parametrize("name,count,classes", [
    ("OSBS_029", 61, {"Tree"}),
    ("SOAP_061", 37, {"Alive", "Dead"}),
    ("2019_YELL_2_541000_4977000_image_crop", 279, {"Tree"}),
])
def test_neon_crowns_boxes_inside_and_on_vegetation(name, count, classes):
    crowns = load(datasets.neon_crowns, name)
    h, w, _ = crowns.image.shape
    boxes = crowns.boxes
    assert boxes.shape == (count, 4) and set(crowns.labels) == classes
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert (boxes[:, [0, 1]] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    if classes == {"Tree"}:  # crowns are greener (excess green 2G-R-B) than what lies between them
        img = crowns.image.astype(float)
        exg = 2 * img[..., 1] - img[..., 0] - img[..., 2]
        inside = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in boxes:
            inside[y0:y1, x0:x1] = True
        assert exg[inside].mean() > exg[~inside].mean()
    assert "deepforest 2.1.0" in crowns.provenance and "MIT" in crowns.provenance


def test_neon_xml_and_csv_annotations_agree():
    import pandas as pd

    crowns = load(datasets.neon_crowns, "OSBS_029")
    csv = datasets.locate()["neon_crowns"][1].replace(".xml", ".csv")
    table = pd.read_csv(csv)
    np.testing.assert_array_equal(np.sort(table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(), axis=0),
                                  np.sort(crowns.boxes, axis=0))


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="OSBS_029"):
        datasets.neon_crowns("../../etc/passwd")
    with pytest.raises(ValueError, match="retina"):
        datasets.skimage_sample("astronaut_download")


def test_skimage_retina():
    retina = datasets.skimage_sample("retina")
    assert retina.image.shape == (1411, 1411, 3)
    assert "scikit-image" in retina.provenance


def test_earth_day_and_night_are_co_registered():
    earth = load(datasets.earth_day_night)
    assert earth.day.shape == earth.night.shape == (1024, 2048, 3)
    day = earth.day.astype(float)
    night = earth.night.astype(float).mean(axis=-1)
    water = (day[..., 2] > day[..., 0] + 10) & (day[..., 2] > day[..., 1])
    assert 0.5 < water.mean() < 0.8  # most of the planet is ocean
    assert night[~water].mean() > 5 * night[water].mean()  # city lights are on land
    assert "xplanet-images" in earth.provenance


def test_locate_reports_paths_or_how_to_install(tmp_path):
    found = datasets.locate()
    assert set(found) == {"stardist_nuclei", "stardist_he", "neon_crowns", "earth_day_night"}
    for name, value in found.items():
        if isinstance(value, str):
            assert value.startswith("missing: ") and ("pip install" in value or "apt-get" in value), name
        else:
            assert all(os.path.isfile(p) for p in value), name
    with pytest.raises(datasets.MissingData, match="apt-get install xplanet-images"):
        datasets.earth_day_night(str(tmp_path))


def test_cli_locate_json():
    import json

    from click.testing import CliRunner

    from deepvre.cli import main

    result = CliRunner().invoke(main, ["data", "locate", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(json.dumps(datasets.locate()))
