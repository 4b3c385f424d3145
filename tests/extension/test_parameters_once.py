"""A panel run reads the notebook's parameters once and injects them once (issue 14).

The panel's "Run as batch job" is ``POST runs`` with a model: the handler reads the training
notebook's parameters, checks the values, writes the parameterized copy (into a scratch folder; the run keeps it), and
the runner runs that copy as it is. papermill's functions are wrapped with counters over the
whole path, the worker included: it runs here, in this process, instead of in a process of its own.
"""

import nbformat
import pytest

from .test_handlers import wait_for


@pytest.fixture
def papermill_calls(monkeypatch):
    """``{"inspect": n, "inject": n}``: papermill's parameter reading and its parameterizing,
    counted wherever they are called from (``inspect_notebook`` and ``execute_notebook`` both
    read the parameters cell with ``_infer_parameters``)."""
    import papermill.execute
    import papermill.inspection
    import papermill.parameterize

    calls = {"inspect": 0, "inject": 0}

    def counted(kind, function):
        def wrapper(*args, **kwargs):
            calls[kind] += 1
            return function(*args, **kwargs)
        return wrapper

    infer = counted("inspect", papermill.inspection._infer_parameters)
    monkeypatch.setattr(papermill.inspection, "_infer_parameters", infer)
    monkeypatch.setattr(papermill.execute, "_infer_parameters", infer)
    parameterize = counted("inject", papermill.parameterize.parameterize_notebook)
    monkeypatch.setattr(papermill.parameterize, "parameterize_notebook", parameterize)
    monkeypatch.setattr(papermill.execute, "parameterize_notebook", parameterize)
    return calls


@pytest.fixture
def worker_here(monkeypatch):
    """The local backend submits nothing; the test runs the worker (``execute_run``) itself."""
    from deepvre.runs.backends import local

    submitted = []
    monkeypatch.setattr(local, "submit", lambda run, profile=None, slurm=None: submitted.append(run))
    return submitted


def test_a_panel_run_inspects_once_and_injects_once(api, market_dir, jp_root_dir, papermill_calls, worker_here):
    from deepvre.runs.execute import execute_run

    body = {"model": "colours", "parameters": {"epochs": 2}}
    status, data = api("POST", "runs", body=body)
    assert status == 409, data  # ana's notebook: the user confirms first (nothing is read for that)
    calls_before_trust = dict(papermill_calls)
    status, run = api("POST", "runs", body={**body, "trust": {"owner": data["owner"], "sha256": data["sha256"]}})
    assert status == 201, run
    (submitted,) = worker_here
    assert execute_run(submitted.path) == "done"
    assert wait_for(api, run["id"], ("done", "failed"))["state"] == "done"

    assert calls_before_trust == {"inspect": 0, "inject": 0}
    assert papermill_calls == {"inspect": 1, "inject": 1}
    out = nbformat.read(submitted.file("output.ipynb"), as_version=4)
    injected = [c.source for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "epochs = 2" in injected[0]
    assert submitted.metrics["epochs"] == 2
    assert submitted.params["parameters"] == {"epochs": 2}


def test_a_workspace_notebook_run_inspects_once_and_injects_once(api, jp_root_dir, papermill_calls, worker_here):
    from deepvre.runs.execute import execute_run

    from .conftest import make_notebook

    make_notebook(jp_root_dir / "train.ipynb")
    status, run = api("POST", "runs", body={"path": "train.ipynb", "parameters": {"epochs": 7}})
    assert status == 201, run
    (submitted,) = worker_here
    assert execute_run(submitted.path) == "done"
    assert papermill_calls == {"inspect": 1, "inject": 1}
    out = nbformat.read(submitted.file("output.ipynb"), as_version=4)
    assert "cells 0.07" in "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
