"""Which model should I start from? Rank the catalog's models on a user's own preprocessed data (issue 18).

    result = rank("out/cells")                    # the caller's catalog (connect()), a LocalCluster
    for row in result["models"]:
        print(row["rank"], row["model"], row["logme"], row["probe_accuracy"], row["reading"])

For a pipeline output (``deepvre preprocess``: Zarr shards, ``manifest.json``, class labels, splits):

1. every catalog model the caller can see is checked against the data (:func:`fit`): same input kind
   (``deepvre.input.kind``), same number of axes and channels; a convolutional model made for another
   image size is resized (its weights do not depend on the size, as the notebooks use the base model);
   the stored values are turned into the model's input by its declared ``preprocessing`` (pixel
   ``* scale + offset``, then mean/std). Every other model is skipped with its reason.
2. Frozen features, the input of each model's last layer (its head; pooled over space), and, for a
   classifier, its probabilities over its own labels, are computed on Dask (the pipelines' cluster,
   LocalCluster by default): one task per shard and model; a worker loads each model once.
3. On those features: LogME (train split), LEEP (train split, where the model has source labels) and
   the linear probe (``evaluation.linear_model``: train, L2 chosen on val, accuracy on test).
4. A randomly initialised twin of the base architecture is the floor; each model's plain-words
   reading comes from its LogME gap to that floor (:func:`reading`).
"""

import hashlib
import json
import os
import time
from urllib.parse import quote

import numpy as np

from ..checksums import file_sha256
from ..errors import Invalid
from . import evaluation, transferability

CLOSE = 0.05          # a LogME gap (nats per sample) under which a model is "close to the random network"
FLOOR_SEED = 0        # the random floor's initialisation
FLOOR_SAMPLES = 512   # train samples its BatchNormalization statistics are estimated on
PROBE_STEPS = 300     # gradient steps of each linear probe (evaluation.fit_logistic)
BATCH = 64            # samples per forward pass on a worker
BASIS = (f"LogME (You et al., 2021) of each model's frozen features on the train split, compared with a randomly "
         f"initialised network of the same architecture (the floor, what training from scratch starts from); a "
         f"gap under {CLOSE} nats per sample counts as close to the floor. LEEP (Nguyen et al., 2020) uses the "
         f"model's own classifier; the linear probe is a logistic regression on the same features, L2 chosen on "
         f"val, accuracy on test.")


class DataError(Invalid):
    """DATA is not a usable preprocessed data set (missing, not a pipeline output, damaged, no class labels)."""


class NoCompatibleModel(Invalid):
    """No model the caller can see takes this data."""

    def __init__(self, message, skipped=()):
        super().__init__(message)
        self.skipped = list(skipped)


# --- the data ------------------------------------------------------------------------------------

