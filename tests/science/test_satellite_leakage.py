"""The Earth-observation notebook's split cannot leak: no spatial block in two splits and no pixel of
the daytime scene in two splits, for the seeds of smoke and full mode (on NASA's real images)."""

import json
import os

import numpy as np
import pytest

from deepvre.science import datasets, evaluation, satellite_tiles
from tests.prereqs import REPO, require

TILE, BLOCK, BINS = 16, 4, (0.5, 4.0)  # the notebook's defaults


@pytest.fixture(scope="module")
def grid():
    try:
        pair = datasets.earth_day_night()
    except datasets.MissingData as err:
        require(False, str(err))
    x, lights, origins = satellite_tiles.cut(pair.day, pair.night, TILE)
    keep = satellite_tiles.select(x, origins, TILE, pair.day.shape[0], max_latitude=60.0)
    return x[keep], lights[keep], origins[keep]


def test_no_block_and_no_pixel_in_two_splits(grid):
    x, lights, origins = grid
    y = satellite_tiles.classes_of(lights, BINS)
    groups = satellite_tiles.block_groups(origins, TILE, BLOCK)
    windows = satellite_tiles.windows(origins, TILE)
    assert len(set(groups)) > 100 and len(x) > 1000
    for seed in range(5):
        split = satellite_tiles.split_for_seed(groups, seed)
        counts = evaluation.check_no_leakage(split, groups, windows)
        assert min(counts.values()) >= 20  # blocks in each split
        for part in evaluation.SPLITS:  # every class in every split
            assert set(y[np.array(split) == part]) == {0, 1, 2}
    # each seed draws another split
    assert satellite_tiles.split_for_seed(groups, 0) != satellite_tiles.split_for_seed(groups, 1)


def test_a_tile_straddling_two_splits_is_caught():
    groups = ["r00c00", "r00c00", "r00c01"]
    with pytest.raises(evaluation.Leakage):
        evaluation.check_no_leakage(["train", "test", "test"], groups)
    # tiles of one grid never overlap, but a shifted window would, and is caught
    windows = [("day", 0, 0, 16, 16), ("day", 8, 8, 16, 16)]
    with pytest.raises(evaluation.Leakage):
        evaluation.check_no_leakage(["train", "test"], ["a", "b"], windows)


def test_tiles_blocks_and_latitudes():
    day = np.zeros((64, 128, 3), np.uint8)
    night = np.zeros((64, 128, 3), np.uint8)
    night[:16, 16:32] = 40
    x, lights, origins = satellite_tiles.cut(day, night, 16)
    assert x.shape == (32, 16, 16, 3) and origins[9].tolist() == [16, 16]
    assert lights[1] == 40 and lights.sum() == 40
    assert satellite_tiles.block_groups([[0, 0], [16, 48], [48, 64]], 16, 2) == ["r00c00", "r00c01", "r01c02"]
    np.testing.assert_allclose(satellite_tiles.latitude([[0, 0], [56, 0]], 8, 64), [78.75, -78.75])
    assert satellite_tiles.classes_of([0.0, 0.5, 3.9, 4.0], BINS).tolist() == [0, 1, 1, 2]


def test_balanced_linear_oversamples_the_minority():
    idx = satellite_tiles.oversampled([0, 0, 0, 0, 1])
    assert sorted(np.bincount(np.array([0, 0, 0, 0, 1])[idx]).tolist()) == [4, 4]
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    x = y[:, None] + rng.normal(0, 0.3, (100, 1))
    result = satellite_tiles.balanced_linear((x, y), (x, y), (x, y), 2)
    assert result["balanced_accuracy"] > 0.9


def test_the_notebook_uses_this_split_and_checks_it():
    with open(os.path.join(REPO, "notebooks", "satellite", "satellite.ipynb")) as fh:
        source = "".join("".join(c["source"]) for c in json.load(fh)["cells"] if c["cell_type"] == "code")
    assert "satellite_tiles.split_for_seed(" in source
    assert "evaluation.check_no_leakage(names, groups, windows)" in source
    assert '"split": (1.0, 0.0, 0.0)' in source  # the pipeline does not split on its own
    assert all(w in source for w in ("evaluation.claim(", "evaluation.mean_ci(", "evaluation.colour_statistics(",
                                     "batchnorm.reestimate(", "evaluation.comparison("))
