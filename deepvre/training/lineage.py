"""Publish a trained model to the marketplace with its lineage.

Lineage = the base model (catalog name and version), the training data (sha256 of the
pipeline's ``manifest.json`` and of every shard), the notebook's parameters, the executed
notebook itself and the environment (``deepvre.environment``: :mod:`deepvre.runs.platform`), all in
the entry's ``deepvre`` section and files::

    from deepvre.market.client import connect
    market = connect()                       # the hub's marketplace, or the local catalog
    entry = publish_trained(market, "out", name="cells-mobilenet", base=("mobilenet-v2-imagenet", "1.0.0"),
                            data_output="out/data", parameters=params, notebook="out/biology.ipynb",
                            labels=classes, use_case="biology", title="...", summary="...")

For ``deepvre market verify`` (:mod:`deepvre.runs.reproduce`) the section also holds the input
files a parameter names outside the run's folder (``inputs``: path -> sha256) and the folder the
model was published from (``training.output``, relative to the run's folder).

Under ``deepvre run`` (``$DEEPVRE_RUN_DIR`` set) the entry also names the run: its file ``run.json``
is ``{id, path, provenance}``. The notebook publishes before its last cells run, so the copy in the
artifact is a snapshot; the runner writes ``RUN_DIR/provenance.json`` once the run has ended, with
the sha256 of the FINAL ``output.ipynb`` and the models the run published (listed by this module in
``RUN_DIR/published.json``). Catalog versions stay immutable; the pointer goes from the entry to the
run folder, and back through ``provenance.json``.

Works with no hub: :func:`deepvre.market.client.connect` opens the local catalog
(``$DEEPVRE_MARKET_DIR``) when no marketplace URL is set.
"""

import json
import os

from deepvre import atomic
from deepvre.checksums import file_sha256 as _sha256
from deepvre.runs import platform
from deepvre.science import base_models
from deepvre.site.environment import Environment

from .documents import model_document

BASE_NAME, BASE_VERSION = base_models.MOBILENET_NAME, base_models.MOBILENET_VERSION


def executed_notebook(explicit=""):
    """The executed copy of the running notebook, for the lineage: ``explicit`` if given, else
    ``$DEEPVRE_RUN_DIR/output.ipynb`` under ``deepvre run``, else the newest ``*.ipynb`` in the working
    folder (papermill's output when run by hand with ``--cwd``), else ``""``."""
    if explicit:
        return explicit
    run_dir = Environment().run_dir
    if run_dir:
        return os.path.join(run_dir, "output.ipynb")
    found = sorted((f for f in os.listdir(".") if f.endswith(".ipynb")), key=os.path.getmtime)
    return found[-1] if found else ""


def current_run():
    """``{id, path, provenance}`` of the ``deepvre run`` executing this process, or None."""
    env = Environment()
    if not env.run_dir:
        return None
    run_dir = os.path.abspath(env.run_dir)
    return {"id": env.run_id or os.path.basename(run_dir), "path": run_dir,
            "provenance": os.path.join(run_dir, "provenance.json")}


def record_published(run, entry, notebook):
    """Append ``entry`` (and the sha256 of the notebook snapshot it carries) to ``RUN/published.json``."""
    path = os.path.join(run["path"], "published.json")
    try:
        with open(path) as fh:
            published = json.load(fh)
    except FileNotFoundError:
        published = []
    published.append({"name": entry["name"], "version": entry["version"],
                      "notebook_snapshot": {"file": os.path.basename(notebook), "sha256": _sha256(notebook)}})
    atomic.write_json(path, published, indent=1)


def data_manifest(output):
    """``{file: sha256}`` of a pipeline output: its ``manifest.json`` and every shard it lists."""
    path = os.path.join(output, "manifest.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{output}: no manifest.json (is it a deepvre preprocess output?)")
    with open(path) as fh:
        manifest = json.load(fh)
    sums = {"manifest.json": _sha256(path)}
    for record in manifest.get("shards", []):
        sums[record["path"]] = record["sha256"]
    return sums


