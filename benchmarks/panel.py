"""Panel benchmark: what the model panel's two requests cost through the hub's proxy, before and
after issue 14's changes, both measured in the same run against the same hub.

    .venv/bin/python benchmarks/panel.py [--models 30] [--weights-mb 14] [--repeats 7]

A real JupyterHub 5.5 with configurable-http-proxy and the marketplace service
(``tests/market/markethub.py``) holds ``--models`` trainable models, each with a training notebook
and a ``model.keras`` of ``--weights-mb`` (MobileNetV2's size). The client is the one a user's
server uses (``HTTPMarket`` with a token), at the proxy's URL.

- **search** (the panel's list of cards): before, the search and then one ``show`` per hit
  (the former ``backends.search_models``); after, the search alone (its entries carry metrics,
  base model and trainable).
- **parameter form** (one model's training notebook): before, the whole version pulled into a
  temporary folder and the notebook read (the former ``backends.training_snapshot``); after,
  ``show`` and the notebook alone (``read_file``), and again from the server's cache (by digest).

Each repeat runs every variant once, in reverse order every other repeat; medians are reported,
with the ratio before/after and the load averages at the start and the end (the machine is shared).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepvre.market.client import HTTPMarket  # noqa: E402
from deepvre_jupyter import backends  # noqa: E402
from tests.market.conftest import make_document  # noqa: E402
from tests.market.markethub import market_hub  # noqa: E402


def model_files(folder, weights_mb):
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    units = weights_mb * 1024 * 1024 // 4 // 1000  # float32 weights of Dense(1000 -> units)
    model = keras.Sequential([keras.Input((1000,)), keras.layers.Dense(units)])
    model.save(folder / "model.keras")
    notebook = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
                           "execution_count": None, "source": "epochs = 3\nlearning_rate = 0.001\n"}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (folder / "training.ipynb").write_text(json.dumps(notebook))
    return {p.name: p for p in folder.iterdir()}


def search_before(market):
    return [market.show(m["name"], m.get("version")) for m in market.search("", limit=100)]


def search_after(market):
    return market.search("", limit=100)


def form_before(market, name):
    entry = market.show(name)
    with tempfile.TemporaryDirectory() as folder:
        market.pull(name, entry["version"], folder)
        return (Path(folder) / "training.ipynb").read_bytes()


def form_after(market, name, cached=False):
    if not cached:
        backends._FILES.clear()
    entry = market.show(name)
    return backends.fetch_file(market, entry, "training.ipynb")


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--weights-mb", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, market_hub(Path(tmp), {"upload_limit": 2**31}) as hub:
        market = HTTPMarket(hub["market_url"], hub["tokens"]["alice"])
        files = model_files(Path(tmp) / "files", args.weights_mb)
        for i in range(args.models):
            doc = make_document(f"bench-{i:03d}")
            doc["deepvre"]["training"] = {"notebook": "training.ipynb"}
            doc["deepvre"]["metrics"] = {"accuracy": 0.5 + i / 1000}
            market.publish(doc, files)
        assert len(search_after(market)) == args.models
        assert all(e["trainable"] for e in search_after(market))
        assert form_before(market, "bench-000") == form_after(market, "bench-000")
        variants = {
            "search: search + show per hit (before)": lambda: search_before(market),
            "search: search alone (after)": lambda: search_after(market),
            "form: pull the whole version (before)": lambda: form_before(market, "bench-001"),
            "form: show + the notebook alone (after)": lambda: form_after(market, "bench-001"),
            "form: show + the notebook from the cache (after, again)": lambda: form_after(market, "bench-001", True),
        }
        times = {name: [] for name in variants}
        for repeat in range(args.repeats):
            order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in order:
                times[name].append(timed(variants[name]))
    load_end = os.getloadavg()
    print(f"panel benchmark: {args.models} trainable models, model.keras {args.weights_mb} MiB, "
          f"{args.repeats} repeats, through configurable-http-proxy")
    print(f"load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f} (2 cores)")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"  {name:58s} median {median * 1000:8.1f} ms  (min {min(times[name]) * 1000:.1f})")
    names = list(medians)
    print(f"  search: before / after = {medians[names[0]] / medians[names[1]]:.1f}x")
    print(f"  form: before / after = {medians[names[2]] / medians[names[3]]:.1f}x "
          f"(cached: {medians[names[2]] / medians[names[4]]:.1f}x)")


if __name__ == "__main__":
    main()
