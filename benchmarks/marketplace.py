"""Marketplace benchmark: search latency over N generated entries, publish/pull throughput vs a copy.

    .venv/bin/python benchmarks/marketplace.py [--entries 10000] [--size-mb 64]

Search runs against the REST API of a standalone service (tornado, thread pool, SQLite FTS5) at
concurrency 1 and 16. Publish and pull go through the Python catalog (sha256 on every byte, the
integrity check) and are compared with ``shutil.copyfile`` of the same bytes in the same run.
Generated entries are index rows only (one shared blob), for measuring the index.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import deepvre.market  # noqa: F401
import requests
import sqlalchemy as sa

from deepvre.market import index
from deepvre.market.catalog import Caller, Catalog

WORDS = ("cell nuclei retina fundus satellite night lights flow anomaly lattice plaquette tree crown "
         "segmentation classifier regression transfer mobilenet keras fluorescence sentinel landsat zeek").split()


def generate(catalog, n):
    rng = random.Random(0)
    rows = []
    for i in range(n):
        words = rng.sample(WORDS, 6)
        rows.append(dict(
            name=f"gen-{i:05d}", owner=f"user{i % 50}", visibility=rng.choice(["public", "public", "group", "private"]),
            deprecated=False, latest="1.0.0", title=" ".join(words[:3]).title(), summary=" ".join(words),
            description=" ".join(rng.choices(WORDS, k=40)), tags=" ".join(words[3:]), use_case=rng.choice(["biology", "satellite", "security"]),
            tasks=json.dumps(["Computer Vision"]), libraries=json.dumps(["Keras"]), categories=json.dumps(["AI4 trainable"]),
        ))
    with catalog.Session.begin() as session:
        session.execute(sa.insert(index.ModelRow), rows)
        for row in session.scalars(sa.select(index.ModelRow)):
            index.index_text(session, row)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def search_latency(url, concurrency, requests_total):
    rng = random.Random(concurrency)
    session_pool = [requests.Session() for _ in range(concurrency)]

    def one(i):
        q = " ".join(rng.sample(WORDS, 2))
        t = time.perf_counter()
        r = session_pool[i % concurrency].get(f"{url}api/models", params={"q": q, "limit": 20}, timeout=60)
        r.raise_for_status()
        return (time.perf_counter() - t) * 1000

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency * 2)))  # warm up
        times = list(pool.map(one, range(requests_total)))
    return statistics.median(times), percentile(times, 99)


def throughput(size_mb, root, catalog):
    src = root / "blob.bin"
    with open(src, "wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1 << 20))
    size = src.stat().st_size / (1 << 20)
    t = time.perf_counter()
    shutil.copyfile(src, root / "copy.bin")  # the kernel's copy_file_range: no bytes through user space
    copy_s = time.perf_counter() - t
    t = time.perf_counter()
    with open(src, "rb") as a, open(root / "copy2.bin", "wb") as b:  # what any reader that looks at the bytes pays
        while block := a.read(8 << 20):
            b.write(block)
    user_copy_s = time.perf_counter() - t
    t = time.perf_counter()
    digest, _ = catalog.store.put_file(src)
    publish_s = time.perf_counter() - t
    t = time.perf_counter()
    catalog.store.copy_to(digest, root / "pulled.bin")
    pull_s = time.perf_counter() - t
    return size / copy_s, size / user_copy_s, size / publish_s, size / pull_s


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    print("load average:", open("/proc/loadavg").read().split()[:3])
    root = Path(tempfile.mkdtemp(prefix="deepvre-bench-market-"))
    db, store = f"sqlite:///{root / 'catalog.sqlite'}", str(root / "store")
    catalog = Catalog(database_url=db, store_url=store)
    t = time.perf_counter()
    generate(catalog, args.entries)
    print(f"generated {args.entries} entries in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    hits = catalog.search(Caller("user1", ("lab",)), "retina fundus")
    print(f"in-process search: {len(hits)} hits in {(time.perf_counter() - t) * 1000:.1f} ms")
    port = 20000 + os.getpid() % 20000
    service = subprocess.Popen([sys.executable, "-m", "deepvre.market.service", "--standalone", "--port", str(port),
                                "--database-url", db, "--store-url", store], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        service.stdout.readline()
        url = f"http://127.0.0.1:{port}/"
        for concurrency in (1, 16):
            p50, p99 = search_latency(url, concurrency, args.requests)
            print(f"search over HTTP, concurrency {concurrency:>2}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    finally:
        service.terminate()
        service.wait(30)
    for _ in range(3):
        copy, user_copy, publish, pull = throughput(args.size_mb, root, catalog)
        print(f"{args.size_mb} MiB: copyfile {copy:6.0f} MB/s | read/write copy {user_copy:6.0f} MB/s | "
              f"publish {publish:6.0f} MB/s ({publish / copy:.0%} / {publish / user_copy:.0%}) | "
              f"pull {pull:6.0f} MB/s ({pull / copy:.0%} / {pull / user_copy:.0%})")
    print("load average:", open("/proc/loadavg").read().split()[:3])
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
