"""How long `deepvre market rank` takes on a few thousand samples: Dask (the pipelines' LocalCluster)
against the same work in this process, without Dask (the baseline), in one run.

    .venv/bin/python benchmarks/ranking.py                 # about 2000 crops at 64 px
    .venv/bin/python benchmarks/ranking.py --seeds 2       # fewer (about 860)

The data: the biology notebook's real crops (four classes), cut ``--seeds`` times with different
seeds (crops of different seeds may overlap: this measures time, not accuracy), written as class
folders and preprocessed by the real ``images`` pipeline. The catalog: a local one holding the
converted ImageNet MobileNetV2 (the hub's seeded base model); the ranking scores it and its random
floor. The Dask time is what a user waits for: it includes starting the cluster and each worker
loading TensorFlow and the models. Models are pulled into the cache before either run, and the
floor is drawn once before either run too, so both runs do the same work. Load averages are printed
before and after: on a shared machine they say how much else was running.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_data(root, seeds, size):
    from PIL import Image

    from deepvre.pipelines import preprocess
    from deepvre.science import biology_crops

    crops_dir = os.path.join(root, "crops")
    n = 0
    for seed in range(seeds):
        crops, records = biology_crops.cut(per_class=150, seed=seed)
        for crop, record in zip(crops, records):
            folder = os.path.join(crops_dir, record["class"])
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(crop)).save(os.path.join(folder, f"{n:05d}.png"))
            n += 1
    out = os.path.join(root, "data")
    preprocess("images", crops_dir, out, {"size": size, "split": (0.6, 0.2, 0.2)}, cluster="local",
               n_workers=2, progress=False)
    return out, n


def timed(label, fn):
    stages, start = {}, time.perf_counter()

    def progress(stage, done, total):
        stages.setdefault(stage, time.perf_counter() - start)

    load = os.getloadavg()
    result = fn(progress)
    seconds = time.perf_counter() - start
    marks = ", ".join(f"{stage} at {at:.1f} s" for stage, at in stages.items())
    print(f"{label}: {seconds:.1f} s wall (load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}); {marks}")
    for row in result["models"]:
        print(f"    {row['rank']}  {row['model']:<38} LogME {row['logme']:.3f}  probe {row['probe_accuracy']:.2f}")
    return result, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="cuts of the crops (about 430 samples each)")
    parser.add_argument("--size", type=int, default=64, help="patch side in pixels")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import deepvre.market.catalog  # noqa: F401  (before TensorFlow: the system SQLite)
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import LocalMarket
    from deepvre.science import base_models, mobilenet, ranking

    root = tempfile.mkdtemp(prefix="deepvre-rank-bench-")
    try:
        data, n = make_data(root, args.seeds, args.size)
        market = LocalMarket(Catalog(database_url=f"sqlite:///{root}/catalog.sqlite", store_url=f"{root}/artifacts"))
        base_models.publish_mobilenet(mobilenet.convert(), market)
        models = os.path.join(root, "models")
        described = ranking.describe_data(data)
        print(f"{n} samples ({described['shape']}, splits {({k: len(v) for k, v in described['labels'].items()})}), "
              f"{os.cpu_count()} cores; {args.workers} Dask workers")
        # warm the model cache and the floor file for both runs (the first run would otherwise pay for them)
        compatible, _ = ranking.candidates(market, described)
        path = ranking.pull(market, compatible[0]["entry"], models)
        ranking.make_floor(path, compatible[0]["plan"], os.path.join(models, "floors"), described["splits"]["train"],
                           described["decode"])
        on_dask, dask_s = timed("Dask LocalCluster", lambda p: ranking.rank(
            data, market=market, cluster="local", n_workers=args.workers, models_dir=models, progress=p))
        here, here_s = timed("in process, no Dask (baseline)", lambda p: ranking.rank(
            data, market=market, in_process=True, models_dir=models, progress=p))
        agree = all(abs(a["logme"] - b["logme"]) < 1e-4 for a, b in zip(on_dask["models"], here["models"]))
        print(f"same ranking and LogME both ways: {agree and [r['model'] for r in on_dask['models']] == [r['model'] for r in here['models']]}; "
              f"Dask / in process = {dask_s / here_s:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
