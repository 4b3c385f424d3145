"""Training-toolkit fixtures: a throw-away local catalog and a tiny real pipeline output."""

import numpy as np
import pytest

import deepvre.market  # noqa: F401  (loads the system SQLite before TensorFlow)


@pytest.fixture
def market(tmp_path):
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import LocalMarket

    return LocalMarket(Catalog(database_url=f"sqlite:///{tmp_path / 'index.sqlite'}", store_url=str(tmp_path / "store")))


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    """Two classes of 12 small PNGs each: dark and bright noise."""
    from PIL import Image

    root = tmp_path_factory.mktemp("classes")
    rng = np.random.default_rng(0)
    for name, low in (("dark", 0), ("bright", 150)):
        (root / name).mkdir()
        for i in range(12):
            pixels = rng.integers(low, low + 100, (20, 20, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def data_output(class_folders, tmp_path_factory):
    """The ``images`` pipeline run for real (Dask, one local worker) on :func:`class_folders`."""
    from deepvre.pipelines.run import preprocess

    out = tmp_path_factory.mktemp("prepared") / "data"
    preprocess("images", str(class_folders), str(out), {"size": 16}, n_workers=1, progress=False)
    return out


def tiny_classifier(shape=(16, 16, 3), classes=2):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="dense")(x)
    return keras.Model(inputs, outputs)