def describe_data(output, verify=True):
    """What ranking needs of a pipeline output: its input kind and sample shape, the factor that turns
    stored values back into pixels (None when standardised), the shards per split and the labels.

    Raises :class:`DataError` naming what is wrong."""
    from ..pipelines import manifest as mf
    from ..pipelines.dataset import decoders

    output = os.path.abspath(os.path.expanduser(str(output)))
    if not os.path.isdir(output):
        raise DataError(f"{output}: no such folder (DATA is the output folder of `deepvre preprocess`)")
    try:
        manifest = mf.read_manifest(output)
    except FileNotFoundError:
        raise DataError(f"{output}: not a preprocessed data set (no {mf.MANIFEST}); make one with "
                        f"`deepvre preprocess KIND INPUT {output}`") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{output}/{mf.MANIFEST} is damaged: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        raise DataError(f"{output}/{mf.MANIFEST} is damaged: it lists no shards")
    shards = [r for r in manifest["shards"] if isinstance(r, dict) and r.get("n")]
    if not shards:
        raise DataError(f"{output}: the data set is empty (no samples in {mf.MANIFEST})")
    for record in shards:
        path = os.path.join(output, str(record.get("path", "")))
        if not os.path.realpath(path).startswith(os.path.realpath(output) + os.sep) or not os.path.isdir(path):
            raise DataError(f"{output}: shard {record.get('path')!r} listed in {mf.MANIFEST} is missing")
        if verify and mf.tree_sha256(path) != record.get("sha256"):
            raise DataError(f"{output}: shard {record['path']!r} does not match its sha256 in {mf.MANIFEST} "
                            f"(changed or damaged since `deepvre preprocess` wrote it; run it again)")
    x = shards[0]["arrays"].get("x", {})
    y = shards[0]["arrays"].get("y", {})
    if len(y.get("shape", [])) != 1:
        raise DataError(f"{output}: ranking needs one class label per sample, and this data set's y has shape "
                        f"{y.get('shape')} per shard (masks, boxes or regression targets are not supported yet)")
    kind = manifest.get("kind")
    shape = tuple(x["shape"][1:])
    image = kind in ("images", "rasters") and len(shape) == 3
    rule = decoders(output).get("x") or {}
    steps = (manifest.get("params") or {}).get("steps") or ()
    if "standardize" in steps:
        pixel = None  # per-sample standardised: the pixel values are gone
    elif rule.get("divide_by"):
        pixel = float(rule["divide_by"])
    elif "normalize" in steps:
        pixel = 255.0
    else:
        pixel = 1.0
    splits = {}
    for record in shards:
        splits.setdefault(record["split"], []).append(
            {"path": os.path.join(output, record["path"]), "n": int(record["n"]), "sha256": record.get("sha256")})
    labels = {}
    for split in splits:
        from ..pipelines.dataset import open_split

        values = np.asarray(open_split(output, split, arrays=("y",)))
        if values.size and (np.any(values < 0) or np.any(np.asarray(values, np.float64) % 1)):
            raise DataError(f"{output}: ranking needs class labels 0..K-1, and split {split!r} holds other values")
        labels[split] = values.astype(np.int64)
    summary = manifest.get("summary") or {}
    classes = summary.get("classes") if isinstance(summary.get("classes"), list) else None
    n_classes = int(max(int(v.max()) for v in labels.values() if v.size) + 1)
    if n_classes < 2:
        raise DataError(f"{output}: ranking needs at least two classes, the labels hold one")
    if not labels.get("train", np.zeros(0)).size:
        raise DataError(f"{output}: the train split is empty; LogME and the probe are fitted on it")
    return {"path": output, "pipeline": kind, "input_kind": "image" if image else "array", "shape": shape,
            "pixel": pixel, "decode": rule, "splits": splits, "labels": labels, "classes": classes,
            "n_classes": n_classes, "samples": sum(len(v) for v in labels.values())}


# --- which models fit (pure) ----------------------------------------------------------------------

def fit(document, data):
    """``(plan, None)`` when the model of catalog ``document`` can take ``data`` (from
    :func:`describe_data`), else ``(None, reason)``. The plan says how: ``scale``/``offset``/``mean``/
    ``std`` turn stored values into the model's input, ``resize`` whether its image size differs,
    ``source`` whether it has source labels (LEEP), ``embedding`` whether its output is the feature."""
    section = (document or {}).get("deepvre") or {}
    inp, out = section.get("input") or {}, section.get("output") or {}
    kind = inp.get("kind", "image")
    shape, want = list(inp.get("shape") or []), list(data["shape"])
    if kind != data["input_kind"]:
        return None, f"takes {kind} input; the data is {data['input_kind']} samples of shape {want}"
    if len(shape) != len(want):
        return None, f"input shape {shape} has {len(shape)} axes; the data's samples {want} have {len(want)}"
    resize = False
    if kind == "image":
        if shape[-1] not in (None, want[-1]):
            return None, f"takes {shape[-1]} channel(s); the data has {want[-1]}"
        resize = any(s not in (None, w) for s, w in zip(shape[:-1], want[:-1]))
    elif any(s not in (None, w) for s, w in zip(shape, want)):
        return None, f"input shape {shape}; the data's samples are {want}"
    pre = inp.get("preprocessing") or {}
    pixel = data["pixel"] if kind == "image" else 1.0
    if pixel is None and pre:
        return None, ("the data is standardised per sample (pipeline step standardize): the pixel values its "
                      "preprocessing expects are gone; preprocess with steps=resize,normalize")
    scale = float(pre.get("scale", 1.0)) * (pixel or 1.0) if pre else 1.0
    labels = (out.get("shape") or [len(inp.get("labels") or [])])[0]
    source = out.get("kind") in ("probabilities", "logits") and bool(labels) and labels > 1
    return {"scale": scale, "offset": float(pre.get("offset", 0.0)) if pre else 0.0,
            "mean": pre.get("mean"), "std": pre.get("std"), "resize": resize, "shape": want,
            "source": source, "logits": out.get("kind") == "logits",
            "embedding": out.get("kind") == "embedding"}, None


