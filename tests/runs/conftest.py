"""Fixtures for the runs tests: fixture notebooks, a fresh runs folder, the CLI."""

import json
import os
import time

import pytest
from click.testing import CliRunner

NOTEBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notebooks")


@pytest.fixture
def notebook():
    return lambda name: os.path.join(NOTEBOOKS, f"{name}.ipynb")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    path = tmp_path / "runs"
    monkeypatch.setenv("DEEPVRE_RUNS_DIR", str(path))
    return str(path)


@pytest.fixture
def cli():
    """Invoke ``deepvre ARGS`` in-process; return (exit code, stdout, parsed JSON or None)."""
    from deepvre.cli import main

    def invoke(*args):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        data = None
        if "--json" in args:
            data = json.loads(result.output)
        return result.exit_code, result.output, data

    return invoke


def read_notebook(path):
    with open(path) as f:
        return json.load(f)


def read_text(path):
    with open(path) as f:
        return f.read()


def wait_for(predicate, timeout=300):
    """Poll ``predicate`` until true (generous timeout: the machine is shared and loaded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
