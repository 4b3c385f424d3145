"""Resumable and idempotent runs, a killed worker, refused output folders."""

import os
import shutil
import signal

import pytest

from deepvre.pipelines.manifest import OutputError, read_manifest
from deepvre.pipelines.run import preprocess

from .data import class_folders, tree_sha

PARAMS = {"size": "16", "shard_size": "3"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return class_folders(str(tmp_path_factory.mktemp("in")), n_per_class=9)


@pytest.fixture(scope="module")
def clean_run(images, tmp_path_factory, dask_client):
    out = str(tmp_path_factory.mktemp("clean") / "out")
    preprocess("images", images, out, PARAMS, client=dask_client, progress=False)
    return out


def test_rerun_skips_verified_and_redoes_partial(images, clean_run, tmp_path, dask_client):
    out = str(tmp_path / "out")
    shutil.copytree(clean_run, out)
    records = read_manifest(out)["shards"]
    n = len(records)
    # a partial shard (a chunk cut short), a shard without its record, a half-written .partial
    victim = os.path.join(out, records[0]["path"], "x", "c", "0", "0", "0", "0")
    with open(victim, "r+b") as f:
        f.truncate(10)
    os.remove(os.path.join(out, records[1]["path"].replace(".zarr", ".json")))
    shutil.copytree(os.path.join(out, records[2]["path"]), os.path.join(out, records[2]["path"]) + ".partial")
    result = preprocess("images", images, out, PARAMS, client=dask_client, progress=False)
    assert (result.written, result.skipped) == (2, n - 2)
    shutil.rmtree(os.path.join(out, records[2]["path"]) + ".partial", ignore_errors=True)
    assert tree_sha(out) == tree_sha(clean_run)
    again = preprocess("images", images, out, PARAMS, client=dask_client, progress=False)
    assert (again.written, again.skipped) == (0, n)  # idempotent
    assert tree_sha(out) == tree_sha(clean_run)


def test_changed_parameters_redo_everything(images, clean_run, tmp_path, dask_client):
    out = str(tmp_path / "out")
    shutil.copytree(clean_run, out)
    result = preprocess("images", images, out, dict(PARAMS, size="8"), client=dask_client, progress=False)
    assert result.skipped == 0
    assert result.manifest["shards"][0]["arrays"]["x"]["shape"][1:] == [8, 8, 3]


def test_killed_worker_gives_identical_output(images, clean_run, tmp_path):
    import threading

    from distributed import Client, LocalCluster, Queue

    out = str(tmp_path / "out")
    params = dict(PARAMS, steps="tests.pipelines.faults:stall_first,resize,normalize")
    reference = str(tmp_path / "reference")
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1") as cluster:
        with Client(cluster) as client:
            box = {}
            run = threading.Thread(target=lambda: box.update(r=preprocess(
                "images", images, out, params, client=client, progress=False)))
            run.start()
            pid = Queue("deepvre-test-pids", client=client).get(timeout=120)
            workers = set(client.run(os.getpid).values())
            assert pid in workers
            os.kill(pid, signal.SIGKILL)  # a real worker process dies mid-task
            run.join(timeout=300)
            assert not run.is_alive() and "r" in box
            # same steps, no failure: the output must match byte for byte
            preprocess("images", images, reference, params, client=client, progress=False)
    assert tree_sha(out) == tree_sha(reference)
    m = read_manifest(out)
    assert sum(s["n"] for s in m["splits"].values()) == 18


def test_foreign_output_refused_unless_overwrite(images, tmp_path, dask_client):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("my work")
    with pytest.raises(OutputError, match="not empty"):
        preprocess("images", images, str(out), PARAMS, client=dask_client, progress=False)
    assert (out / "thesis.tex").read_text() == "my work"
    preprocess("images", images, str(out), PARAMS, client=dask_client, progress=False, overwrite=True)
    assert not (out / "thesis.tex").exists() and (out / "manifest.json").exists()


def test_output_of_another_kind_refused(tmp_path, clean_run, dask_client):
    from .data import conn_log

    logs = tmp_path / "logs"
    logs.mkdir()
    conn_log(str(logs / "conn.log"), n=50)
    with pytest.raises(OutputError, match="'images' output"):
        preprocess("flows", str(logs), clean_run, {}, client=dask_client, progress=False)


def test_output_inside_input_refused(images, dask_client):
    with pytest.raises(OutputError, match="overlaps the input"):
        preprocess("images", images, os.path.join(images, "out"), PARAMS, client=dask_client, progress=False)
    assert not os.path.exists(os.path.join(images, "out"))