def candidates(market, data, limit=None):
    """``(compatible, skipped)``: the latest version of every model ``market`` shows its caller, each
    compatible one as ``{entry, plan}``, each other as ``{model, reason}``. Base models (use case
    ``base``, then those with no base model of their own) come first; ``limit`` keeps the first that many compatible ones (the rest are skipped, saying so)."""
    entries, offset = [], 0
    while True:
        page = market.search("", sort="name", limit=500, offset=offset)
        entries += page
        if len(page) < 500:
            break
        offset += 500
    compatible, skipped = [], []
    for summary in sorted(entries, key=lambda e: (e.get("use_case") != "base", bool(e.get("base_model")), e["name"])):
        ref = f"{summary['name']}:{summary['version']}"
        if summary.get("deprecated"):
            skipped.append({"model": ref, "reason": "deprecated"})
            continue
        entry = market.show(summary["name"], summary["version"])
        plan, reason = fit(entry.get("metadata"), data)
        if plan is None:
            skipped.append({"model": ref, "reason": reason})
        elif limit is not None and len(compatible) >= limit:
            skipped.append({"model": ref, "reason": f"over --limit {limit}"})
        else:
            compatible.append({"entry": entry, "plan": plan})
    return compatible, skipped


# --- plain words (pure) ---------------------------------------------------------------------------

def reading(row, floor, best):
    """The plain-words reading of one ranked ``row`` from its LogME gap to the ``floor`` row (the
    random network) and the ``best`` row's LogME; the probe accuracies are quoted beside it."""
    if row is floor:
        return "the floor: this architecture with random weights, where training from scratch starts"
    gap = row["logme"] - floor["logme"]
    if gap < 0:
        words = f"LogME below the random network ({gap:+.3f}): expect no gain over training from scratch"
    elif gap < CLOSE:
        words = f"LogME close to the random network ({gap:+.3f}): expect little gain over training from scratch"
    elif row is best:
        words = f"highest LogME, {gap:+.3f} over the random network: the best start of these"
    else:
        words = (f"LogME {gap:+.3f} over the random network, {best['logme'] - row['logme']:.3f} below the best: "
                 f"likely a gain over training from scratch, less than the best")
    acc, floor_acc = row.get("probe_accuracy"), floor.get("probe_accuracy")
    if acc is not None and floor_acc is not None:
        words += f"; linear probe {acc:.2f} vs {floor_acc:.2f} for the random network"
        if (gap >= CLOSE) != (acc > floor_acc):
            words += " (the probe disagrees: check before relying on this rank)"
    return words


def ranked(rows):
    """``rows`` sorted by LogME (best first), numbered, each with its :func:`reading`."""
    rows = sorted(rows, key=lambda r: -r["logme"])
    floor = next(r for r in rows if r["floor"])
    best = next((r for r in rows if not r["floor"]), floor)
    for number, row in enumerate(rows, 1):
        row["rank"] = number
        row["reading"] = reading(row, floor, best)
    return rows


# --- features (worker side) -----------------------------------------------------------------------

_LOADED = {}  # (model file, random seed, shape) -> a Keras model giving [features, probabilities]


def _limit_threads():
    """TensorFlow uses every core by default; a Dask worker gets its own thread count."""
    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started in this process
        pass


def _load(path, plan):
    """``(model, features)``: the model at ``path`` as a functional network, resized as ``plan`` says (a
    Sequential one is rebuilt on an input of the data's shape), and the input of its last layer."""
    import keras

    from ..market import modelfile
    from ..training.transfer import resize_input

    model = modelfile.load(path)
    if isinstance(model, keras.Sequential):
        inputs = keras.Input(tuple(plan["shape"]))
        x = features = inputs
        for layer in model.layers:
            features, x = x, layer(x)
        return keras.Model(inputs, x, name=model.name), features
    model = resize_input(model, plan["shape"]) if plan["resize"] else model
    return model, model.layers[-1].input


