"""Marketplace benchmark: search latency over N generated entries, publish/pull throughput vs a copy.

    .venv/bin/python benchmarks/marketplace.py [--entries 10000] [--size-mb 256] [--repeats 7]

Search runs against the REST API of a standalone service (tornado, one process with a thread per
core by default, ``--processes N`` to change it, SQLite FTS5 in WAL mode) at concurrency 1 and 16.
The load comes from a separate process (one asyncio
loop, aiohttp, one connection per concurrent client), so the client costs little of the 2 cores;
the script reports the CPU each side spent per request, and what ``Catalog.search`` and SQLite
alone cost for the same queries, so that the time can be placed.

Two catalogs, both index rows only (one shared blob):

- ``realistic`` (the goal measurement): titles, summaries, descriptions and tags drawn with a
  Zipfian word frequency (rank r has weight 1/r**1.07) from 4,000 distinct words: about 200 real
  domain words at the head (biology, earth observation, network security, lattice QCD, model
  types and methods) and generated pseudo-words for the tail; filters as a site has them (use
  case, task, library, category; 70 % public, 15 % group, 15 % private models of 300 owners in
  20 groups). Queries: 35 % one word and 35 % two words (half drawn by the same Zipf law, so
  common words, half uniformly from the vocabulary, so rare ones), 30 % filter-only listings
  (use case, task or library, newest first). The service answers as the standalone user.
- ``stress``: the first pass's catalog, 40-word descriptions from a 24-word vocabulary: every
  two-word query matches about 7,600 of 10,000 rows (a worst case for ranking, not a catalog).

Every query string is unique within a run: there is no result cache, and none would be hit.

Pull vs plain copy: the same blob copied to the same destination folder (same file system) by a
read/write loop of 8 MiB blocks, by ``shutil.copyfile`` (the kernel's ``copy_file_range``, no
byte through user space) and by two pulls (``copy_to``: the BLAKE3 digest recorded at publish,
the default, and ``--verify sha256``). Every timed operation starts alike (destination emptied,
``os.sync()`` so that no earlier write-back overlaps it, the source warm in the page cache or,
in a second pass, dropped from it); each repeat runs every operation once, in reverse order every
other repeat. The ratio is the pull against the faster of the two copies of the same repeat.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

import deepvre.market  # noqa: F401  (loads sqlite3 before anything else)
from deepvre.market import fulltext, index, tables
from deepvre.market.catalog import BROAD, Caller, Catalog

STRESS_WORDS = ("cell nuclei retina fundus satellite night lights flow anomaly lattice plaquette tree crown "
                "segmentation classifier regression transfer mobilenet keras fluorescence sentinel landsat zeek").split()

HEAD_WORDS = """
model network deep learning image images classification segmentation detection regression data training
trained transfer fine tuned pretrained dataset prediction predicts input output layer layers convolutional
neural accuracy labels label classes features feature embedding encoder decoder autoencoder transformer
attention mobilenet resnet efficientnet unet yolo lstm gru recurrent gan diffusion vision language
cell cells nuclei nucleus microscopy fluorescence histology tissue retina fundus retinal lesion tumor
cancer protein genome gene sequencing plankton phytoplankton species plant leaf flower seed bacteria
organoid embryo mitochondria membrane stain staining immunohistochemistry biopsy pathology
satellite sentinel landsat multispectral hyperspectral optical radar sar band bands pixel pixels tile
tiles cloud clouds land cover crop crops forest tree trees crown canopy urban night lights poverty
earth observation remote sensing elevation dem flood wildfire snow ocean sea coastline river
network security intrusion anomaly anomalies flow flows zeek traffic packet packets port ports
botnet malware scan scanning ddos attack attacks firewall log logs connection connections dns
lattice qcd gauge plaquette wilson loop monte carlo metropolis hmc ensemble configuration
configurations correlator correlators quark gluon hadron pion mass spectrum coupling beta
topological charge field fields
keras tensorflow pytorch sklearn notebook papermill pipeline batch epochs optimizer adam loss
augmentation validation test split metric metrics precision recall score probability probabilities
""".split()


def pseudo_words(rng, count, taken):
    """Pronounceable made-up words (consonant-vowel syllables), none of them a head word."""
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    out = []
    while len(out) < count:
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4)))
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


class Vocabulary:
    """``size`` distinct words, the head real and the tail made up, drawn with a Zipf law."""

    def __init__(self, rng, size=4000, exponent=1.07):
        head = list(dict.fromkeys(HEAD_WORDS))
        rng.shuffle(head)
        self.words = head + pseudo_words(rng, size - len(head), set(head))
        weights = [1 / (rank + 1) ** exponent for rank in range(size)]
        total = 0.0
        self.cumulative = []
        for w in weights:
            total += w
            self.cumulative.append(total)

    def draw(self, rng, k):
        return rng.choices(self.words, cum_weights=self.cumulative, k=k)

    def rare(self, rng, k):
        return [rng.choice(self.words) for _ in range(k)]


USE_CASES = (("biology", 35), ("earth-observation", 25), ("network-security", 15), ("lattice-qcd", 10),
             ("general", 15))
TASKS = ("Computer Vision", "Anomaly Detection", "Time Series", "Graph Neural Networks", "Regression",
         "Classification", "Segmentation")
LIBRARIES = (("Keras", 50), ("TensorFlow", 25), ("PyTorch", 20), ("scikit-learn", 5))
CATEGORIES = ("AI4 trainable", "AI4 inference", "AI4 pre trained")
GROUPS = [f"group{i:02d}" for i in range(20)]


def weighted(rng, pairs):
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def realistic_rows(n, vocab, rng):
    rows, groups = [], []
    for i in range(n):
        visibility = rng.choices(["public", "group", "private"], weights=[70, 15, 15])[0]
        name = f"gen-{i:05d}"
        if visibility == "group":
            groups += [{"name": name, "group": g} for g in rng.sample(GROUPS, rng.randint(1, 2))]
        rows.append(dict(
            name=name, owner=f"user{rng.randrange(300):03d}", visibility=visibility, deprecated=rng.random() < 0.03,
            latest="1.0.0", title=" ".join(vocab.draw(rng, rng.randint(3, 6))).capitalize(),
            summary=" ".join(vocab.draw(rng, rng.randint(10, 20))), description=" ".join(vocab.draw(rng, rng.randint(60, 150))),
            tags=" ".join(vocab.draw(rng, rng.randint(2, 5))), use_case=weighted(rng, USE_CASES),
            tasks=json.dumps(rng.sample(TASKS, rng.randint(1, 2))), libraries=json.dumps([weighted(rng, LIBRARIES)]),
            categories=json.dumps(rng.sample(CATEGORIES, rng.randint(1, 2))),
        ))
    return rows, groups


def stress_rows(n, rng):
    rows = []
    for i in range(n):
        words = rng.sample(STRESS_WORDS, 6)
        rows.append(dict(
            name=f"gen-{i:05d}", owner=f"user{i % 50}", visibility=rng.choice(["public", "public", "group", "private"]),
            deprecated=False, latest="1.0.0", title=" ".join(words[:3]).title(), summary=" ".join(words),
            description=" ".join(rng.choices(STRESS_WORDS, k=40)), tags=" ".join(words[3:]),
            use_case=rng.choice(["biology", "satellite", "security"]), tasks=json.dumps(["Computer Vision"]),
            libraries=json.dumps(["Keras"]), categories=json.dumps(["AI4 trainable"]),
        ))
    return rows, []


def load(catalog, rows, groups):
    with catalog.Session.begin() as session:
        session.execute(sa.insert(tables.ModelRow), rows)
        if groups:
            session.execute(sa.insert(tables.ModelGroup), groups)
        for row in session.scalars(sa.select(tables.ModelRow)):
            fulltext.index_row(session, row)


def realistic_queries(vocab, rng, count):
    """Query parameter dicts, each unique: text (common and rare words) and filter-only listings."""
    out, seen = [], set()
    while len(out) < count:
        kind = rng.random()
        if kind < 0.7:
            words = (vocab.draw if rng.random() < 0.5 else vocab.rare)(rng, 1 if kind < 0.35 else 2)
            params = {"q": " ".join(words), "limit": 20}
        else:
            key, value = rng.choice([("use_case", weighted(rng, USE_CASES)), ("task", rng.choice(TASKS)),
                                     ("library", weighted(rng, LIBRARIES))])
            # filter-only listings page through the results, which makes them unique too
            params = {key: value, "sort": "updated", "limit": 20, "offset": 20 * rng.randrange(25)}
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out


def stress_queries(rng, count):
    out, seen = [], set()
    while len(out) < count:
        q = " ".join(rng.sample(STRESS_WORDS, 2)) if len(seen) < 500 else " ".join(rng.sample(STRESS_WORDS, 3))
        if q not in seen:
            seen.add(q)
            out.append({"q": q, "limit": 20})
    return out


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def proc_cpu_s(pid):
    """User + system CPU seconds of a running process and its children (the service's processes)."""
    import psutil

    total = 0.0
    for proc in [psutil.Process(pid), *psutil.Process(pid).children()]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


# -- the load generator: a separate process, ``--client URL CONCURRENCY`` with queries on stdin ----


async def drive(url, concurrency, queries):
    import aiohttp

    pending = list(reversed(queries))
    times = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker():
            while pending:
                params = pending.pop()
                t = time.perf_counter()
                async with session.get(f"{url}api/models", params=params) as resp:
                    resp.raise_for_status()
                    await resp.read()
                times.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


def client_main(url, concurrency):
    queries = json.loads(sys.stdin.read())
    warm, measured = queries[: 2 * concurrency], queries[2 * concurrency:]
    asyncio.run(drive(url, concurrency, warm))
    cpu, wall = time.process_time(), time.perf_counter()
    times = asyncio.run(drive(url, concurrency, measured))
    print(json.dumps({"times": times, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}))


def search_over_http(url, service_pid, concurrency, queries):
    """p50, p99 (ms), throughput, server and client CPU ms per request, for ``queries`` at ``concurrency``."""
    client = subprocess.Popen([sys.executable, __file__, "--client", url, str(concurrency)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    # the service's CPU is read around the whole client run (warm-up included) and shared out
    before = proc_cpu_s(service_pid)
    out, _ = client.communicate(json.dumps(queries), timeout=1200)
    server_cpu = proc_cpu_s(service_pid) - before
    if client.returncode:
        raise SystemExit(f"load generator failed ({client.returncode})")
    result = json.loads(out)
    times = result["times"]
    return dict(
        p50=statistics.median(times), p99=percentile(times, 99), rps=len(times) / result["wall_s"],
        server_cpu_ms=server_cpu / len(queries) * 1000, client_cpu_ms=result["cpu_s"] / len(times) * 1000,
    )


def in_process_costs(catalog, caller, queries):
    """CPU ms per query of ``Catalog.search`` (SQLAlchemy + SQLite + entries) and of SQLite alone."""
    params = [(q.get("q", ""), {k: q[k] for k in ("use_case", "task", "library") if k in q}, q.get("sort"),
               q["limit"], q.get("offset", 0)) for q in queries]
    t = time.process_time()
    hits = [len(catalog.search(caller, *p)) for p in params]
    catalog_ms = (time.process_time() - t) / len(params) * 1000
    # the same statements as SQL text, run on a plain sqlite3 connection (no SQLAlchemy, no entries)
    statements = []
    with catalog.Session() as session:
        for q, filters, sort, limit, offset in params:
            # as Catalog.search does it (its first try: the one that fills the page nearly always)
            depth = max(200, 4 * (limit + offset))
            found = fulltext.text_hits(session, q, max(BROAD, depth)) if fulltext.query_words(q) else 0
            stmt = index.search_query(session, caller, q, filters, sort, limit, offset,
                                      depth=depth if found >= depth else None, tiered=found >= BROAD)
            statements.append(str(stmt.compile(dialect=catalog.engine.dialect, compile_kwargs={"literal_binds": True})))
    conn = sqlite3.connect(catalog.database_url[len("sqlite:///"):])
    t = time.process_time()
    for sql in statements:
        conn.execute(sql).fetchall()
    sqlite_ms = (time.process_time() - t) / len(statements) * 1000
    conn.close()
    return catalog_ms, sqlite_ms, statistics.median(hits)


def match_counts(catalog, queries):
    """Median and largest number of rows the text queries match (before visibility and paging)."""
    counts = []
    with catalog.engine.connect() as conn:
        for q in queries:
            if q.get("q"):
                counts.append(conn.exec_driver_sql("SELECT count(*) FROM models_fts WHERE models_fts MATCH ?",
                                                   (fulltext.fts_query(q["q"]),)).scalar())
    return statistics.median(counts), max(counts)


def search_benchmark(kind, root, entries, requests_total, processes):
    rng = random.Random(0)
    db, store = f"sqlite:///{root / f'{kind}.sqlite'}", str(root / "store")
    catalog = Catalog(database_url=db, store_url=store)
    t = time.perf_counter()
    if kind == "realistic":
        vocab = Vocabulary(rng)
        load(catalog, *realistic_rows(entries, vocab, rng))
        make = lambda n: realistic_queries(vocab, random.Random(n), n)  # noqa: E731
    else:
        load(catalog, *stress_rows(entries, rng))
        make = lambda n: stress_queries(random.Random(n), n)  # noqa: E731
    print(f"\n[{kind}] generated {entries} entries in {time.perf_counter() - t:.1f} s")
    sample = make(400)
    median_hits, max_hits = match_counts(catalog, sample)
    print(f"[{kind}] text queries match {median_hits:.0f} rows (median), {max_hits} at most, of {entries}")
    for label, caller in (("admin", Caller("admin", (), True)), ("user in 2 groups", Caller("user007", ("group03", "group11")))):
        catalog_ms, sqlite_ms, hits = in_process_costs(catalog, caller, sample)
        print(f"[{kind}] in process, {label}: Catalog.search {catalog_ms:5.2f} ms CPU/query "
              f"(SQLite alone {sqlite_ms:5.2f} ms), {hits:.0f} entries per answer (median)")
    service = subprocess.Popen([sys.executable, "-m", "deepvre.market", "--standalone", "--port", "0",
                                "--database-url", db, "--store-url", store, "--processes", str(processes)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = service.stdout.readline()
        print(f"[{kind}] {line.strip()}")
        url = line.split()[-1] + "/"
        for concurrency in (1, 16):
            r = search_over_http(url, service.pid, concurrency, make(requests_total + 2 * concurrency))
            print(f"[{kind}] search over HTTP, concurrency {concurrency:>2}: p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  "
                  f"{r['rps']:5.0f} req/s | CPU per request: service {r['server_cpu_ms']:5.2f} ms, "
                  f"load generator {r['client_cpu_ms']:5.2f} ms")
    finally:
        service.terminate()
        service.wait(30)
    return catalog


def read_write_copy(src, dest):
    with open(src, "rb", buffering=0) as a, open(dest, "wb") as b:
        buf = bytearray(8 << 20)
        while size := a.readinto(buf):
            b.write(memoryview(buf)[:size])


def settle(paths, dest, cache):
    """The same start for every timed operation: ``dest`` emptied, earlier writes flushed (so
    their write-back does not land in the next timing), ``paths`` in the page cache (``warm``)
    or dropped from it (``cold``, ``posix_fadvise`` DONTNEED: the next read comes from disk)."""
    for name in os.listdir(dest):
        os.remove(dest / name)
    os.sync()
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            if cache == "warm":
                buf = bytearray(8 << 20)
                while f.readinto(buf):
                    pass
            else:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def timed(func, size_mb):
    t = time.perf_counter()
    func()
    return size_mb / (time.perf_counter() - t)


def throughput(size_mb, root, catalog, repeats):
    src = root / "blob.bin"
    with open(src, "wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1 << 20))
    size = src.stat().st_size / 1e6  # MB/s below: decimal megabytes
    publish = [timed(lambda: catalog.store.put_file(src), size)]  # first time: writes the blob
    stored = catalog.store.put_file(src)
    blob = Path(catalog.store.path(stored.sha256))  # same bytes, same file system as src
    dest = root / "out"
    dest.mkdir()
    ops = {
        "read/write copy, 8 MiB blocks": lambda: read_write_copy(blob, dest / "copy.bin"),
        "shutil.copyfile (copy_file_range)": lambda: shutil.copyfile(blob, dest / "copyfile.bin"),
        "pull (BLAKE3 checked)": lambda: catalog.store.copy_to(stored.sha256, dest / "pulled.bin", stored.blake3),
        "pull --verify sha256": lambda: catalog.store.copy_to(stored.sha256, dest / "pulled-sha.bin", verify="sha256"),
    }
    baselines, pull = list(ops)[:2], "pull (BLAKE3 checked)"
    med = statistics.median
    for cache in ("warm", "cold"):
        results = {label: [] for label in ops}
        for repeat in range(repeats):
            # every operation once per repeat, the order reversed every other repeat
            for label in (list(ops) if repeat % 2 == 0 else list(reversed(ops))):
                settle([src, blob], dest, cache)
                results[label].append(timed(ops[label], size))
        # the pull against the faster of the two copies, repeat by repeat
        ratios = [p / max(a, b) for p, a, b in zip(results[pull], *(results[label] for label in baselines))]
        print(f"\n{size_mb} MiB, source {cache} in the page cache, {repeats} repeats (MB/s, median [min-max]):")
        for label, values in results.items():
            print(f"  {label:<42} {med(values):6.0f} [{min(values):.0f}-{max(values):.0f}]")
        print(f"  pull / the faster plain copy of the same repeat: median {med(ratios):.0%} "
              f"[{min(ratios):.0%}-{max(ratios):.0%}]")
    for _ in range(repeats):
        settle([src], dest, "warm")
        publish.append(timed(lambda: catalog.store.put_file(src), size))
    print(f"\npublish (sha256 + BLAKE3, blob exists): {med(publish[1:]):.0f} MB/s "
          f"[{min(publish[1:]):.0f}-{max(publish[1:]):.0f}]; first publish (blob written): {publish[0]:.0f} MB/s")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        client_main(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--processes", type=int, default=1, help="service processes (the service's default: 1)")
    parser.add_argument("--skip", choices=["stress", "search", "pull"], action="append", default=[])
    args = parser.parse_args()
    print("load average:", open("/proc/loadavg").read().split()[:3], "| cores:", os.cpu_count())
    root = Path(tempfile.mkdtemp(prefix="deepvre-bench-market-"))
    try:
        catalog = None
        if "search" not in args.skip:
            for kind in ("realistic", "stress"):
                if kind not in args.skip:
                    catalog = search_benchmark(kind, root, args.entries, args.requests, args.processes)
                    print("load average:", open("/proc/loadavg").read().split()[:3])
        if "pull" not in args.skip:
            catalog = catalog or Catalog(database_url=f"sqlite:///{root / 'pull.sqlite'}", store_url=str(root / "store"))
            throughput(args.size_mb, root, catalog, args.repeats)
        print("load average:", open("/proc/loadavg").read().split()[:3])
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
