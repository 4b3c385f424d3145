"""The biology notebook's split cannot leak: no spatial block in two splits, no overlapping crops of
one source image in two splits, for the seeds of smoke and full mode (on the real shipped images)."""

import json
import os

import numpy as np
import pytest

from deepvre.science import biology_crops, datasets, evaluation
from tests.prereqs import REPO, require


@pytest.fixture(scope="module", params=[12, 60], ids=["smoke", "full"])
def cut(request):
    try:
        return biology_crops.cut(per_class=request.param, seed=0)
    except datasets.MissingData as err:
        require(False, str(err))


def test_no_group_and_no_pixel_in_two_splits(cut):
    crops, records = cut
    groups = [r["group"] for r in records]
    windows = [[r["source"], *r["window"]] for r in records]
    for seed in range(5):
        split = biology_crops.split_for_seed(records, seed)
        counts = evaluation.check_no_leakage(split, groups, windows)
        assert min(counts.values()) >= 1
        for cls in biology_crops.CLASSES:  # every class is trained on and tested
            assert {s for s, r in zip(split, records) if r["class"] == cls} >= {"train", "test"}
        # the same split from the group names alone (what the notebook has after the pipeline)
        assert biology_crops.split_for_seed(groups, seed) == split


def test_crops_lie_inside_their_block(cut):
    crops, records = cut
    shapes = {}
    for crop, r in zip(crops, records):
        y0, x0, h, w = r["window"]
        assert crop.shape[:2] == (h, w)
        source = r["source"]
        if source not in shapes:
            shapes[source] = {"stardist": (512, 512), "OSBS_029": (400, 400), "SOAP_061": (400, 400),
                              "retina": (1411, 1411)}[source]
        block = biology_crops.block_of(y0, x0, h, shapes[source], biology_crops.GRID[source])
        assert r["group"] == f"{source}-b{block:02d}"


def test_a_straddling_window_has_no_block():
    assert biology_crops.block_of(0, 0, 32, (128, 128), 2) == 0
    assert biology_crops.block_of(64, 64, 64, (128, 128), 2) == 3
    assert biology_crops.block_of(40, 0, 32, (128, 128), 2) is None


def test_folder_names_round_trip(tmp_path, cut):
    crops, records = cut
    biology_crops.write_class_folders(tmp_path, crops[:5], records[:5])
    for name in os.listdir(tmp_path):
        cls, group = biology_crops.parse_folder(name)
        assert cls in biology_crops.CLASSES and biology_crops.source_of(group) in biology_crops.GRID
    assert biology_crops.parse_folder("oak") == ("oak", None)


def test_the_notebook_uses_this_split_and_checks_it():
    with open(os.path.join(REPO, "notebooks", "biology", "biology.ipynb")) as fh:
        source = "".join("".join(c["source"]) for c in json.load(fh)["cells"] if c["cell_type"] == "code")
    assert "biology_crops.split_for_seed(" in source
    assert source.count("evaluation.check_no_leakage(") >= 2
    assert '"split": (1.0, 0.0, 0.0)' in source  # the pipeline does not split on its own
    assert np.all([w in source for w in ("evaluation.claim(", "evaluation.mean_ci(", "colour_baseline(")])
