"""Thin adapters from the server extension to deepvre's back ends.

Each adapter calls the one Python API of its area (the market client, the runner,
the pipelines, DEEPaaS serving), imported when first used (the server starts fast).
"""

import collections
import hashlib
import os
from typing import NamedTuple

# -- marketplace ---------------------------------------------------------------------------

TRAINABLE = "AI4 trainable"  # the AI4OS category of models that can be re-trained


def market_client():
    """The marketplace client: over HTTP with the hub token inside a hub, else the local catalog."""
    from deepvre.market import client

    return client.connect()


def search_models(query="", trainable=None, **filters):
    """The search entries of the models matching ``query`` and the non-empty ``filters``: they
    carry what a card shows (one request for the page, none per hit)."""
    filters = {k: v for k, v in filters.items() if v not in (None, "")}
    if trainable:
        filters["category"] = TRAINABLE
    market = market_client()
    found = market.search(query or "", **filters)
    if trainable and filters.get("category") != TRAINABLE:  # both a category and trainable asked
        found = [m for m in found if TRAINABLE in m.get("categories", [])]
    return found


def facets():
    """The values the search's filters can take, with their counts (the marketplace's facets)."""
    return market_client().facets()


def seed_status():
    """The marketplace's base-model seed: ``{"state": "seeding"|"done"|"failed"|"off", "message"}``."""
    return market_client().status()["seed"]


def show_model(name, version=None):
    """One model's record (latest version when ``version`` is None), with its versions."""
    return market_client().show(name, version or None)


def _notebook_name(name, entry):
    notebook = ((entry.get("metadata", {}).get("deepvre") or {}).get("training") or {}).get("notebook")
    if not notebook:
        raise LookupError(f"model {name!r} has no training notebook")
    return notebook


def training_notebook(name, version, dest_dir):
    """Write the model's training notebook (only it) into ``dest_dir``; return its local path."""
    from deepvre import atomic

    snapshot = training_snapshot(name, version)
    os.makedirs(dest_dir, exist_ok=True)
    path = os.path.join(dest_dir, snapshot.filename)
    with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(snapshot.data)
    return path


# Files of immutable versions, by sha256: a form opened again fetches nothing (bounded, per server).
_FILES = collections.OrderedDict()
_FILES_KEPT = 32


def fetch_file(market, entry, filename):
    """The bytes of one file of the version ``entry``, checked against its digest, cached by it."""
    digest = entry["files"][filename]["sha256"]
    if digest in _FILES:
        _FILES.move_to_end(digest)
    else:
        _FILES[digest] = market.read_file(entry, filename)
        while len(_FILES) > _FILES_KEPT:
            _FILES.popitem(last=False)
    return _FILES[digest]


class NotebookSnapshot(NamedTuple):
    """A training notebook as fetched once: the catalog entry of one concrete version, the
    notebook's file name and its bytes. What is checked (:attr:`sha256`) is what is written."""

    entry: dict
    filename: str
    data: bytes

    @property
    def version(self):
        return self.entry["version"]

    @property
    def owner(self):
        return self.entry["owner"]

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()


def training_snapshot(name, version):
    """The model's training notebook as a :class:`NotebookSnapshot`.

    ``version`` (None: the latest) is resolved to a concrete version first (versions are
    immutable); only the notebook is fetched (not the model's weights), checked against its
    digest and kept by it (:func:`fetch_file`). What is checked is what is written.
    """
    market = market_client()
    entry = market.show(name, version or None)
    notebook = _notebook_name(name, entry)
    if notebook not in entry.get("files", {}):
        raise LookupError(f"{name}:{entry['version']} names {notebook!r} as its training notebook, "
                          "but has no such file")
    return NotebookSnapshot(entry, notebook, fetch_file(market, entry, notebook))


def publish_run(run, name, version, lineage, visibility="private", folder=None):
    """Publish the model a run trained (files in ``folder``, default the run folder), with ``lineage`` as its base model.

    The run's notebook writes ``model.keras`` (and ``metrics.json``, ``preprocessing.json``) into
    that folder (:func:`deepvre.runs.outputs.find_models` finds it); the metadata starts from the base model's and names the run's notebook.
    """
    from deepvre.runs import platform

    market = market_client()
    folder = folder or run.path
    files = {f: os.path.join(folder, f) for f in ("model.keras", "preprocessing.json", "metrics.json", "run.json")
             if os.path.exists(os.path.join(folder, f))}
    if "model.keras" not in files:
        raise FileNotFoundError(f"run {run.id} wrote no model.keras; nothing to publish")
    files["training.ipynb"] = os.path.join(run.path, "output.ipynb")
    base = market.show(lineage["model"], lineage.get("version") or None) if lineage.get("model") else None
    document = catalog_document(base, name, version or "1.0.0", run, visibility, folder)
    document["deepvre"]["environment"] = platform.of_run(run.path)  # what the run ran on
    return market.publish(document, files, visibility=visibility)


