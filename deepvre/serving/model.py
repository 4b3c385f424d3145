"""The ``deepaas.v2.model`` adapter: any catalog model behind the real DEEPaaS API.

``deepvre serve NAME[:VERSION]`` registers this module under the model's name and starts
``deepaas-run``. Which model it wraps comes from the environment:

- ``DEEPVRE_SERVE_MODEL``: ``NAME[:VERSION]`` in the marketplace;
- ``DEEPVRE_SERVE_DIR``: the folder its artifact is pulled into (checked against its sha256s);
- the marketplace client's own variables (``DEEPVRE_MARKET_URL``, ``DEEPVRE_MARKET_TOKEN``,
  ``DEEPVRE_MARKET_DIR``).

``predict`` takes an uploaded image (``data``) or a JSON array (``array``) and returns labels and
probabilities (and deletes the upload DEEPaaS wrote for it); ``train`` re-runs the model's
training notebook with papermill through :mod:`deepvre.runs`, with the given parameters, and
only for the model's owner: it runs that notebook in this account.
"""

import functools
import getpass
import json
import os
from pathlib import Path

from webargs import fields

import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)

from ..site.environment import Environment
from . import preprocessing

prediction = {"label": fields.Str(required=True), "probability": fields.Float(required=True)}
schema = {
    "status": fields.Str(),
    "model": fields.Str(),
    "predictions": fields.List(fields.List(fields.Nested(prediction))),
    "probabilities": fields.List(fields.List(fields.Float())),
}


@functools.lru_cache(maxsize=1)
def artifact():
    """``(entry, folder)`` of the served model, pulled once."""
    from deepvre.market.client import connect, parse_ref

    env = Environment()
    ref = env.serve_model
    if not ref:
        raise RuntimeError("DEEPVRE_SERVE_MODEL is not set (NAME[:VERSION] of a catalog model)")
    name, version = parse_ref(ref)
    folder = Path(env.serve_dir or Path.home() / ".cache" / "deepvre" / "serve" / name)
    client = connect()
    version = version or client.show(name)["version"]
    folder = folder / version
    entry = client.pull(name, version, folder, overwrite=True)
    return entry, folder


@functools.lru_cache(maxsize=1)
def loaded():
    """``(keras model, preprocessing spec)``; the model is loaded with ``safe_mode=True``."""
    from deepvre.market import modelfile

    _, folder = artifact()
    spec = preprocessing.read_spec(folder / "preprocessing.json")
    return modelfile.load(folder / "model.keras"), spec


def server_user():
    """Whose service this is: the hub user of this server (``$JUPYTERHUB_USER``), else the account."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def served_owner(ref=None):
    """The marketplace owner of ``ref`` (``NAME[:VERSION]``; default the served model)."""
    from deepvre.market.client import connect, parse_ref

    name, version = parse_ref(ref or Environment().serve_model or "")
    return connect().show(name, version)["owner"]


def get_metadata():
    entry, _ = artifact()
    doc = entry["metadata"]
    return {
        "id": f"{entry['name']}:{entry['version']}",
        "name": entry["name"],
        "version": entry["version"],
        "description": doc.get("description", ""),
        "summary": doc.get("summary", ""),
        "author": entry["owner"],
        "license": doc.get("license", ""),
        "url": (doc.get("links") or {}).get("source_code", ""),
        "metadata": doc,
    }


def warm():
    loaded()


def get_predict_args():
    return {
        "data": fields.Field(
            required=False,
            metadata={"description": "An image file (PNG, JPEG, ...) to classify.", "location": "form", "type": "file"},
        ),
        "array": fields.Str(
            required=False,
            metadata={"description": "A JSON array shaped like one input sample, or a batch of them."},
        ),
        "top": fields.Int(load_default=5, metadata={"description": "How many labels to return per sample."}),
    }


def predict_array(x, top=5):
    """Batch input -> the response (labels and probabilities), shared with in-process use."""
    model, spec = loaded()
    probs = model.predict(x, verbose=0)
    labels = spec.get("labels") or []
    entry, _ = artifact()
    return {
        "status": "OK",
        "model": f"{entry['name']}:{entry['version']}",
        "predictions": [preprocessing.top_labels(p, labels, top) for p in probs],
        "probabilities": [[float(v) for v in p] for p in probs],
    }


def predict(**kwargs):
    _, spec = loaded()
    top = kwargs.get("top") or 5
    if kwargs.get("data") is not None:
        upload = kwargs["data"].filename  # DEEPaaS's copy of the upload: ours to remove
        try:
            with open(upload, "rb") as src:
                x = preprocessing.image_array(src.read(), spec)
        finally:
            if os.path.isfile(upload):
                os.unlink(upload)
    elif kwargs.get("array"):
        x = preprocessing.array_input(json.loads(kwargs["array"]), spec)
    else:
        raise ValueError("give an image file as `data` or a JSON array as `array`")
    return predict_array(x, top)


def get_train_args():
    return {
        "parameters": fields.Str(
            load_default="{}",
            metadata={"description": 'Papermill parameters for the training notebook, as JSON, e.g. {"epochs": 2}.'},
        ),
    }


def train(**kwargs):
    """Re-run the model's training notebook (papermill, via deepvre.runs) with the given parameters."""
    from deepvre import runs

    entry, folder = artifact()
    if entry["owner"] != server_user():
        raise PermissionError(f"train is for the model's owner only: {entry['name']}:{entry['version']} "
                              f"belongs to {entry['owner']!r}, not {server_user()!r}")
    notebook = ((entry["metadata"].get("deepvre") or {}).get("training") or {}).get("notebook")
    if not notebook or not (folder / notebook).is_file():
        raise ValueError(f"{entry['name']}:{entry['version']} has no training notebook")
    try:
        parameters = json.loads(kwargs.get("parameters") or "{}")
    except ValueError as err:
        raise runs.ParameterError(f"parameters must be a JSON object: {err}") from None
    runs_dir = Environment().runs_dir or str(folder.parent / "runs")
    run = runs.start(str(folder / notebook), parameters, runs_dir=runs_dir)
    result = {k: v for k, v in run.to_dict().items() if k in ("id", "path", "params", "status", "metrics", "output")}
    if result["status"].get("state") != "done":
        raise RuntimeError(f"training run {run.id} {result['status'].get('state')}: {result['status'].get('error')} ({run.path})")
    return result  # DEEPaaS answers it as ``result.output`` of the training
