"""``deepvre market rank``: the catalog's models ranked on real preprocessed data.

The data: the biology notebook's real crops (four classes), written as class folders and preprocessed
by the real ``images`` pipeline on a LocalCluster. The catalog: the converted ImageNet MobileNetV2
(the seed's base model), two models that cannot take the data, and another user's private model
that could. The ranking runs on Dask with the pipelines' cluster factory."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from deepvre.science import ranking
from tests.prereqs import require

SIZE = 96


# --- the pure parts -----------------------------------------------------------------------------

def data_like(shape=(SIZE, SIZE, 3), kind="image", pixel=255.0):
    return {"input_kind": kind, "shape": tuple(shape), "pixel": pixel}


def document(shape, kind="image", preprocessing=None, output="probabilities", classes=4):
    section = {"input": {"shape": list(shape), "dtype": "float32", "kind": kind},
               "output": {"kind": output, "shape": [classes]}}
    if preprocessing is not None:
        section["input"]["preprocessing"] = preprocessing
    return {"deepvre": section}


def test_fit_says_why_a_model_cannot_take_the_data():
    assert ranking.fit(document([16], kind="array"), data_like())[1] == \
        "takes array input; the data is image samples of shape [96, 96, 3]"
    assert ranking.fit(document([96, 96, 1]), data_like())[1] == "takes 1 channel(s); the data has 3"
    assert "has 2 axes" in ranking.fit(document([96, 3]), data_like())[1]
    assert ranking.fit(document([8], kind="array"), data_like((16,), kind="array"))[1] == "input shape [8]; the data's samples are [16]"
    reason = ranking.fit(document([96, 96, 3], preprocessing={"scale": 1 / 255}), data_like(pixel=None))[1]
    assert "standardised" in reason


def test_fit_plans_the_input_from_the_declared_preprocessing():
    # the base model takes pixels 0..255; the pipeline stored pixel / 255: the data is multiplied by 255
    plan, reason = ranking.fit(document([224, 224, 3], preprocessing={"scale": 1.0, "offset": 0.0}, classes=1000),
                               data_like())
    assert reason is None and plan["resize"] and plan["source"] and plan["scale"] == 255.0
    # a fine-tuned model of the notebooks takes pixel / 255 at the data's size: fed as stored
    plan, _ = ranking.fit(document([96, 96, 3], preprocessing={"scale": 1 / 255}), data_like())
    assert not plan["resize"] and plan["scale"] == pytest.approx(1.0)
    plan, _ = ranking.fit(document([96, 96, 3], output="regression", classes=1), data_like())
    assert not plan["source"]


def rows(*pairs):
    out = [{"model": f"m{i}", "logme": logme, "probe_accuracy": acc, "floor": i == 0}
           for i, (logme, acc) in enumerate(pairs)]
    return ranking.ranked(out)


def test_readings_follow_the_logme_gap_to_the_random_network():
    by_model = {r["model"]: r for r in rows((0.10, 0.60), (0.90, 0.95), (0.12, 0.58), (0.50, 0.80), (0.05, 0.70))}
    assert [by_model[m]["rank"] for m in ("m1", "m3", "m2", "m0", "m4")] == [1, 2, 3, 4, 5]
    assert by_model["m0"]["reading"].startswith("the floor")
    assert by_model["m1"]["reading"].startswith("highest LogME, +0.800 over the random network")
    assert by_model["m2"]["reading"].startswith("LogME close to the random network (+0.020): expect little gain")
    assert by_model["m3"]["reading"].startswith("LogME +0.400 over the random network, 0.400 below the best")
    assert by_model["m4"]["reading"].startswith("LogME below the random network (-0.050): expect no gain")
    assert "the probe disagrees" in by_model["m4"]["reading"]  # probe 0.70 beats the floor's 0.60
    assert "disagrees" not in by_model["m1"]["reading"]


def test_bad_data_is_a_clear_error(tmp_path):
    with pytest.raises(ranking.DataError, match="no such folder"):
        ranking.describe_data(tmp_path / "missing")
    with pytest.raises(ranking.DataError, match="no manifest.json.*deepvre preprocess"):
        ranking.describe_data(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ranking.DataError, match="manifest.json is damaged"):
        ranking.describe_data(tmp_path)


# --- a real ranking -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """The biology crops by class (no block in the folder name), preprocessed at 96 px by the real pipeline."""
    from PIL import Image

    from deepvre.pipelines import preprocess
    from deepvre.science import biology_crops, datasets

    try:
        crops, records = biology_crops.cut(per_class=150, seed=0)
    except datasets.MissingData as err:
        require(False, str(err))
    root = tmp_path_factory.mktemp("ranking")
    for n, (crop, record) in enumerate(zip(crops, records)):
        folder = root / "crops" / record["class"]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"{n:05d}.png")
    out = root / "cells"
    preprocess("images", str(root / "crops"), str(out), {"size": SIZE, "split": (0.6, 0.2, 0.2)},
               cluster="local", n_workers=1, progress=False)
    return out


def tiny_model(folder, shape, n_out, kind="image"):
    import keras


    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3)(inputs) if len(shape) == 3 else inputs
    x = keras.layers.GlobalAveragePooling2D()(x) if len(shape) == 3 else x
    outputs = keras.layers.Dense(n_out, activation="softmax")(x)
    folder.mkdir(parents=True)
    keras.Model(inputs, outputs).save(folder / "model.keras")
    return {"model.keras": str(folder / "model.keras")}, (shape, kind)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, mobilenet_dir):
    """The base model (system account), a grayscale and an array model (public), and bob's private model."""
    from deepvre.market.catalog import Caller, Catalog
    from deepvre.market.client import LocalMarket
    from deepvre.science import base_models
    from deepvre.training.documents import model_document

    root = tmp_path_factory.mktemp("catalog")
    # the local catalog's own layout ($DEEPVRE_MARKET_DIR), for the command line too
    cat = Catalog(database_url=f"sqlite:///{root / 'catalog.sqlite'}", store_url=str(root / "artifacts"))
    cat.test_root = root
    base_models.publish_mobilenet(mobilenet_dir, LocalMarket(cat))
    for owner, name, shape, kind, visibility in (("carl", "gray-cells", (SIZE, SIZE, 1), "image", "public"),
                                                 ("carl", "flow-net", (16,), "array", "public"),
                                                 ("bob", "bob-cells", (SIZE, SIZE, 3), "image", "private")):
        files, _ = tiny_model(root / name, shape, 4, kind)
        doc = model_document(name, "1.0.0", "biology", name, "a small test model", shape, "probabilities",
                             labels=["a", "b", "c", "d"], visibility=visibility, input_extra={"kind": kind})
        LocalMarket(cat, Caller(owner)).publish(doc, files, visibility=visibility)
    return cat


