"""Flows (Zeek conn.log via dask.dataframe) and rasters (rasterio windows, PIL)."""

import numpy as np
import pandas as pd

from deepvre.pipelines import flows
from deepvre.pipelines.dataset import open_split
from deepvre.pipelines.run import preprocess

from .data import conn_log, geotiff_scene, tree_sha


def test_window_features_by_hand():
    conns = pd.DataFrame({
        "ts": [0.5, 10.0, 59.0, 61.0], "orig_h": ["a", "a", "a", "a"], "resp_h": ["x", "y", "x", "x"],
        "resp_p": [80, 80, 443, 22], "proto": ["tcp"] * 4, "duration": [1.0, 3.0, 2.0, 4.0],
        "orig_bytes": [10.0, 20.0, 30.0, 40.0], "resp_bytes": [1.0, 2.0, 3.0, 4.0],
        "conn_state": ["SF", "S0", "SF", "REJ"]})
    f = flows.window_features(conns, 60, "host").loc[(0, "a")]
    assert f["conns"] == 3 and f["orig_bytes"] == 60 and f["duration"] == 2.0
    assert f["dst_ports"] == 2 and f["dst_hosts"] == 2 and f["state_SF"] == 2 and f["state_S0"] == 1
    g = flows.window_features(conns, 60, "host").loc[(60, "a")]
    assert g["conns"] == 1 and g["state_REJ"] == 1


def test_flows_pipeline(tmp_path, dask_client):
    src = tmp_path / "logs"
    src.mkdir()
    conn_log(str(src / "conn.log"), n=1500, hosts=3)
    conn_log(str(src / "conn.00:00:00-01:00:00.log"), n=500, hosts=3, start=1_699_990_000.0, bad_lines=0, seed=1)
    before = tree_sha(str(src))
    out = str(tmp_path / "out")
    m = preprocess("flows", str(src), out, {"window": "60", "seq_len": "5", "blocksize": "64KB"},
                   client=dask_client, progress=False).manifest
    assert tree_sha(str(src)) == before
    assert m["summary"]["connections"] == 2000  # every good line counted once
    assert m["bad_records"]["count"] == 2
    assert all(r["error"] == "wrong number of fields" for r in m["bad_records"]["records"])
    x, y = open_split(out, "train")
    assert x.shape[1:] == (5, len(flows.FEATURES)) and y.shape[1:] == (len(flows.FEATURES),)
    assert len(x) > 0 and np.array_equal(x[1, 0], x[0, 1])  # sliding windows over time (same host)


def test_rasters_geotiff(tmp_path, dask_client):
    scene, lights = geotiff_scene(str(tmp_path / "day.tif"), str(tmp_path / "night.tif"))
    out = str(tmp_path / "out")
    m = preprocess("rasters", scene, out, {"labels": lights, "tile": "32", "bins": "25",
                                           "split": "1,0,0", "tiles_per_shard": "16"},
                   client=dask_client, progress=False).manifest
    assert m["summary"]["tiles"] == 6 * 8 and m["summary"]["reader"] == "rasterio windows"
    x, y, origin = open_split(out, "train", arrays=("x", "y", "origin"))
    assert x.shape == (48, 32, 32, 3) and x.max() <= 10000 / 65535 + 1e-6
    # stored in the scene's dtype (16 bit), decoded to float32 / 65535 by the readers
    assert m["version"] == 2 and m["decode"] == {"x": {"dtype": "float32", "divide_by": 65535.0}}
    assert {r["arrays"]["x"]["dtype"] for r in m["shards"]} == {"uint16"}
    import zarr

    raw = np.concatenate([zarr.open_group(str(tmp_path / "out" / r["path"]), mode="r")["x"][...] for r in m["shards"]])
    assert x.dtype == np.float32 and np.array_equal(x, raw.astype(np.float32) / np.float32(65535))
    assert raw.max() > 0
    city = (origin[:, 0] < 96) & (origin[:, 1] < 128)  # the label raster's top-left quarter, in scene pixels
    assert np.all(y[city] == 1) and np.all(y[~city] == 0)
    assert m["splits"]["train"]["counts"] == {"0": 36, "1": 12}


