"""A real jupyter_server (pytest-jupyter's in-process server) with the deepvre extension enabled."""

import json
from pathlib import Path

import nbformat
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 (its fixtures)
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

PARAMETERS = 'epochs = 2\nlearning_rate = 0.01\nlabel = "cells"\naugment = False\n'


def make_notebook(path, parameters=PARAMETERS, body="result = epochs * learning_rate\nprint(label, result)"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Fine-tune"), cell, nbformat.v4.new_code_cell(body)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def jp_server_config():
    return Config({"ServerApp": {"jpserver_extensions": {"deepvre_jupyter": True}}})


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    """``api(method, path, body=None, **kw) -> (status, json)``, synchronous; errors are returned, not raised."""

    def call(method, path, body=None, params=None, headers=None, timeout=120):
        # tornado's default 20 s is less than a cancel may take on a loaded machine (it waits for the run)
        kwargs = {"method": method, "params": params, "headers": headers, "raise_error": True,
                  "request_timeout": timeout}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PUT"):
            kwargs["body"] = "{}"
        try:
            resp = jp_asyncio_loop.run_until_complete(jp_fetch("deepvre", "api", *path.split("/"), **kwargs))
        except HTTPClientError as err:
            data = err.response.body if err.response is not None else b"{}"
            return err.code, json.loads(data or b"{}")
        return resp.code, json.loads(resp.body or b"{}")

    return call


XSS_DESCRIPTION = (
    "**Bold claim.**\n\n<script>window.__deepvre_xss = 'script'</script>\n\n"
    '<img src="nope.png" onerror="window.__deepvre_xss = \'onerror\'">\n\nSee [docs](https://example.org).'
)
# The model's training notebook: trains a tiny Keras model on generated colour images and
# writes model.keras, metrics.json and preprocessing.json into its folder (the run folder).
TRAINING = """\
import json
import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 150)
x = rng.uniform(0, 0.3, (150, 8, 8, 3)).astype("float32")
for i, c in enumerate(y):
    x[i, :, :, c] += 0.7
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=epochs, verbose=0)
accuracy = float(model.evaluate(x, y, verbose=0)[1])
model.save("model.keras")
json.dump({"accuracy": round(accuracy, 4), "epochs": epochs}, open("metrics.json", "w"))
json.dump({"input": {"shape": [8, 8, 3], "dtype": "float32", "scale": 1.0, "offset": 0.0},
           "labels": ["crimson", "lime", "navy"]}, open("preprocessing.json", "w"))  # the new task's classes
print(label, accuracy)
"""


@pytest.fixture(scope="session")
def colours_model(tmp_path_factory):
    """``(folder, document)`` of a tiny real Keras model with a training notebook, ready to publish.

    Its description carries a ``<script>`` and an ``onerror`` handler, which must never run.
    """
    # isort: off
    import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)
    import keras
    # isort: on

    from tests.market.conftest import LABELS, colour_images, make_document

    folder = tmp_path_factory.mktemp("colours-model")
    keras.utils.set_random_seed(0)
    x, y = colour_images(200)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x / 255.0, y, epochs=3, verbose=0)
    model.save(folder / "model.keras")
    accuracy = float(model.evaluate(x / 255.0, y, verbose=0)[1])
    (folder / "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    (folder / "preprocessing.json").write_text(json.dumps(
        {"input": {"shape": [8, 8, 3], "dtype": "float32", "scale": 1 / 255.0, "offset": 0.0}, "labels": LABELS}))
    make_notebook(folder / "training.ipynb", parameters='epochs = 1\nlearning_rate = 0.01\nlabel = "colours"\n',
                  body=TRAINING)
    doc = make_document("colours", "1.0.0", description=XSS_DESCRIPTION)
    doc["deepvre"]["metrics"] = {"accuracy": accuracy}
    doc["deepvre"]["training"] = {"notebook": "training.ipynb", "parameters": {"epochs": 1}}
    return folder, doc


def publish_colours(root, colours_model):
    """Publish the colours model (public, owner ana) into a local catalog at ``root``."""
    from deepvre.market.catalog import Catalog

    folder, doc = colours_model
    catalog = Catalog(database_url=f"sqlite:///{root}/catalog.sqlite", store_url=str(root / "artifacts"))
    catalog.publish(doc, {p.name: p for p in folder.iterdir()}, "ana", visibility="public")
    return root


@pytest.fixture(scope="session")
def colours_market(tmp_path_factory, colours_model):
    """A local catalog folder holding the colours model, published by ana."""
    return publish_colours(tmp_path_factory.mktemp("market"), colours_model)


@pytest.fixture
def market_dir(colours_market, monkeypatch):
    """That catalog as this test's ``$DEEPVRE_MARKET_DIR`` (for this test only: a session-wide
    value would reach other folders' tests on the same xdist worker)."""
    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(colours_market))
    return colours_market


def write_photos(root):
    """``root``: two classes of real photographs (crops of scikit-image's samples), five each, and
    one corrupt file (``cat/broken.jpg``)."""
    from PIL import Image
    from skimage import data

    for label, image in (("cat", data.chelsea()), ("coffee", data.coffee())):
        folder = Path(root) / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(5):
            Image.fromarray(image[i * 20:i * 20 + 200, i * 30:i * 30 + 250]).save(folder / f"{i}.jpg")
    (Path(root) / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