def _inside(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def input_files(parameters, root=None):
    """``{absolute path: sha256}`` of the files that string ``parameters`` name outside ``root`` (the
    working folder, a run's own: what the notebook writes itself is not an input), folders walked."""
    root = root or os.getcwd()
    found = {}
    for value in parameters.values():
        if not isinstance(value, str) or not value or "\n" in value or not os.path.exists(value):
            continue
        path = os.path.abspath(value)
        if _inside(path, root):
            continue
        if os.path.isfile(path):
            found[path] = _sha256(path)
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                found[os.path.join(folder, name)] = _sha256(os.path.join(folder, name))
    return found


def next_version(market, name):
    """``1.0.0`` for a new name, else the latest version with its last number plus one."""
    from deepvre.market.catalog import NotFound

    try:
        versions = market.versions(name)
    except NotFound:
        return "1.0.0"
    names = [v["version"] if isinstance(v, dict) else str(v) for v in versions]
    if not names:
        return "1.0.0"
    latest = names[0]
    numbers = [int(p) for p in latest.split("-")[0].split("+")[0].split(".")]
    numbers += [0] * (3 - len(numbers))
    numbers[-1] += 1
    return ".".join(map(str, numbers))


def preprocessing(shape, labels=None, scale=1.0, offset=0.0, **extra):
    """A ``preprocessing.json`` document in the catalog's format (see ``deepvre.serving.preprocessing``)."""
    doc = {"input": {"shape": list(shape), "dtype": "float32", "scale": scale, "offset": offset,
                     "mean": None, "std": None}}
    if labels is not None:
        doc["labels"] = list(labels)
    doc.update(extra)
    return doc


def publish_trained(market, folder, name, base, data_output, parameters, notebook, input_shape,
                    use_case, title, summary, labels=None, output_kind="probabilities", version=None,
                    visibility="private", model_file="model.keras"):
    """Publish ``folder/model.keras`` (+ its ``metrics.json``, ``preprocessing.json``) with lineage.

    ``base``: ``(name, version)`` of the base model; ``data_output``: the pipeline output trained
    on; ``notebook``: the executed notebook (copied into the artifact). Writes
    ``folder/data-manifest.json`` and returns the catalog entry. Under ``deepvre run`` the entry
    names the run and the run folder lists the entry (see the module docstring).
    """
    from .report import read_metrics

    model_path = os.path.join(folder, model_file)
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"{model_path}: no trained model to publish")
    if not notebook or not os.path.isfile(notebook):
        raise FileNotFoundError(f"executed notebook {notebook!r} not found: lineage needs it")
    data = data_manifest(data_output)
    with open(os.path.join(folder, "data-manifest.json"), "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    files = {"model.keras": model_path, "data-manifest.json": os.path.join(folder, "data-manifest.json")}
    for extra in ("metrics.json", "preprocessing.json"):
        if os.path.isfile(os.path.join(folder, extra)):
            files[extra] = os.path.join(folder, extra)
    notebook_name = os.path.basename(notebook)
    files[notebook_name] = notebook
    metrics = read_metrics(folder) if "metrics.json" in files else {}
    version = version or next_version(market, name)
    run = current_run()
    if run:
        files["run.json"] = os.path.join(folder, "run.json")
        with open(files["run.json"], "w") as fh:
            json.dump(run, fh, indent=1)
    document = model_document(name, version, use_case, title, summary, input_shape, output_kind, labels,
                              base=base, parameters=parameters, metrics=metrics,
                              data={"manifest.json": data["manifest.json"]}, notebook=notebook_name,
                              visibility=visibility)
    section = document["deepvre"]  # what `deepvre market verify` re-runs and checks
    section["environment"] = platform.capture(data["manifest.json"])
    inputs = input_files(parameters or {})
    if inputs:
        section["inputs"] = inputs
    if _inside(folder, os.getcwd()):
        section["training"]["output"] = os.path.relpath(folder)
    entry = market.publish(document, files)
    if run:
        record_published(run, entry, notebook)
    return entry


def pull_model(market, name, version, dest):
    """Pull ``name:version`` into ``dest`` (checksums checked) and load it with ``safe_mode=True``."""
    from deepvre.market import modelfile

    entry = market.pull(name, version, dest, overwrite=True)
    return modelfile.load(os.path.join(dest, "model.keras")), entry


def ensure_imagenet_base(market, name=BASE_NAME, version=BASE_VERSION, convert_dir=None):
    """The base model ``name:version`` from the catalog, as ``market`` shows it.

    The ImageNet MobileNetV2 (``mobilenet-v2-imagenet:1.0.0``) is converted once with
    :func:`deepvre.science.mobilenet.convert` (offline weights, into ``convert_dir``) and published
    if missing, by :func:`deepvre.science.base_models.publish_mobilenet`: the same document, files
    and owner as ``deepvre weights convert --publish``. Any other base must be in the catalog
    already (``NotFound`` otherwise).
    """
    from deepvre.errors import Forbidden, Unavailable
    from deepvre.market.catalog import NotFound
    from deepvre.science import mobilenet

    try:
        entry = market.show(name, version)
    except NotFound:
        if (name, version) != (BASE_NAME, BASE_VERSION):
            raise
    else:
        if (name, version) == (BASE_NAME, BASE_VERSION) and entry.get("owner") != base_models.OWNER:
            # published by a user before the name was reserved: not the converted ImageNet weights
            raise Unavailable(f"{name} {version} in this catalog belongs to {entry.get('owner')!r}, not to the "
                              f"system account {base_models.OWNER!r}: it is not the hub's base model; ask the "
                              f"hub's admin (the marketplace's api/status says why it was not seeded)")
        return entry
    try:
        base_models.publish_mobilenet(mobilenet.convert(convert_dir), market)
    except Forbidden as err:  # a hub's marketplace: only its system account publishes the base model
        raise Unavailable(
            f"{name} {version} is not in the hub's marketplace yet: the marketplace publishes it at its first "
            f"start (its api/status says whether it is still seeding; about 20 s). Try again in a minute, or "
            f"ask the hub's admin if it stays missing ({err})") from None
    return market.show(name, version)
