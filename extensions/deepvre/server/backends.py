"""Thin adapters from the server extension to deepvre's back ends.

Each adapter calls the one Python API of its area (the market client, the runner,
the pipelines, DEEPaaS serving). When that area is not installed, it raises
:class:`Unavailable`, which the handlers answer with 503 "not available: <what>".
"""

import importlib


class Unavailable(RuntimeError):
    """A back end that is not installed in this environment."""

    def __init__(self, what):
        super().__init__(f"not available: {what}")
        self.what = what


def need(module, what):
    """Import ``module`` or raise Unavailable(what) when it (not one of its imports) is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(err.name + ".")):
            raise Unavailable(what) from err
        raise


# -- marketplace ---------------------------------------------------------------------------

def market_client():
    """The marketplace client: over HTTP inside a hub, the local catalog outside one."""
    client = need("deepvre.market.client", "the model marketplace (deepvre.market)")
    for factory in ("connect", "default_client", "Client"):
        if hasattr(client, factory):
            return getattr(client, factory)()
    raise Unavailable("a marketplace client factory in deepvre.market.client")


def search_models(query="", **filters):
    """Model records matching ``query`` and the non-empty ``filters``."""
    filters = {k: v for k, v in filters.items() if v not in (None, "")}
    return list(market_client().search(query or "", **filters))


def show_model(name, version=None):
    """One model's record (latest version when ``version`` is None), with its versions."""
    return market_client().show(name, version)


def training_notebook(name, version, dest_dir):
    """Fetch the model's training notebook into ``dest_dir``; return its local path."""
    return market_client().training_notebook(name, version, dest_dir)


def publish_run(run, name, version, lineage, visibility="private"):
    """Publish the model a run trained, with ``lineage`` (the model it was fine-tuned from)."""
    return market_client().publish_run(run, name=name, version=version,
                                       lineage=lineage, visibility=visibility)


# -- runs ----------------------------------------------------------------------------------

def _runs():
    return need("deepvre.runs", "the batch runner (deepvre.runs)")


def start_run(notebook, parameters, runs_dir, backend="local"):
    """Start a detached run of ``notebook``; it goes on when the browser closes."""
    return _runs().start(notebook, parameters, backend=backend, detach=True, runs_dir=runs_dir)


def list_runs(runs_dir):
    return list(_runs().list_runs(runs_dir))


def get_run(run_id, runs_dir):
    return _runs().get(run_id, runs_dir=runs_dir)


def cancel_run(run_id, runs_dir):
    return _runs().cancel(run_id, runs_dir=runs_dir)


# -- preprocessing -------------------------------------------------------------------------

def pipeline_kinds():
    return need("deepvre.pipelines.registry", "the preprocessing pipelines (deepvre.pipelines)").pipeline_names()


def open_cluster(cluster):
    """Context manager yielding ``(dask client, dashboard link)``."""
    return need("deepvre.pipelines.clusters", "the Dask cluster factory (deepvre.pipelines)").open_client(cluster)


def preprocess(kind, input, output, params, client):
    run = need("deepvre.pipelines.run", "the preprocessing pipelines (deepvre.pipelines)")
    return run.preprocess(kind, input, output, params=params, client=client, progress=False)