def test_rasters_png_with_label_image(tmp_path, dask_client):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "scene.png")
    labels = np.zeros((96, 128), np.uint8)
    labels[:, 64:] = 2
    Image.fromarray(labels).save(tmp_path / "labels.png")
    out = str(tmp_path / "out")
    m = preprocess("rasters", str(tmp_path / "scene.png"), out,
                   {"labels": str(tmp_path / "labels.png"), "label_mode": "mask", "tile": "32", "split": "1,0,0"},
                   client=dask_client, progress=False).manifest
    assert m["summary"]["reader"].startswith("PIL")
    x, y, origin = open_split(out, "train", arrays=("x", "y", "origin"))
    assert y.shape == (12, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert m["decode"]["x"]["divide_by"] == 255.0 and m["shards"][0]["arrays"]["x"]["dtype"] == "uint8"
    assert np.all(y[origin[:, 1] >= 64] == 2) and np.all(y[origin[:, 1] < 64] == 0)


def test_flows_two_weeks_of_daily_logs(tmp_path, dask_client):
    """Regression: 12+ partitions (daily conn.log files) raised KeyError: 0 in dask's optimizer."""
    from deepvre.science import traffic

    src = tmp_path / "logs"
    paths, _labels = traffic.generate_logs(str(src), "A", days=14, seed=3)
    lines = 0
    for path in flows.log_files(str(src)):
        with open(path) as f:
            lines += sum(1 for line in f if not line.startswith("#"))
    assert flows.read_connections(flows.log_files(str(src)), "64MB").npartitions >= 12
    out = str(tmp_path / "out")
    m = preprocess("flows", str(src), out, {"window": "3600", "seq_len": "6", "blocksize": "64MB",
                                            "hosts_per_shard": "100"}, client=dask_client, progress=False).manifest
    assert m["summary"]["connections"] == lines and m["bad_records"]["count"] == 0
    assert m["summary"]["windows"] == 14 * 24
    x, y = open_split(out, "train")
    assert len(x) > 0 and x.shape[1:] == (6, len(flows.FEATURES))


def test_window_features_same_for_any_partitioning():
    import dask.dataframe as dd

    rng = np.random.default_rng(0)
    n = 3000
    conns = pd.DataFrame({
        "ts": np.sort(rng.uniform(0, 7200, n)), "orig_h": rng.choice(["a", "b", "c"], n),
        "resp_h": rng.choice(["x", "y", "z", "w"], n), "resp_p": rng.choice([22, 80, 443, 53], n),
        "proto": "tcp", "duration": rng.random(n), "orig_bytes": rng.integers(0, 1000, n).astype(float),
        "resp_bytes": rng.integers(0, 1000, n).astype(float), "conn_state": rng.choice(["SF", "S0", "REJ"], n)})
    whole = flows.window_features(conns, 300, "service")
    for parts in (1, 7, 16):
        got = flows.window_features(dd.from_pandas(conns, npartitions=parts), 300, "service").compute(
            scheduler="synchronous")
        pd.testing.assert_frame_equal(got, whole, check_index_type=False)  # dask: arrow strings


def test_shard_writers_compress_in_one_thread(tmp_path, dask_client):
    """A worker writing shards keeps zarr's codec pool to one thread (one core per worker)."""
    from deepvre.pipelines import manifest as mf

    def write_and_count():
        import threading

        import zarr

        mf.write_shard(str(tmp_path / "w"), "train", 0, "k", {"x": np.zeros((512, 64, 64), np.float32)}, {}, [], 8)
        pool = [t for t in threading.enumerate() if t.name.startswith(("zarr_pool", "asyncio_"))]
        return zarr.config.get("threading.max_workers"), len(pool)

    result = dask_client.submit(write_and_count, pure=False).result()
    assert result == (1, 1)


def test_features_and_bad_one_task_per_partition(tmp_path):
    """Read, parse and partial features fuse into one task per partition, plus one combine task."""
    import dask

    conn_log(str(tmp_path / "conn.log"), n=3000, hosts=3)
    conns = flows.read_connections([str(tmp_path / "conn.log")], "32KB")
    assert conns.npartitions >= 4
    calls = []
    with dask.config.set(scheduler="synchronous"), dask.callbacks.Callback(pretask=lambda key, *_: calls.append(key)):
        features, bad, n_bad = flows.features_and_bad(conns, 60, "host")
    assert len(calls) == conns.npartitions + 1
    good = conns[conns["error"] == ""].compute(scheduler="synchronous")
    pd.testing.assert_frame_equal(features, flows.window_features(good, 60, "host"), check_index_type=False)
    assert n_bad == 2 and list(bad["error"]) == ["wrong number of fields"] * 2
