"""Marketplace fixtures: one tiny Keras model trained for real, shared by the whole folder."""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import deepvre.market  # noqa: F401  (loads the system SQLite before TensorFlow)
from tests.science.conftest import mobilenet_dir  # noqa: F401  (a fixture: one offline conversion per session)

LABELS = ["red", "green", "blue"]


@pytest.fixture(scope="session")
def private_market_dir(private_state):
    """No test publishes into the user's catalog: the default catalog (``market/``) and runs
    (``runs/``) are in this temp folder (tests/conftest.py's ``private_state``)."""
    return private_state


def make_document(name="tiny-colours", version="1.0.0", visibility="public", groups=None, **overrides):
    """A valid AI4OS v2 + deepvre document for the tiny colour classifier."""
    doc = {
        "metadata_version": "2.3.0",
        "title": "Tiny colour classifier",
        "summary": "Tells red, green and blue 8x8 images apart.",
        "description": "A two-layer network trained in the marketplace tests on generated images.",
        "links": {"source_code": "https://github.com/deepvre/deepvre"},
        "dates": {"created": "2026-11-01", "updated": "2026-11-01"},
        "libraries": ["Keras", "TensorFlow"],
        "tasks": ["Computer Vision", "Classification"],
        "categories": ["AI4 trainable", "AI4 inference"],
        "tags": ["colours", "test"],
        "deepvre": {
            "name": name,
            "version": version,
            "use_case": "base",
            "input": {"shape": [8, 8, 3], "dtype": "float32", "kind": "image", "labels": LABELS},
            "output": {"kind": "probabilities", "shape": [3]},
            "training": {"notebook": "training.ipynb", "parameters": {"epochs": 3}},
            "base_model": None,
            "metrics": {"accuracy": 1.0},
            "visibility": visibility,
        },
    }
    if groups:
        doc["deepvre"]["groups"] = list(groups)
    for key, value in overrides.items():
        doc[key] = value
    return doc


def colour_images(n, seed=0):
    """``n`` 8x8 RGB images, each dominated by one channel; returns (pixels 0-255, labels)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 80, (n, 8, 8, 3))
    x[np.arange(n), :, :, y] += 150
    return x.astype("float32"), y


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A trained tiny model as an artifact folder: model.keras, preprocessing.json, notebook, metrics."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = colour_images(600)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x / 255.0, y, epochs=30, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save(folder / "model.keras")
    accuracy = float(model.evaluate(x / 255.0, y, verbose=0)[1])
    (folder / "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    (folder / "preprocessing.json").write_text(
        json.dumps({"input": {"shape": [8, 8, 3], "dtype": "float32", "scale": 1 / 255.0, "offset": 0.0}, "labels": LABELS})
    )
    shutil.copyfile(NOTEBOOKS / "train_tiny.ipynb", folder / "training.ipynb")
    doc = make_document()
    doc["deepvre"]["metrics"] = {"accuracy": accuracy}
    (folder / "metadata.json").write_text(json.dumps(doc, indent=2))
    return folder


NOTEBOOKS = Path(__file__).parent / "notebooks"


def artifact_files(folder):
    return {p.name: p for p in folder.iterdir() if p.name != "metadata.json"}


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on a free loopback port, run by the ``postgres`` account.

    Yields the server's SQLAlchemy URL without a database name; stopped and removed at the end.
    """
    import glob
    import subprocess
    import tempfile

    from tests.hub.hubprocess import free_port
    from tests.prereqs import require, require_root

    require_root()
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    require(bins, "PostgreSQL server (Debian package postgresql)")
    bindir = os.path.dirname(bins[-1])
    root = tempfile.mkdtemp(prefix="market-pg-")
    shutil.chown(root, "postgres")
    data, port = os.path.join(root, "data"), free_port()

    def as_postgres(*cmd):
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=300)

    as_postgres(f"{bindir}/initdb", "-D", data, "-U", "market", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    try:
        as_postgres(f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "-t", "120", "start")
        yield f"postgresql+psycopg://market@127.0.0.1:{port}"
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def database_url(request, tmp_path, monkeypatch):
    """The index URL for backend ``request.param``: sqlite (FTS5), sqlite-nofts or postgresql."""
    import uuid

    from deepvre.market import fulltext

    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite-nofts":  # as in a process whose SQLite lacks FTS5 (TensorFlow first)
        monkeypatch.setattr(fulltext, "fts5_available", lambda: False)
    elif backend == "postgresql":
        import sqlalchemy as sa

        server = request.getfixturevalue("postgres_server")
        name = f"market_{uuid.uuid4().hex[:12]}"  # a fresh database per test
        admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        return f"{server}/{name}"
    elif backend != "sqlite":
        raise ValueError(f"unknown index backend {backend!r}")
    return f"sqlite:///{tmp_path / 'index.sqlite'}"


@pytest.fixture
def catalog(request, tmp_path, monkeypatch):
    """A fresh catalog; parametrize it (``indirect=True``) with an index backend:

    ``sqlite`` (FTS5, the default), ``sqlite-nofts``, ``postgresql`` (a real server).
    """
    from deepvre.market.catalog import Catalog

    catalog = Catalog(database_url=database_url(request, tmp_path, monkeypatch), store_url=str(tmp_path / "store"))
    yield catalog
    catalog.engine.dispose()


@pytest.fixture
def publish(catalog, tiny_model_dir):
    """publish(owner, **document overrides) -> entry, with the tiny model's files."""

    def _publish(owner="alice", name="tiny-colours", version="1.0.0", visibility="public", groups=None, **overrides):
        doc = make_document(name, version, visibility, groups, **overrides)
        return catalog.publish(doc, artifact_files(tiny_model_dir), owner)

    return _publish


def copy_artifact(src, dest):
    shutil.copytree(src, dest)
    return dest


def deep(doc):
    return copy.deepcopy(doc)


def stop_process(proc, log):
    """Stop a service the test started in its own process group (SIGTERM, then SIGKILL the group) and close its log."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    log.close()


def tar_of(members):
    """An uncompressed tar of ``{name: bytes}``: a publish upload."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()