def test_imagenet_ranks_above_the_random_network_and_others_are_skipped(cells, catalog, tmp_path):
    from deepvre.market.catalog import Caller
    from deepvre.market.client import LocalMarket

    ana = LocalMarket(catalog, Caller("ana"))
    stages = []
    result = ranking.rank(str(cells), market=ana, cluster="local", n_workers=2, models_dir=str(tmp_path / "models"),
                          progress=lambda stage, done, total: stages.append((stage, done, total)))
    models = {row["model"]: row for row in result["models"]}
    assert set(models) == {"mobilenet-v2-imagenet:1.0.0", "random:mobilenet-v2-imagenet:1.0.0"}
    imagenet, floor = models["mobilenet-v2-imagenet:1.0.0"], models["random:mobilenet-v2-imagenet:1.0.0"]
    assert floor["floor"] and not imagenet["floor"] and imagenet["resized"]
    # the claim of the ranking: ImageNet features suit these photos better than the same network untrained
    assert imagenet["logme"] > floor["logme"] + ranking.CLOSE, (imagenet, floor)
    assert imagenet["rank"] == 1 and floor["rank"] == 2
    assert imagenet["reading"].startswith("highest LogME")
    assert imagenet["leep"] is not None and -np.log(4) < imagenet["leep"] < 0
    assert imagenet["probe_accuracy"] >= floor["probe_accuracy"] and imagenet["probe_split"] == "test"
    assert imagenet["features"] == 1280
    # incompatible models are skipped with their reason; bob's private model is not even named
    skipped = {s["model"]: s["reason"] for s in result["skipped"]}
    assert skipped == {"gray-cells:1.0.0": "takes 1 channel(s); the data has 3",
                       "flow-net:1.0.0": f"takes array input; the data is image samples of shape [{SIZE}, {SIZE}, 3]"}
    assert "bob-cells" not in json.dumps(ranking.as_json(result))
    # ... which bob himself would have had ranked: the test above could fail
    bob_compatible, _ = ranking.candidates(LocalMarket(catalog, Caller("bob")), ranking.describe_data(cells))
    assert "bob-cells" in {c["entry"]["name"] for c in bob_compatible}
    assert result["data"]["splits"]["train"] > 200 and result["data"]["n_classes"] == 4
    counted = [s for s in stages if s[0] in ("features", "scoring")]
    assert counted[0][1] == 0 and counted[-1] == ("scoring", counted[-1][2], counted[-1][2]) and stages[-1][0] == "done"
    assert [s[1] for s in counted] == sorted(s[1] for s in counted)
    # the features on Dask are the features computed here, without Dask (the floor's weights included)
    here = ranking.rank(str(cells), market=ana, in_process=True, models_dir=str(tmp_path / "models"))
    assert {r["model"]: round(r["logme"], 4) for r in here["models"]} == \
        {r["model"]: round(r["logme"], 4) for r in result["models"]}