def make_floor(path, plan, folder, shards, rule, seed=FLOOR_SEED, samples=FLOOR_SAMPLES):
    """The floor: the model at ``path`` (resized as ``plan`` says) with random weights drawn with ``seed``
    and its BatchNormalization statistics estimated on up to ``samples`` samples of ``shards`` (the
    train split; what training from scratch normalises with: the notebooks' scratch arm re-estimates
    them too, and without it the random network's features vanish). Saved once as a ``.keras`` file in
    ``folder``, so every worker loads the same weights; returns its path."""
    import keras

    from ..pipelines.dataset import decode
    from ..training.batchnorm import reestimate
    from ..training.transfer import from_scratch

    key = json.dumps([file_sha256(path), seed, samples, plan["shape"], [s["sha256"] for s in shards]])
    out = os.path.join(folder, f"floor-{hashlib.sha256(key.encode()).hexdigest()[:24]}.keras")
    if not os.path.isfile(out):
        import zarr

        keras.utils.set_random_seed(seed)
        model = from_scratch(_load(path, plan)[0])
        x, have = [], 0
        for shard in shards:
            if have >= samples:
                break
            x.append(decode(zarr.open_group(shard["path"], mode="r")["x"][:samples - have], rule))
            have += len(x[-1])
        reestimate(model, model_input(np.concatenate(x), plan))
        os.makedirs(folder, exist_ok=True)
        partial = f"{out}.{os.getpid()}.partial.keras"
        model.save(partial)
        os.replace(partial, out)
    return out


def extractor(spec):
    """The model of ``spec`` (``path`` of its ``.keras`` file and the plan) as a network giving its
    features and, with source labels, its probabilities; loaded once per process."""
    key = (spec["path"], tuple(spec["plan"]["shape"]))
    if key not in _LOADED:
        _limit_threads()
        import keras

        plan = spec["plan"]
        model, features = _load(spec["path"], plan)
        features = model.output if plan["embedding"] else features
        outputs = [features, model.output] if plan["source"] else [features]
        _LOADED[key] = keras.Model(model.inputs, outputs, name="ranking_features")
    return _LOADED[key]


def model_input(x, plan):
    """Stored values -> what the model takes: ``x * scale + offset``, then ``(x - mean) / std``."""
    x = np.asarray(x, np.float32) * np.float32(plan["scale"]) + np.float32(plan["offset"])
    if plan.get("mean") is not None:
        x = (x - np.asarray(plan["mean"], np.float32)) / np.asarray(plan.get("std") or 1.0, np.float32)
    return x


