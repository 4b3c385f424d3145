"""A catalog whose artifacts live in S3-compatible object storage (``store_url=s3://...``),
against a real S3 server on loopback: moto in server mode, a separate process spoken to over
HTTP by s3fs, as the marketplace would speak to a cluster's object store (the endpoint comes
from fsspec's configuration, e.g. ``FSSPEC_S3_ENDPOINT_URL``; credentials from ``AWS_*``)."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from deepvre.market.catalog import Caller, Catalog
from deepvre.market.client import LocalMarket, artifact_folder
from deepvre.market.store import IntegrityError
from tests.prereqs import require

BUCKET = "deepvre-models"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _prerequisites():
    """Before the session's fixtures (the tiny model trains for a while)."""
    for module in ("moto", "s3fs", "flask"):  # moto[server] needs flask
        require(importlib.util.find_spec(module) is not None,
                f"needs {module} (moto[server] and s3fs; not in requirements.lock yet)")


@pytest.fixture(scope="module")
def s3_server():
    """``python -m moto.server`` on 127.0.0.1; yields its endpoint URL."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # this process's imports
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start (exit {proc.poll()})")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def s3(s3_server, monkeypatch):
    """fsspec pointed at the server (what FSSPEC_S3_ENDPOINT_URL sets), a fresh bucket; yields s3fs."""
    import fsspec

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3_server})
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    if fs.exists(BUCKET):
        fs.rm(BUCKET, recursive=True)
    fs.mkdir(BUCKET)
    yield fs


def test_publish_pull_and_detect_a_corrupt_object(s3, tmp_path, tiny_model_dir):
    store_url = f"s3://{BUCKET}/catalog"
    catalog = Catalog(database_url=f"sqlite:///{tmp_path / 'index.sqlite'}", store_url=store_url)
    market = LocalMarket(catalog, Caller.local())
    document, files = artifact_folder(tiny_model_dir)
    entry = market.publish(document, files)
    name, version = entry["name"], entry["version"]

    # the artifacts are objects in the bucket, named by their sha256 (nothing on local disk)
    stored = market.show(name, version)["files"]
    digests = {info["sha256"] for info in stored.values()}
    objects = {path.rsplit("/", 1)[-1] for path in s3.find(f"{BUCKET}/catalog")}
    assert digests <= objects
    assert not (tmp_path / "artifacts").exists()

    # pull: every file comes back checked (BLAKE3 recorded at publish, and the sha256 name)
    for verify in ("blake3", "sha256"):
        out = tmp_path / f"pulled-{verify}"
        market.pull(name, version, out, verify=verify)
        for filename in files:
            assert (out / filename).read_bytes() == (tiny_model_dir / filename).read_bytes(), filename
        assert json.loads((out / "metadata.json").read_text())["deepvre"]["name"] == name

    # someone with write access to the bucket swaps an object: the pull refuses it, leaves nothing
    victim = stored["model.keras"]["sha256"]
    key = catalog.store.path(victim)
    original = s3.cat_file(key)
    s3.pipe_file(key, original[:-16] + b"\0" * 16)
    for verify in ("blake3", "sha256"):
        out = tmp_path / f"tampered-{verify}"
        with pytest.raises(IntegrityError):
            market.pull(name, version, out, verify=verify)
        assert not (out / "model.keras").exists()
    assert any(victim in problem for problem in catalog.fsck())  # the admin's check finds it too