def test_no_compatible_model_and_damaged_data_are_clear_errors(cells, catalog, tmp_path):
    import shutil

    from deepvre.market.catalog import Caller, Catalog
    from deepvre.market.client import LocalMarket

    empty = Catalog(database_url=f"sqlite:///{tmp_path / 'index.sqlite'}", store_url=str(tmp_path / "store"))
    with pytest.raises(ranking.NoCompatibleModel, match="no model you can see takes this data.*catalog is empty"):
        ranking.rank(str(cells), market=LocalMarket(empty, Caller("ana")), in_process=True)
    damaged = tmp_path / "damaged"
    shutil.copytree(cells, damaged)
    shard = next(p for p in sorted((damaged / "train").glob("shard-*.zarr")))
    chunk = next(p for p in sorted(shard.rglob("*")) if p.is_file() and "/x/" in str(p) and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"\0")
    with pytest.raises(ranking.DataError, match="does not match its sha256"):
        ranking.rank(str(damaged), market=LocalMarket(catalog, Caller("ana")), in_process=True)


def test_cli_ranks_and_fails_clearly(cells, catalog, tmp_path, monkeypatch):
    from deepvre.cli import main

    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(catalog.test_root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["market", "rank", str(cells), "--workers", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["rank", "model:version", "LogME", "LEEP", "probe", "reading"]
    ranked = [line.split()[1] for line in lines[2:] if line.split()[0].isdigit()]
    # the local user curates the local catalog and sees bob's model too; it is scored like any other
    assert set(ranked) == {"mobilenet-v2-imagenet:1.0.0", "random:mobilenet-v2-imagenet:1.0.0", "bob-cells:1.0.0"}
    assert ranked.index("mobilenet-v2-imagenet:1.0.0") < ranked.index("random:mobilenet-v2-imagenet:1.0.0")
    assert any("gray-cells:1.0.0" in line and "skipped: takes 1 channel(s)" in line for line in lines)
    assert "features: " in result.stderr and "features: " not in result.stdout  # progress on stderr
    # --limit keeps the first models (base models first) and says why the others are left out
    from deepvre.market.client import connect

    kept, skipped = ranking.candidates(connect(), ranking.describe_data(cells), limit=1)
    assert [c["entry"]["name"] for c in kept] == ["mobilenet-v2-imagenet"]
    assert {"model": "bob-cells:1.0.0", "reason": "over --limit 1"} in skipped


def test_cli_prints_the_table_and_errors(cells, catalog, tmp_path, monkeypatch):
    from deepvre.cli import main
    from deepvre.cli.rank import table

    result = CliRunner().invoke(main, ["market", "rank", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "DataError" in result.output and "no such folder" in result.output
    result = CliRunner().invoke(main, ["market", "rank", str(tmp_path), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["error"] == "DataError"
    fake = {"data": {"path": "/d", "samples": 10, "input_kind": "image", "shape": [8, 8, 3], "n_classes": 2,
                     "splits": {"train": 6, "val": 2, "test": 2}},
            "seconds": 1.5, "basis": "LogME ...",
            "models": ranking.ranked([{"model": "random:a:1", "logme": 0.1, "leep": -0.69, "probe_accuracy": 0.5,
                                       "floor": True},
                                      {"model": "a:1", "logme": 0.7, "leep": None, "probe_accuracy": 0.9,
                                       "floor": False}]),
            "skipped": [{"model": "b:1", "reason": "takes 1 channel(s); the data has 3"}]}
    lines = table(fake)
    assert lines[2].split()[:5] == ["1", "a:1", "0.700", "-", "0.90"]
    assert lines[3].split()[:5] == ["2", "random:a:1", "0.100", "-0.690", "0.50"]
    assert "skipped: takes 1 channel(s)" in lines[4]
