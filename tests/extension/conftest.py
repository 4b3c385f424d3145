"""A real jupyter_server (pytest-jupyter's in-process server) with the deepvre extension enabled."""

import json

import nbformat
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_serverapp, jp_fetch, ...)
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
    return Config({"ServerApp": {"jpserver_extensions": {"deepvre.server": True}}})


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    """``api(method, path, body=None, **kw) -> (status, json)``, synchronous; errors are returned, not raised."""

    def call(method, path, body=None, params=None, headers=None):
        kwargs = {"method": method, "params": params, "headers": headers, "raise_error": True}
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