def catalog_document(base, name, version, run, visibility, folder=None):
    """Metadata of the model ``run`` fine-tuned from ``base`` (the base's catalog entry), made by
    the one builder (:func:`deepvre.training.documents.model_document`).

    What the model is comes from the run: its input shape and classes (``preprocessing.json``),
    parameters and metrics. The base gives the use case, the kind of output and the wording;
    nothing else of its document is carried over (its classes, tags or dates are not this model's).
    """
    import json

    from deepvre.training.documents import model_document

    if base is None:
        raise ValueError("only runs of a model's notebook (fine-tuned from it) can be published")
    meta = base["metadata"]
    section = meta.get("deepvre") or {}
    preprocessing, folder = {}, folder or run.path
    if os.path.exists(os.path.join(folder, "preprocessing.json")):
        with open(os.path.join(folder, "preprocessing.json")) as f:
            preprocessing = json.load(f)
    shape = (preprocessing.get("input") or {}).get("shape") or (section.get("input") or {}).get("shape") or []
    title = f"{meta.get('title') or base['name']} (fine-tuned: {name})"
    return model_document(
        name, version, section.get("use_case") or "", title, meta.get("summary") or title, shape,
        (section.get("output") or {}).get("kind") or "probabilities", labels=preprocessing.get("labels"),
        base=(base["name"], base["version"]), parameters=run.params.get("parameters", {}),
        metrics=run.metrics or {}, notebook="training.ipynb", visibility=visibility,
        description=meta.get("description") or "",
    )


# -- runs ----------------------------------------------------------------------------------

def _runs():
    from deepvre import runs

    return runs


def start_run(notebook, parameters, runs_dir, backend="local", declared=None, injected=False, slurm=None):
    """Start a detached run of ``notebook``; it goes on when the browser closes.

    ``declared`` and ``injected``: as :func:`deepvre.runs.start` (the notebook's parameters when
    they were read already; whether ``notebook`` holds these values already). ``slurm``: the
    site's ``slurm:`` section, for the slurm backend.
    """
    return _runs().start(notebook, parameters, backend=backend, detach=True, runs_dir=runs_dir,
                         declared=declared, injected=injected, slurm=slurm)


def list_runs(runs_dir):
    return list(_runs().list_runs(runs_dir))


def get_run(run_id, runs_dir):
    return _runs().get(run_id, runs_dir=runs_dir)


def cancel_run(run_id, runs_dir):
    return _runs().cancel(run_id, runs_dir=runs_dir)


# -- preprocessing -------------------------------------------------------------------------

def pipeline_kinds():
    from deepvre.pipelines import registry

    return registry.pipeline_names()


CLUSTER_KINDS = ("local", "slurm", "kubernetes")  # besides a scheduler address the user gives
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def cluster_refusal(cluster, slurm_site=False, environ=None, which=None, token_file=SERVICE_ACCOUNT_TOKEN):
    """Why a Dask ``cluster`` cannot start from this server, or None. Slurm needs a Slurm site (the
    hub's ``slurm:`` section, ``slurm_site``, or a server inside a Slurm job) and ``sbatch`` on the
    PATH; Kubernetes a pod's service account; ``local`` and a scheduler address always can. A value
    that is neither is a ValueError."""
    import shutil

    from deepvre.pipelines import clusters

    environ = os.environ if environ is None else environ
    kind = clusters.kind_of(cluster)
    on_slurm = slurm_site or environ.get("SLURM_JOB_ID")
    if kind == "slurm" and not (on_slurm and (which or shutil.which)("sbatch", path=environ.get("PATH"))):
        return ("Slurm is not available from this server (this hub is not a Slurm site, or sbatch is not on "
                "the server's PATH): choose local or a scheduler address")
    if kind == "kubernetes" and not (environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(token_file)):
        return ("Kubernetes is not available from this server (it does not run in a pod with a service "
                "account): choose local or a scheduler address")
    return None


def offered_clusters(slurm_site=False, environ=None, which=None, token_file=SERVICE_ACCOUNT_TOKEN):
    """The cluster kinds this server can start (:func:`cluster_refusal`), ``local`` first."""
    return [kind for kind in CLUSTER_KINDS if cluster_refusal(kind, slurm_site, environ, which, token_file) is None]


def open_cluster(cluster, dask=None, slurm=None):
    """Context manager yielding ``(dask client, dashboard link)``; ``dask`` and ``slurm``: the
    site's sections (``None``: defaults)."""
    from deepvre.pipelines import clusters

    return clusters.open_client(cluster, settings=dask, slurm=slurm)


def preprocess(kind, input, output, params, client, progress=False):
    """``progress``: called with ``(shards done, shards planned)`` (``deepvre.pipelines.run.execute``)."""
    from deepvre.pipelines import run

    return run.preprocess(kind, input, output, params=params, client=client, progress=progress)
