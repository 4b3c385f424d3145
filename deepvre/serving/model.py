"""The ``deepaas.v2.model`` adapter: any catalog model behind the real DEEPaaS API.

``deepvre serve NAME[:VERSION]`` registers this module under the model's name and starts
``deepaas-run``. Which model it wraps comes from the environment:

- ``DEEPVRE_SERVE_MODEL``: ``NAME[:VERSION]`` in the marketplace;
- ``DEEPVRE_SERVE_DIR``: the folder its artifact is pulled into (checked against its sha256s);
- the marketplace client's own variables (``DEEPVRE_MARKET_URL``, ``DEEPVRE_MARKET_TOKEN``,
  ``DEEPVRE_MARKET_DIR``).

``predict`` takes an uploaded image (``data``) or a JSON array (``array``) and returns the
``top_k`` labels with their probabilities (and deletes the upload DEEPaaS wrote for it); input it
cannot take raises :class:`~deepvre.serving.preprocessing.InputError`, which the launcher answers
with a 400 and the reason; ``train`` re-runs the model's
training notebook with papermill through :mod:`deepvre.runs`, with the given parameters, and
only for the model's owner: it runs that notebook in this account.
"""

import functools
import getpass
import json
import os
from pathlib import Path

from marshmallow import validate
from webargs import fields

import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)

from ..site.environment import Environment
from . import preprocessing
from .preprocessing import InputError

TOP_K = 5  # labels per sample unless asked
TOP_K_MAX = 100

prediction = {"label": fields.Str(required=True), "probability": fields.Float(required=True)}
schema = {
    "status": fields.Str(),
    "model": fields.Str(),
    "predictions": fields.List(fields.List(fields.Nested(prediction))),
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
    """Load the model and run it once, so that the first requests (maybe concurrent) find it ready."""
    import numpy as np

    model, spec = loaded()
    for rows in (1, 2):  # TensorFlow traces batches of 1, then any size: not during the first stacked call
        model.predict_on_batch(np.zeros((rows, *spec["input"]["shape"]), spec["input"].get("dtype", "float32")))


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
        "top_k": fields.Int(
            load_default=TOP_K, validate=validate.Range(min=1, max=TOP_K_MAX),
            metadata={"description": f"How many labels (best first) to return per sample, 1 to {TOP_K_MAX}."},
        ),
    }


BATCHING = {"max_rows": 4, "workers": 4}  # the launcher's --max-batch and --model-calls


@functools.lru_cache(maxsize=1)
def batcher():
    """The service's model calls: concurrent requests stacked into one (:mod:`.batching`)."""
    from .batching import Batcher

    model, _ = loaded()
    return Batcher(model.predict_on_batch, **BATCHING)


def predict_array(x, top_k=TOP_K, run=None):
    """Batch input -> the response (the ``top_k`` labels of each sample), shared with in-process use.

    ``run`` calls the model (default ``predict_on_batch``, here and now; the service passes its
    :func:`batcher`)."""
    model, spec = loaded()
    probs = (run or model.predict_on_batch)(x)
    labels = spec.get("labels") or []
    entry, _ = artifact()
    return {
        "status": "OK",
        "model": f"{entry['name']}:{entry['version']}",
        "predictions": [preprocessing.top_labels(p, labels, top_k) for p in probs],
    }


def model_input(data=None, array=None):
    """The request's ``data`` (DEEPaaS's ``UploadedFile``: its copy is ours to remove) or ``array``
    (JSON text) -> a batch for the model; :class:`InputError` when neither fits."""
    _, spec = loaded()
    if data is not None:
        upload = getattr(data, "filename", None)
        if not upload:
            raise InputError("`data` must be a file upload (multipart/form-data), not a text field")
        try:
            with open(upload, "rb") as src:
                return preprocessing.image_array(src.read(), spec)
        finally:
            if os.path.isfile(upload):
                os.unlink(upload)
    if array:
        try:
            values = json.loads(array)
        except ValueError as err:
            raise InputError(f"`array` is not JSON: {err}") from None
        except RecursionError:  # e.g. [[[[...]]]] thousands deep
            raise InputError("`array` is nested too deep") from None
        return preprocessing.array_input(values, spec)
    raise InputError("give an image file as the form field `data` or a JSON array as `array` "
                     "(fields: data, array, top_k)")


def predict(**kwargs):
    x = model_input(kwargs.get("data"), kwargs.get("array"))
    return predict_array(x, kwargs.get("top_k") or TOP_K, batcher())


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