def chunk_features(spec, shard, rule):
    """Worker task: ``(features (n, d) float32, probabilities (n, z) or None)`` of one shard."""
    import zarr

    from ..pipelines.dataset import decode

    x = model_input(decode(zarr.open_group(shard, mode="r")["x"][...], rule), spec["plan"])
    n = len(x)
    padded = np.concatenate([x, np.zeros((-n % BATCH, *x.shape[1:]), x.dtype)])  # one traced batch shape
    net = extractor(spec)
    outputs = [net.predict_on_batch(padded[i:i + BATCH]) for i in range(0, len(padded), BATCH)]
    outputs = [o if isinstance(o, (list, tuple)) else [o] for o in outputs]
    features = evaluation.pooled(np.concatenate([np.asarray(o[0]) for o in outputs])[:n]).astype(np.float32)
    if not spec["plan"]["source"]:
        return features, None
    probs = np.concatenate([np.asarray(o[1], np.float64) for o in outputs])[:n]
    if spec["plan"]["logits"]:
        probs = np.exp(probs - probs.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
    return features, probs


# --- scores ---------------------------------------------------------------------------------------

def scores(split_features, split_probs, labels, n_classes):
    """LogME and LEEP on train, and the linear probe (train; val picks L2; test) of one model."""
    train_f, train_y = split_features["train"], labels["train"]
    row = {"logme": transferability.logme(train_f, train_y), "features": int(train_f.shape[1])}
    row["leep"] = transferability.leep(split_probs["train"], train_y) if split_probs.get("train") is not None else None
    held = [s for s in ("val", "test") if s in split_features and len(labels[s])]
    if held:
        val, test = held[0], held[-1]
        probe = evaluation.linear_model((train_f, train_y), (split_features[val], labels[val]),
                                        (split_features[test], labels[test]), n_classes, steps=PROBE_STEPS)
        row.update(probe_accuracy=probe["accuracy"], probe_val_accuracy=probe["val_accuracy"],
                   probe_split=test)
    else:
        row.update(probe_accuracy=None, probe_val_accuracy=None, probe_split=None)
    return row


# --- the driver -----------------------------------------------------------------------------------

def cache_dir():
    """Where pulled candidate models are kept between rankings."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "deepvre", "ranking")


def pull(market, entry, root):
    """The checked ``model.keras`` of ``entry`` under ``root`` (pulled unless already there, unchanged)."""
    dest = os.path.join(root, quote(entry["name"], safe=""), quote(entry["version"], safe=""))
    path = os.path.join(dest, "model.keras")
    want = (entry.get("files") or {}).get("model.keras", {}).get("sha256")
    if not (want and os.path.isfile(path) and file_sha256(path) == want):
        market.pull(entry["name"], entry["version"], dest, overwrite=True)
    return path


def _floor(compatible):
    """The candidate whose architecture the floor copies: the first base model (:func:`candidates`' order)."""
    return compatible[0]


def rank(data, market=None, cluster="local", client=None, in_process=False, settings=None, slurm=None,
         n_workers=None, limit=None, progress=None, models_dir=None):
    """Rank every compatible model ``market`` (default :func:`~deepvre.market.client.connect`) shows
    its caller on the pipeline output ``data``; see the module docstring. ``client`` reuses an open
    Dask client; else ``cluster``/``settings``/``slurm``/``n_workers`` open one as ``deepvre
    preprocess`` does; ``in_process`` computes the features here, without Dask (the benchmark's
    baseline). ``progress(stage, done, total)`` is called as work completes.

    Returns ``{data, models: [rows, best first], skipped: [{model, reason}], basis, seconds}``."""
    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    report("reading the data set", 0, 1)
    described = describe_data(data)
    if market is None:
        from ..market.client import connect

        market = connect()
    report("checking the catalog", 0, 1)
    compatible, skipped = candidates(market, described, limit)
    if not compatible:
        raise NoCompatibleModel(
            f"no model you can see takes this data ({described['input_kind']} samples of shape "
            f"{list(described['shape'])}): " + ("; ".join(f"{s['model']}: {s['reason']}" for s in skipped)
                                                or "the catalog is empty"), skipped)
    root = models_dir or cache_dir()
    specs = []
    for number, c in enumerate(compatible):
        report("pulling models", number, len(compatible))
        entry = c["entry"]
        specs.append({"path": pull(market, entry, root), "plan": c["plan"],
                      "row": {"model": f"{entry['name']}:{entry['version']}", "name": entry["name"],
                              "version": entry["version"], "title": entry.get("title", ""),
                              "owner": entry.get("owner"), "floor": False,
                              "resized": c["plan"]["resize"]}})
    base_spec = specs[compatible.index(_floor(compatible))]
    # drawn by _score_all where the features are computed: {"floor": make_floor's arguments}
    specs.append({"path": None, "floor": (base_spec["path"], base_spec["plan"], os.path.join(root, "floors"),
                                             described["splits"]["train"], described["decode"]),
                  "plan": {**base_spec["plan"], "resize": False},
                  "row": {**base_spec["row"], "model": f"random:{base_spec['row']['model']}",
                          "title": f"{base_spec['row']['title']} with random weights (the floor)", "owner": None,
                          "floor": True}})
    jobs = [(i, split, shard) for i in range(len(specs)) for split, shards in described["splits"].items()
            for shard in shards]
    scored = _score_all(jobs, specs, described, report, client, cluster, in_process, settings, slurm, n_workers)
    rows = []
    for spec, (row, error) in zip(specs, scored):
        if error is None:
            rows.append({**spec["row"], **row})
        elif spec["row"]["floor"]:
            raise RuntimeError(f"the random floor ({spec['row']['model']}) failed: {error}")
        else:  # e.g. a network whose weights depend on the image size
            skipped.append({"model": spec["row"]["model"], "reason": f"its features could not be computed: {error}"})
    if len(rows) < 2:
        raise NoCompatibleModel("no model's features could be computed: "
                                + "; ".join(f"{s['model']}: {s['reason']}" for s in skipped), skipped)
    report("done", 1, 1)
    summary = {k: described[k] for k in ("path", "pipeline", "input_kind", "classes", "n_classes", "samples")}
    summary.update(shape=list(described["shape"]),
                   splits={s: int(len(v)) for s, v in described["labels"].items()})
    return {"data": summary, "models": ranked(rows), "skipped": skipped, "basis": BASIS,
            "seconds": round(time.perf_counter() - started, 2)}


def model_scores(chunks, splits, source, labels, n_classes):
    """:func:`scores` of one model from its :func:`chunk_features` outputs ``chunks``, each of the split
    named at the same place in ``splits`` (a task of its own on Dask, beside the features)."""
    feats = {s: np.concatenate([c[0] for c, cs in zip(chunks, splits) if cs == s]) for s in labels}
    probs = {s: np.concatenate([c[1] for c, cs in zip(chunks, splits) if cs == s]) if source else None
             for s in labels}
    return scores(feats, probs, labels, n_classes)


def _score_all(jobs, specs, data, report, client, cluster, in_process, settings, slurm, n_workers):
    """``(scores, None)`` or ``(None, error text)`` of each spec (:func:`model_scores`): its features one
    task per ``(spec index, split, shard)`` job, then its scores, here (``in_process``) or on Dask."""
    total = len(jobs) + len(specs)
    clean = [{"path": spec["path"], "plan": spec["plan"]} for spec in specs]
    floors = [(i, spec["floor"]) for i, spec in enumerate(specs) if spec.get("floor")]
    mine = [[n for n, job in enumerate(jobs) if job[0] == i] for i in range(len(specs))]
    args = (data["labels"], data["n_classes"])
    if in_process:
        for i, floor in floors:
            report("drawing the random floor", 0, total)
            clean[i]["path"] = make_floor(*floor)
        rows, done = [], 0
        for i, numbers in enumerate(mine):
            try:
                outputs = []
                for n in numbers:
                    report("features", done, total)
                    outputs.append(chunk_features(clean[i], jobs[n][2]["path"], data["decode"]))
                    done += 1
                report("scoring", done, total)
                rows.append((model_scores(outputs, [jobs[n][1] for n in numbers], clean[i]["plan"]["source"], *args),
                             None))
            except Exception as err:  # noqa: BLE001 - one model's failure is that model's, said in the answer
                rows.append((None, f"{type(err).__name__}: {err}"))
            done = sum(len(m) for m in mine[:i + 1]) + i + 1
        return rows
    if client is None:
        from ..pipelines.clusters import open_client

        with open_client(cluster, settings=settings, n_workers=n_workers, slurm=slurm) as (opened, _link):
            return _score_all(jobs, specs, data, report, opened, cluster, False, settings, slurm, n_workers)
    from distributed import as_completed

    token = os.urandom(4).hex()
    for i, floor in floors:  # once, on a worker: every worker then loads the same random weights
        report("drawing the random floor", 0, total)
        clean[i]["path"] = client.submit(make_floor, *floor, pure=False, key=f"deepvre-rank-floor-{token}").result()
    futures = [client.submit(chunk_features, clean[i], shard["path"], data["decode"], pure=False, retries=1,
                             key=f"deepvre-rank-features-{i}-{n:05d}-{token}")
               for n, (i, _, shard) in enumerate(jobs)]
    scoring = [client.submit(model_scores, [futures[n] for n in numbers], [jobs[n][1] for n in numbers],
                             clean[i]["plan"]["source"], *args, pure=False,
                             key=f"deepvre-rank-scores-{i}-{token}")
               for i, numbers in enumerate(mine)]
    report("features", 0, total)
    for done, _future in enumerate(as_completed(futures + scoring), 1):
        report("features" if done < len(jobs) else "scoring", done, total)
    return [(f.result(), None) if f.status == "finished" else (None, f"{type(f.exception()).__name__}: {f.exception()}")
            for f in scoring]


def as_json(result):
    """``result`` of :func:`rank` with plain JSON types (numpy floats become floats)."""
    return json.loads(json.dumps(result, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
