"""Images: the three layouts, corrupt files, stratified split, inputs untouched."""

import json

import numpy as np

from deepvre.pipelines.dataset import open_split
from deepvre.pipelines.run import preprocess
from deepvre.pipelines.splits import stratified_split

from .data import boxes_layout, class_folders, masks_layout, tree_sha


def test_stratified_split_is_seeded_and_stratified():
    labels = ["a"] * 50 + ["b"] * 30
    s1 = stratified_split(labels, (0.6, 0.2, 0.2), seed=7)
    assert s1 == stratified_split(labels, (0.6, 0.2, 0.2), seed=7)
    assert s1 != stratified_split(labels, (0.6, 0.2, 0.2), seed=8)
    for label, n in (("a", 50), ("b", 30)):
        got = [s for s, lab in zip(s1, labels) if lab == label]
        assert got.count("train") == round(0.6 * n) and got.count("val") == round(0.2 * n)


def test_class_folders(tmp_path, dask_client, caplog):
    src = class_folders(str(tmp_path / "in"), n_per_class=10)
    before = tree_sha(src)
    out = str(tmp_path / "out")
    result = preprocess("images", src, out, {"size": "32", "shard_size": "4", "split": "0.6,0.2,0.2"},
                        client=dask_client, progress=False)
    m = result.manifest
    assert tree_sha(src) == before  # inputs never modified
    assert m["summary"]["classes"] == ["healthy", "sick"]
    # class 1: 10 files -> 6/2/2; class 0: 10 good + 1 corrupt -> 7/2/2 minus the corrupt one
    assert [m["splits"][s]["counts"]["1"] for s in ("train", "val", "test")] == [6, 2, 2]
    assert sum(m["splits"][s]["counts"]["0"] for s in ("train", "val", "test")) == 10
    assert m["bad_records"]["count"] == 1
    assert m["bad_records"]["records"][0]["record"] == "healthy/corrupt0.png"
    assert "healthy/corrupt0.png" in caplog.text
    x, y = open_split(out, "train")
    assert x.shape[1:] == (32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert (y == 1).sum() == 6 and len(y) == m["splits"]["train"]["n"]
    with open(f"{out}/manifest.json") as f:
        on_disk = json.load(f)
    for shard in on_disk["shards"]:
        assert len(shard["sha256"]) == 64 and shard["arrays"]["x"]["shape"][1:] == [32, 32, 3]


def test_masks_give_patches_around_objects(tmp_path, dask_client):
    src = masks_layout(str(tmp_path / "in"), n=4)
    out = str(tmp_path / "out")
    m = preprocess("images", src, out, {"size": "16", "split": "0.5,0.25,0.25", "margin": "0.25"},
                   client=dask_client, progress=False).manifest
    assert m["summary"]["layout"] == "masks"
    assert sum(s["counts"]["object"] for s in m["splits"].values()) == 12  # 4 images x 3 objects
    x, y = open_split(out, "train")
    assert x.shape == (6, 16, 16, 3) and y.shape == (6, 16, 16)
    assert y.min() == 0 and y.max() == 1 and 0.3 < y.mean() < 0.7  # a 12 px object in an 18 px patch


def test_boxes_csv(tmp_path, dask_client):
    src = boxes_layout(str(tmp_path / "in"), n=6)
    out = str(tmp_path / "out")
    m = preprocess("images", src, out, {"size": "24"}, client=dask_client, progress=False).manifest
    assert m["summary"]["classes"] == ["Snag", "Tree"]
    total = {}
    for s in m["splits"].values():
        for k, v in s["counts"].items():
            total[k] = total.get(k, 0) + v
    assert total == {"0": 6, "1": 12}
    assert m["bad_records"]["count"] == 1 and "empty box" in m["bad_records"]["records"][0]["error"]
