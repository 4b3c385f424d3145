"""Throughput of the four preprocessing pipelines: a plain loop vs Dask on 1 and 2 workers.

    .venv/bin/python benchmarks/preprocess.py            # a few hundred MB of generated data
    .venv/bin/python benchmarks/preprocess.py --scale 0.2  # smaller, quicker

The plain loop does the same work in this process: the pipeline's plan (with dask's
synchronous scheduler, for the flows parsing) and then every shard, one after the other.
Dask runs use the pipelines' own local cluster (``clusters.open_client("local")``: worker
processes, one thread each, glibc malloc defaults), started before the clock starts; tasks
are coarse (a few per worker) and only shard records reach the client. Besides wall time it
prints the CPU seconds each run used (this process plus the workers), which the load of
other programs on the machine disturbs much less than wall time.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_images(root, n):
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)
    for c in ("a", "b"):
        os.makedirs(os.path.join(root, c))
    for i in range(n):
        img = np.roll(base, i * 7, axis=1)
        Image.fromarray(img).save(os.path.join(root, "ab"[i % 2], f"{i:05d}.jpg"), quality=90)
    return root, {"size": "224", "shard_size": str(max(1, n // 8))}, n, "images"


def make_raster(root, side):
    import rasterio

    rng = np.random.default_rng(0)
    os.makedirs(root)
    path, labels = os.path.join(root, "day.tif"), os.path.join(root, "night.tif")
    with rasterio.open(path, "w", driver="GTiff", height=side, width=side, count=3, dtype="uint8",
                       tiled=True, blockxsize=256, blockysize=256, compress="deflate") as dst:
        for r in range(0, side, 1024):
            h = min(1024, side - r)
            dst.write(rng.integers(0, 255, (3, h, side), dtype=np.uint8),
                      window=rasterio.windows.Window(0, r, side, h))
    with rasterio.open(labels, "w", driver="GTiff", height=side // 4, width=side // 4, count=1,
                       dtype="float32") as dst:
        dst.write(rng.random((1, side // 4, side // 4), dtype=np.float32) * 60)
    tiles = (side // 64) ** 2
    return path, {"labels": labels, "tile": "64", "bins": "20,40", "split": "1,0,0",
                  "tiles_per_shard": str(tiles // 8)}, tiles, "tiles"


def make_flows(root, n):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.pipelines.data import conn_log

    os.makedirs(root)
    per = n // 4
    for k in range(4):
        conn_log(os.path.join(root, f"conn.{k:02d}.log"), n=per, hosts=40, start=1.7e9 + k * 3600 * 6,
                 bad_lines=0, seed=k)
    return root, {"window": "300", "seq_len": "12", "hosts_per_shard": "5"}, per * 4, "conns"  # default blocksize


def make_lattice(root, n, side):
    from deepvre.pipelines import lattice_io

    rng = np.random.default_rng(0)
    os.makedirs(root)
    for i in range(n):
        lattice_io.write_config(os.path.join(root, f"c{i:05d}.dvgauge"), rng.uniform(-np.pi, np.pi, (2, side, side)),
                                {"beta": float(1 + i % 4)})
    return root, {"shard_size": str(max(1, n // 8))}, n, "configs"


def folder_mb(path):
    if os.path.isfile(path):
        return os.path.getsize(path) / 1e6
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 1e6


def plain_loop(kind, src, out, params):
    import dask

    from deepvre.pipelines import manifest as mf
    from deepvre.pipelines.registry import get_pipeline
    from deepvre.pipelines.run import run_shard

    mf.prepare_output(out, kind, [src], overwrite=True)
    with dask.config.set(scheduler="synchronous"):
        plan = get_pipeline(kind)(src, out, params)
    for shard in plan.shards:
        run_shard(shard, out, plan.params, plan.chunk)


def cpu_seconds(client=None):
    """CPU seconds used so far by this process (and its children) plus, with ``client``, the workers."""
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    if client is None:
        return own

    def worker_cpu():
        import psutil

        return sum(psutil.Process().cpu_times()[:2])

    return own + sum(client.run(worker_cpu).values())


def timed(fn, client=None):
    """``(wall s, cpu s)`` of ``fn()``, after the disk has written what came before (not timed)."""
    os.sync()  # else the generated input's (or the previous run's) writeback lands on this run
    cpu, start = cpu_seconds(client), time.perf_counter()
    fn()
    return time.perf_counter() - start, cpu_seconds(client) - cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="images,rasters,flows,lattice")
    args = ap.parse_args()
    import contextlib

    from deepvre.pipelines.clusters import open_client
    from deepvre.pipelines.run import preprocess

    tmp = tempfile.mkdtemp(prefix="deepvre-bench-")
    s = args.scale
    makers = {
        "images": lambda: make_images(os.path.join(tmp, "images"), int(320 * s)),
        "rasters": lambda: make_raster(os.path.join(tmp, "rasters"), int(8192 * s ** 0.5) // 64 * 64),
        "flows": lambda: make_flows(os.path.join(tmp, "flows"), int(1_200_000 * s)),
        # 1600 configurations (~420 MB): long enough that fixed costs (submit, gather, manifest) do not decide
        "lattice": lambda: make_lattice(os.path.join(tmp, "lattice"), int(1600 * s), 128),
    }
    clusters = {}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        for w in (1, 2):
            clusters[w] = stack.enter_context(open_client("local", n_workers=w))[0]
        print(f"load average at start: {os.getloadavg()[0]:.1f}")
        print(f"{'pipeline':8} {'input MB':>8} {'items':>9} {'loop s':>7} {'1w s':>7} {'2w s':>7} "
              f"{'loop/s':>9} {'2w/s':>9} {'1w ovh':>7} {'2w x':>6} {'eff':>5} {'cpu s loop/1w/2w':>17}")
        for kind in args.only.split(","):
            src, params, items, unit = makers[kind]()
            mb = folder_mb(src)
            out = os.path.join(tmp, f"out-{kind}")
            t_loop, cpu_loop = timed(lambda: plain_loop(kind, src, out, params))
            times, cpus = {}, {}
            for w, client in clusters.items():
                shutil.rmtree(out, ignore_errors=True)
                times[w], cpus[w] = timed(lambda: preprocess(kind, src, out, params, client=client, progress=False),
                                          client)
            speedup = t_loop / times[2]
            print(f"{kind:8} {mb:8.0f} {items:9d} {t_loop:7.2f} {times[1]:7.2f} {times[2]:7.2f} "
                  f"{items / t_loop:9.1f} {items / times[2]:9.1f} {times[1] / t_loop - 1:7.1%} "
                  f"{speedup:6.2f} {speedup / 2:5.0%} {cpu_loop:5.1f}/{cpus[1]:4.1f}/{cpus[2]:4.1f}  "
                  f"({unit}/s; {mb / times[2]:.0f} MB/s on 2 workers; load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
