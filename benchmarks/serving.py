"""Serving benchmark: the real DEEPaaS service (``deepvre serve``) against in-process predict of the
same model on the same images, in the same run, at concurrency 1, 4 and 16.

    .venv/bin/python benchmarks/serving.py [--requests 32] [--repeats 7] [--threads 16] [--images 8]

The model is the ImageNet MobileNetV2 base model (``deepvre.science.mobilenet.convert``, 224x224,
1,000 classes), published into a temporary local catalog (as the hub seeds it) and served on TCP with a
token (``deepvre serve mobilenet-v2-imagenet --port P --threads T``). The images are
scikit-image's sample photos as JPEG bytes.

- **service**: ``c`` client threads, each with its own HTTP connection, POST the JPEGs as ``data``
  (multipart, ``top_k=5``) until ``--requests`` have been answered;
- **in process**: ``c`` threads call what the service calls for each request on the same bytes
  (``preprocessing.image_array`` then ``deepvre.serving.model.predict_array``, top 5), on the
  same model loaded once in this process.

Per concurrency, each repeat runs both, one right after the other, in reverse order every other
repeat. Reported: p50 and p95 of all latencies, the median throughput over the repeats, and the
service/in-process throughput ratio as the median of the repeats' ratios (each pair ran within
seconds, under the same load), the CPU time per request (the service's process and this one's
client threads; this process alone in process: a measure the other loads of a shared machine
do not move much), with the load averages at the start and the end (the machine is
shared).
"""

import argparse
import io
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402

from tests.market.test_serving import start_serve  # noqa: E402

NAME = "mobilenet-v2-imagenet"
SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "cat", "hubble_deep_field", "immunohistochemistry", "retina")


def jpegs(n):
    """``n`` JPEG-encoded RGB sample photos from scikit-image (repeated when ``n`` exceeds them)."""
    import skimage.data
    from PIL import Image

    out = []
    for i in range(n):
        pixels = getattr(skimage.data, SAMPLES[i % len(SAMPLES)])()
        buf = io.BytesIO()
        Image.fromarray(pixels).convert("RGB").save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def publish(root):
    """A local catalog in ``root`` holding the converted MobileNetV2, as the hub seeds it."""
    from deepvre.market.catalog import Catalog
    from deepvre.science import base_models, mobilenet

    catalog = Catalog(database_url=f"sqlite:///{root}/catalog.sqlite", store_url=str(root / "artifacts"))
    base_models.publish_mobilenet(mobilenet.convert(), catalog)


def start_service(root, token, args):
    """``deepvre serve`` of the model on TCP with ``token``: (process, predict URL, log)."""
    env = dict(os.environ, DEEPVRE_MARKET_DIR=str(root), DEEPVRE_SERVE_TOKEN=token)
    for var in ("DEEPVRE_MARKET_URL", "DEEPVRE_MARKET_TOKEN"):
        env.pop(var, None)
    proc, url, log = start_serve(NAME, env, root / "serve.log", [*args, "--artifact-dir", str(root / "served")], token,
                                 timeout=300)
    return proc, f"{url}/v2/models/{NAME}/predict/", log


def load_in_process(root):
    """The adapter's own functions on the same catalog entry, in this process."""
    os.environ.update(DEEPVRE_MARKET_DIR=str(root), DEEPVRE_SERVE_MODEL=NAME, DEEPVRE_SERVE_DIR=str(root / "local"))
    for var in ("DEEPVRE_MARKET_URL", "DEEPVRE_MARKET_TOKEN"):
        os.environ.pop(var, None)
    from deepvre.serving import model, preprocessing

    model.warm()
    _, spec = model.loaded()
    return lambda data: model.predict_array(preprocessing.image_array(data, spec), 5)


def run(call, images, concurrency, total):
    """``concurrency`` threads make ``total`` calls over ``images``: (latencies in s, wall s)."""
    latencies, lock, counter = [], threading.Lock(), iter(range(total))

    def worker(prepare):
        state = prepare()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            call(state, images[i % len(images)])
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(call.prepare,)) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start


def service_call(url, token):
    headers = {"Authorization": f"token {token}", "Accept": "application/json"}

    def call(session, data):
        r = session.post(url, files={"data": ("image.jpg", data, "image/jpeg")}, data={"top_k": "5"},
                         headers=headers, timeout=300)
        r.raise_for_status()
        return r.json()

    call.prepare = requests.Session
    return call


def in_process_call(predict):
    def call(_state, data):
        return predict(data)

    call.prepare = lambda: None
    return call


def cpu_seconds(processes):
    """CPU time (user + system) the ``processes`` used so far, all their threads."""
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def summary(latencies, wall):
    return {"ms": np.asarray(latencies) * 1000, "rps": len(latencies) / wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="calls per concurrency level and repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=16, help="the service's --threads")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=4, help="the service's --max-batch")
    parser.add_argument("--model-calls", type=int, default=4, help="the service's --model-calls")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    load_start = os.getloadavg()
    images = jpegs(args.images)
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        publish(root)
        proc, url, log = start_service(root, token, ["--threads", str(args.threads), "--max-batch", str(args.max_batch),
                                                     "--model-calls", str(args.model_calls)])
        try:
            predict = load_in_process(root)
            variants = {"service": service_call(url, token), "in process": in_process_call(predict)}
            processes = [psutil.Process(), psutil.Process(proc.pid)]  # this one (client or in process) and the service
            # same answers both ways, then one warm-up round each
            svc, local = variants["service"](requests.Session(), images[0]), predict(images[0])
            assert [p["label"] for p in svc["predictions"][0]] == [p["label"] for p in local["predictions"][0]], (svc, local)
            for call in variants.values():
                run(call, images, 4, 8)
            results = {(c, name): [] for c in args.concurrency for name in variants}
            for c in args.concurrency:
                for repeat in range(args.repeats):
                    order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
                    for name in order:
                        before = cpu_seconds(processes)
                        result = summary(*run(variants[name], images, c, args.requests))
                        result["cpu_ms"] = (cpu_seconds(processes) - before) * 1000 / args.requests
                        results[c, name].append(result)
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    load_end = os.getloadavg()
    print(f"serving benchmark: {NAME} (224x224, 1000 classes), {len(images)} JPEG photos, {args.requests} calls "
          f"per level, {args.repeats} repeats, service --threads {args.threads} --max-batch {args.max_batch} "
          f"--model-calls {args.model_calls}, top_k 5")
    print(f"load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f} ({os.cpu_count()} cores)")
    print(f"  {'concurrency':>11s}  {'variant':10s}  {'p50 ms':>8s}  {'p95 ms':>8s}  {'req/s':>7s}  {'CPU ms/req':>10s}")
    for c in args.concurrency:
        for name in variants:
            runs = results[c, name]
            ms = np.concatenate([r["ms"] for r in runs])
            rps = statistics.median(r["rps"] for r in runs)
            cpu = statistics.median(r["cpu_ms"] for r in runs)
            print(f"  {c:>11d}  {name:10s}  {np.percentile(ms, 50):8.1f}  {np.percentile(ms, 95):8.1f}  {rps:7.2f}  {cpu:10.1f}")
        paired = [s["rps"] / i["rps"] for s, i in zip(results[c, "service"], results[c, "in process"])]
        print(f"  {c:>11d}  service / in process throughput = {statistics.median(paired):.2f}x "
              f"(median of {len(paired)} paired repeats; range {min(paired):.2f} to {max(paired):.2f})")

if __name__ == "__main__":
    main()
