"""Does the ranking predict fine-tuning? The study of issue 18, item 2 (``deepvre results rank-validation``).

Per use case (biology, satellite):

1. the case's data is built as its notebook builds it (same pipeline, same parameters, the notebook's
   grouped split of its first seed, checked for leakage) and written as a pipeline output whose
   train/val/test splits ARE that split (:func:`regroup`), so the ranking and the fine-tuning see the
   same samples in the same splits;
2. the candidates are the catalog's ImageNet MobileNetV2, its random floor (``ranking``'s own), and the
   project's own models from the OTHER case (its ImageNet model fine-tuned there, and the network the
   other case trained from scratch), published into a catalog of this case's own (no case ranks a model
   trained on its own data);
3. ``ranking.rank`` scores every candidate (LogME, LEEP, the linear probe);
4. every candidate is fine-tuned with the notebooks' recipe (new head on the candidate's convolutional
   base, its top layers trained, BatchNorm statistics re-estimated; the floor is the notebook's scratch
   arm) on the same split over several seeds, and its test score is the mean with its Student-t
   interval (``evaluation.mean_ci``);
5. Spearman's rho between each estimator's scores and the fine-tuned means, with the bootstrap interval
   over candidates (``rank_validation.validate``).

The lattice and security cases are not covered: their data are not class-labelled images that the
ranking scores today (see :data:`NOT_COVERED`).

Nothing here writes the page; :func:`section` (pure) builds it from the study.
"""

import json
import os
import time

import numpy as np

from . import evaluation, rank_validation, ranking

CASES = ("biology", "satellite")
OTHER = {"biology": "satellite", "satellite": "biology"}
ESTIMATORS = (("logme", "LogME"), ("leep", "LEEP"), ("probe_accuracy", "linear probe"))
IMAGENET = "mobilenet-v2-imagenet:1.0.0"
FLOOR = f"random:{IMAGENET}"
SEED = 0  # the notebooks' first seed: its grouped split is the study's split
MODES = {
    # the notebooks' full settings; one learning rate (the notebooks' default) instead of their search
    "full": {"seeds": 3, "learning_rate": 1e-3, "fine_tune_layers": 20, "batch_size": 32, "batchnorm_momentum": 0.9,
             "biology": {"per_class": 60, "image_size": 96, "epochs": 8},
             "satellite": {"tile": 16, "input_size": 48, "epochs": 4, "max_tiles": 0}},
    # CI: tiny data, two seeds, one epoch
    "tiny": {"seeds": 2, "learning_rate": 1e-3, "fine_tune_layers": 20, "batch_size": 32, "batchnorm_momentum": 0.9,
             "biology": {"per_class": 8, "image_size": 32, "epochs": 1},
             "satellite": {"tile": 16, "input_size": 32, "epochs": 1, "max_tiles": 240}},
}
NOT_COVERED = {
    "lattice-qcd": "its targets are continuous (beta, the flowed energy) and its inputs U(1) link angles, not "
                   "images: the ranking needs one class label per sample (ranking.describe_data refuses "
                   "regression targets) and the catalog holds no other base of the lattice CNN's kind",
    "security": "its LSTM forecasts the next 5-minute window of flow features (a regression on sequences, "
                "scored as anomaly detection): the ranking needs class labels, and the only base of that kind "
                "is the security notebook's own, pretrained on centre A",
}


# --- the data -------------------------------------------------------------------------------------

def regroup(source, dest, keep, names, labels, classes):
    """Write ``dest``: the pipeline output ``source``'s single split, samples ``keep`` (in order), as a
    pipeline output whose splits are ``names`` (one per kept sample) and whose ``y`` is ``labels`` (class
    indices; ``classes`` their names). Stored values, dtype and decode rule are the source's; the
    manifest (sha256 per shard) is the pipeline's own format, so ``ranking.describe_data`` checks it."""
    import zarr

    from ..pipelines import manifest as mf
    from ..pipelines.dataset import shard_paths

    original = mf.read_manifest(source)
    x = np.concatenate([zarr.open_group(p, mode="r")["x"][...] for p in shard_paths(source, "train")])[keep]
    names, labels = np.asarray(names), np.asarray(labels, np.int64)
    if not (len(x) == len(names) == len(labels)):
        raise ValueError(f"{len(x)} samples, {len(names)} split names, {len(labels)} labels")
    mf.prepare_output(dest, original["kind"], overwrite=True)
    records = []
    for split in evaluation.SPLITS:
        idx = np.flatnonzero(names == split)
        counts = {c: int(n) for c, n in enumerate(np.bincount(labels[idx], minlength=len(classes)))}
        records.append(mf.write_shard(dest, split, 0, f"regrouped:{split}", {"x": x[idx], "y": labels[idx]},
                                      counts, []))
    summary = {**(original.get("summary") or {}), "classes": list(classes),
               "grouped_split": "the notebook's grouped split of its first seed (deepvre.science.rank_study)"}
    mf.write_manifest(dest, mf.build_manifest(original["kind"], original.get("input", ""), original.get("params"),
                                              summary, records, decode=original.get("decode")))
    return dest


def _splits(output):
    from ..pipelines.dataset import open_split

    return {split: open_split(output, split) for split in evaluation.SPLITS}


def biology_data(folder, p, cluster="local", n_workers=2):
    """The biology notebook's crops, pipeline and grouped split (seed :data:`SEED`) as a case."""
    from ..pipelines.dataset import open_split
    from ..pipelines.manifest import read_manifest
    from ..pipelines.run import preprocess
    from . import biology_crops

    crops, records = biology_crops.cut(per_class=p["per_class"], seed=SEED)
    evaluation.check_no_leakage(biology_crops.split_for_seed(records, SEED), [r["group"] for r in records],
                                [[r["source"], *r["window"]] for r in records])
    raw, prepared = os.path.join(folder, "crops"), os.path.join(folder, "pipeline")
    if not os.path.isdir(raw):
        biology_crops.write_class_folders(raw, crops, records)
    size = p["image_size"]
    preprocess("images", raw, prepared, {"size": size, "seed": SEED, "split": (1.0, 0.0, 0.0)},
               cluster=cluster, n_workers=n_workers, progress=False)
    folders = read_manifest(prepared)["summary"]["classes"]
    parsed = [biology_crops.parse_folder(f) for f in folders]
    classes = sorted({c for c, _ in parsed})
    y_folder = open_split(prepared, "train", arrays=("y",))
    labels = np.array([classes.index(parsed[k][0]) for k in y_folder])
    groups = [parsed[k][1] for k in y_folder]
    names = biology_crops.split_for_seed(groups, SEED)
    evaluation.check_no_leakage(names, groups)
    data = regroup(prepared, os.path.join(folder, "data"), np.arange(len(labels)), names, labels, classes)
    return {"key": "biology", "data": data, "classes": classes, "splits": _splits(data), "groups": len(set(groups)),
            "net_size": (size, size, 3), "input_shape": None, "metric": "test accuracy", "balanced": False,
            "epochs": p["epochs"],
            "note": f"{len(labels)} crops of {size} px in {len(set(groups))} spatial blocks, {len(classes)} classes"}


def satellite_data(folder, p, cluster="local", n_workers=2):
    """The satellite notebook's tiles, night-light classes and block split (seed :data:`SEED`) as a case."""
    from ..pipelines.dataset import open_split
    from ..pipelines.run import preprocess
    from ..training import shipped
    from . import satellite_tiles

    day, night = shipped.earth_scenes()
    tile, bins = p["tile"], (0.5, 4.0)  # the notebook's light_bins
    prepared = os.path.join(folder, "pipeline")
    result = preprocess("rasters", day, prepared, {"tile": tile, "labels": night, "label_mode": "mean",
                                                   "split": (1.0, 0.0, 0.0)},
                        cluster=cluster, n_workers=n_workers, progress=False)
    x_grid, lights, origins = open_split(prepared, "train", arrays=("x", "y", "origin"))
    keep = np.flatnonzero(satellite_tiles.select(x_grid, origins, tile, result.manifest["summary"]["size"][0], 60.0))
    if p["max_tiles"] and p["max_tiles"] < len(keep):
        keep = np.sort(np.random.default_rng(SEED).permutation(keep)[:p["max_tiles"]])
    labels = satellite_tiles.classes_of(lights[keep], bins)
    groups = satellite_tiles.block_groups(origins[keep], tile, 4)
    names = satellite_tiles.split_for_seed(groups, SEED)
    evaluation.check_no_leakage(names, groups, satellite_tiles.windows(origins[keep], tile))
    data = regroup(prepared, os.path.join(folder, "data"), keep, names, labels, ["dark", "dim", "bright"])
    size = p["input_size"]
    return {"key": "satellite", "data": data, "classes": ["dark", "dim", "bright"], "splits": _splits(data),
            "groups": len(set(groups)), "net_size": (size, size, 3), "input_shape": (tile, tile, 3),
            "metric": "test balanced accuracy", "balanced": True, "epochs": p["epochs"],
            "note": f"{len(keep)} land tiles of {tile} px seen at {size} px in {len(set(groups))} blocks of 4x4 "
                    f"tiles, 3 night-light classes"}


# --- fine-tuning ----------------------------------------------------------------------------------

def base_of(model):
    """The convolutional base inside a model the notebooks published (``transfer.classifier``: the one
    nested model), or the ImageNet network's features up to ``out_relu``."""
    from ..training import transfer

    nested = [layer for layer in model.layers if hasattr(layer, "layers")]
    if len(nested) == 1:
        return nested[0]
    return transfer.feature_extractor(model, "out_relu")


def network(case, base, p, seed, scratch=False):
    """The notebooks' network for ``case``: ``base`` (weights copied) resized to the case's size, the
    input scaled to pixels (and resized for satellite tiles), a new head, the top
    ``fine_tune_layers`` of the base trained; ``scratch``: the same, every weight fresh and trained."""
    import keras

    from ..training import batchnorm, transfer

    keras.utils.set_random_seed(seed)
    base = transfer.resize_input(base, case["net_size"])
    fresh = keras.models.clone_model(base)
    fresh.set_weights(base.get_weights())
    model = transfer.classifier(fresh, len(case["classes"]), input_scale=255.0, input_shape=case["input_shape"])
    transfer.set_trainable(fresh, p["fine_tune_layers"])
    if scratch:
        model = transfer.from_scratch(model, name="scratch")
    batchnorm.set_momentum(model, p["batchnorm_momentum"])
    return model


def score(case, model, split):
    """The case's metric (accuracy, or balanced accuracy for satellite) of ``model`` on ``split``."""
    from ..training.report import balanced_accuracy

    x, y = case["splits"][split]
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    if case["balanced"]:
        return balanced_accuracy(y, predicted, len(case["classes"]))
    return evaluation.accuracy_score(y, predicted)


def fine_tune(case, base, p, seed, scratch=False, compiled=None):
    """Train one candidate on seed ``seed``: ``(model, {test, val, seconds})``.

    ``compiled`` (a dict kept per case) holds one compiled network per arm, as in the notebooks: every
    candidate has the same architecture, so a later run sets its fresh weights and zeroes the optimizer
    instead of tracing the network again."""
    import keras

    from ..training import batchnorm

    fresh = network(case, base, p, seed, scratch)
    arm = "scratch" if scratch else "transfer"
    compiled = {} if compiled is None else compiled
    if arm not in compiled:
        fresh.compile(keras.optimizers.Adam(p["learning_rate"]), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        compiled[arm] = fresh
    model = compiled[arm]
    if model is not fresh:
        model.set_weights(fresh.get_weights())
        for variable in model.optimizer.variables:  # Adam's moments and step count start from zero
            variable.assign(np.zeros(variable.shape, variable.dtype))
        model.optimizer.learning_rate = p["learning_rate"]  # a variable too: zeroed above
    (x, y), val = case["splits"]["train"], case["splits"]["val"]
    weights = None
    if case["balanced"]:  # the satellite notebook weights classes by their inverse frequency
        counts = np.bincount(y, minlength=len(case["classes"]))
        weights = {c: len(y) / (len(case["classes"]) * n) for c, n in enumerate(counts) if n}
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    model.fit(x, y, validation_data=val, epochs=case["epochs"], batch_size=p["batch_size"], class_weight=weights,
              verbose=0)
    batchnorm.reestimate(model, x)
    seconds = time.perf_counter() - started
    return model, {"test": score(case, model, "test"), "val": score(case, model, "val"), "seconds": seconds}


def publish(market, model, folder, name, case, title, base):
    """Publish ``model`` (trained on ``case``) into ``market`` as ``name`` 1.0.0, a notebook model's
    document (input: the stored tile or crop in 0..1, preprocessing scale 1/255, the case's labels)."""
    from ..training.documents import model_document

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.keras")
    model.save(path)
    shape = list(case["input_shape"] or case["net_size"])
    document = model_document(name, "1.0.0", case["key"], title, f"{title} (rank-validation study)", shape,
                              "probabilities", labels=case["classes"], base=base, visibility="public",
                              input_extra={"kind": "image", "preprocessing": {"scale": 1 / 255, "offset": 0.0}})
    return market.publish(document, {"model.keras": path}, visibility="public")


# --- the study ------------------------------------------------------------------------------------

def _catalog(folder, mobilenet_dir):
    from ..market.catalog import Catalog
    from ..market.client import LocalMarket
    from . import base_models

    os.makedirs(folder, exist_ok=True)
    market = LocalMarket(Catalog(database_url=f"sqlite:///{os.path.join(folder, 'catalog.sqlite')}",
                                 store_url=os.path.join(folder, "artifacts")))
    base_models.publish_mobilenet(mobilenet_dir, market)
    return market


def run(folder, mode="full", cases=CASES, cluster="local", n_workers=2, in_process=False, log=print,
        mobilenet_dir=None, publish_own=True):
    """The whole study in ``folder`` (data, catalogs, models); returns the study document
    (:func:`section` writes it as Markdown). ``in_process``: the ranking's features without Dask;
    ``mobilenet_dir``: a converted ImageNet MobileNetV2 (default: the user's cached conversion);
    ``publish_own=False``: each case's catalog in ``folder`` already holds the other case's models (an
    earlier run of the same folder published them), so every candidate is fine-tuned here, seed by seed."""

    from ..market import modelfile
    from . import mobilenet

    p = MODES[mode]
    seeds = list(range(SEED, SEED + p["seeds"]))
    started, load = time.monotonic(), os.getloadavg()
    builders = {"biology": biology_data, "satellite": satellite_data}
    data, markets, runs, compiled = {}, {}, {}, {}
    mobilenet_dir = mobilenet.convert(mobilenet_dir)  # reused when already converted and verified
    imagenet = modelfile.load(os.path.join(mobilenet_dir, "model.keras"))
    imagenet_base = base_of(imagenet)
    for key in cases:
        log(f"{key}: building the data as the notebook does")
        data[key] = builders[key](os.path.join(folder, key), {**p[key]}, cluster, n_workers)
        compiled[key] = {}
        markets[key] = _catalog(os.path.join(folder, key, "catalog"), mobilenet_dir)
    # the project's own models: each case's ImageNet fine-tune and scratch network of the first seed,
    # published for the OTHER case to rank and start from
    for key in cases:
        case, runs[key] = data[key], {}
        for name, scratch in ((IMAGENET, False), (FLOOR, True)) if publish_own else ():
            model, numbers = fine_tune(case, imagenet_base, p, seeds[0], scratch, compiled[key])
            log(f"{key}: {name} seed {seeds[0]}: {case['metric']} {numbers['test']:.3f} ({numbers['seconds']:.0f} s)")
            runs[key][name] = [numbers]
            if OTHER[key] in markets:
                own = f"{key}-mobilenet" if not scratch else f"{key}-scratch"
                title = (f"MobileNetV2 fine-tuned on {key} from ImageNet" if not scratch
                         else f"MobileNetV2 trained on {key} from scratch")
                publish(markets[OTHER[key]], model, os.path.join(folder, key, "published", own), own, case, title,
                        ("mobilenet-v2-imagenet", "1.0.0") if not scratch else None)
    study = {"mode": mode, "seeds": seeds, "settings": {k: v for k, v in p.items() if k not in CASES},
             "cases": {}, "load": list(load)}
    for key in cases:
        case = data[key]
        log(f"{key}: ranking the catalog's models on the data")
        ranked = ranking.rank(case["data"], market=markets[key], cluster=cluster, n_workers=n_workers,
                              in_process=in_process, models_dir=os.path.join(folder, key, "ranking-models"))
        for row in ranked["models"]:
            name = row["model"]
            if name in (IMAGENET, FLOOR):
                base, scratch = imagenet_base, name == FLOOR
            else:
                base, scratch = base_of(modelfile.load(ranking.pull(markets[key], markets[key].show(
                    *name.split(":")), os.path.join(folder, key, "ranking-models")))), False
            done = runs[key].setdefault(name, [])
            for seed in seeds[len(done):]:
                _, numbers = fine_tune(case, base, p, seed, scratch, compiled[key])
                log(f"{key}: {name} seed {seed}: {case['metric']} {numbers['test']:.3f} ({numbers['seconds']:.0f} s)")
                done.append(numbers)
        compiled.pop(key)
        candidates = []
        for row in ranked["models"]:
            tests = [r["test"] for r in runs[key][row["model"]]]
            candidates.append({"model": row["model"], "title": row["title"], "floor": row["floor"],
                               **{e: row.get(e) for e, _ in ESTIMATORS},
                               "accuracy": evaluation.mean_ci(tests), "per_seed": tests,
                               "val": [r["val"] for r in runs[key][row["model"]]],
                               "seconds": [r["seconds"] for r in runs[key][row["model"]]]})
        means = {c["model"]: c["accuracy"]["mean"] for c in candidates}
        validations = {}
        for estimator, _ in ESTIMATORS:
            rows = rank_validation.candidates_from(ranked, means, estimator)
            if len(rows) >= rank_validation.MIN_CANDIDATES:
                validations[estimator] = rank_validation.validate({key: rows})["cases"][key]
            else:
                validations[estimator] = None
        study["cases"][key] = {"metric": case["metric"], "note": case["note"], "candidates": candidates,
                               "validation": validations, "ranking_seconds": ranked["seconds"],
                               "skipped": ranked["skipped"], "splits": ranked["data"]["splits"]}
    study["wall_s"] = time.monotonic() - started
    return study


# --- the page (pure) ------------------------------------------------------------------------------

def _number(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def verdict(key, case):
    """One plain sentence per case: whether LogME's order held, and where it broke."""
    v = case["validation"].get("logme")
    if v is None:
        words = (f"{key}: NOT VALIDATED: only {len(case['candidates'])} candidates could be scored, fewer than the "
                 f"{rank_validation.MIN_CANDIDATES} a rank correlation needs")
        if case.get("skipped"):
            words += "; the ranking skipped " + "; ".join(f"{s['model']} ({s['reason']})" for s in case["skipped"])
        return words + "."
    by_score = sorted(case["candidates"], key=lambda c: -(c["logme"] if c["logme"] is not None else -np.inf))
    by_accuracy = sorted(case["candidates"], key=lambda c: -c["accuracy"]["mean"])
    words = (f"{key}: LogME's rho is {v['rho']:+.2f}, 95 % bootstrap interval {v['low']:+.2f} to {v['high']:+.2f} "
             f"over {v['n']} candidates. ")
    if v["fails"]:
        words += "It FAILS (the interval does not lie above zero)"
        swapped = [(a["model"], b["model"]) for i, a in enumerate(by_score) for b in by_score[i + 1:]
                   if a["accuracy"]["high"] < b["accuracy"]["low"]]
        if swapped:
            words += "; pairs ranked the wrong way round with separated accuracy intervals: " + ", ".join(
                f"{a} above {b}" for a, b in swapped)
        words += "."
    else:
        words += "It holds: the interval lies above zero."
    if by_score[0]["model"] != by_accuracy[0]["model"]:
        words += (f" Its top pick, {by_score[0]['model']}, is not the best start after fine-tuning "
                  f"({by_accuracy[0]['model']}).")
    else:
        words += f" Its top pick, {by_score[0]['model']}, is also the best start after fine-tuning."
    return words


def section(study, info, figures=(), smoke=False):
    """The page's section (between ``deepvre results``' markers, key ``rank-validation``).

    ``info``: ``{"id", "commit", "date", "command", "record"}`` (record: the study's JSON, relative to
    the page); ``figures``: paths relative to the page."""
    minutes, seconds = divmod(int(round(study["wall_s"])), 60)
    load = " / ".join(f"{v:.1f}" for v in study["load"])
    s = study["settings"]
    out = ["<!-- results:rank-validation (written by `deepvre results rank-validation`) -->",
           "## Does the ranking predict fine-tuning? (issue 18, `deepvre market rank`)", ""]
    if smoke:
        out += ["**Smoke mode: tiny data, two seeds, one epoch; these numbers mean nothing.**", ""]
    out += [f"Study `{info['id']}` of commit `{info['commit']}` on {info['date']}, {minutes} min {seconds:02d} s "
            f"wall (load average {load} at the start), reproduced by:", "", f"    {info['command']}", "",
            f"Every number below, and each seed's, is in [{os.path.basename(info['record'])}]({info['record']}).", ""]
    if study.get("note"):
        out += [study["note"], ""]
    out += [
            "Per use case, the data is built by its notebook's pipeline with the notebook's grouped split of its "
            "first seed (no block in two splits), written as one pipeline output whose train/val/test splits "
            "are that split. `deepvre market rank` scores every candidate (features computed in process: the "
            "same numbers as on Dask, `tests/science/test_ranking.py`) in a catalog holding the ImageNet "
            "MobileNetV2 and the project's own models of the *other* use case (its ImageNet model fine-tuned "
            "there, and the network it trained from scratch); the random floor is the ranking's own. Each "
            "candidate is then fine-tuned on the same split as the notebooks do (a new head on its "
            f"convolutional base, the top {s['fine_tune_layers']} layers trained, Adam at {s['learning_rate']:g}, "
            f"batch {s['batch_size']}, BatchNorm statistics re-estimated; the floor is the notebooks' scratch "
            f"arm, every weight trained) over seeds {study['seeds'][0]}-{study['seeds'][-1]} "
            f"({len(study['seeds'])} seeds: the fewest that give a spread, since the whole study must run in "
            f"an hour on two shared cores; the seed changes the initialisation of the head, the batch order and "
            f"dropout, not the split). One learning rate for every candidate instead of the notebooks' search "
            f"over three (which would triple the cost). Spearman's rho is taken between each estimator's scores "
            f"and the candidates' mean fine-tuned score, with a 95 % percentile-bootstrap interval over "
            f"candidates (`deepvre.science.rank_validation`); a case fails when that interval does not lie above "
            f"zero. With four candidates that interval is coarse: the resamples only repeat the same four points, "
            f"so a perfect order gives +1 to +1 and a single swapped pair can reach below zero.", ""]
    for key, case in study["cases"].items():
        out += [f"### {key}", "", f"{case['note']}; splits {case['splits']}; ranking took "
                f"{case['ranking_seconds']:.0f} s.", "",
                f"| candidate | LogME | LEEP | linear probe | fine-tuned {case['metric']}, mean ± 95 % CI | per seed |",
                "|---|---|---|---|---|---|"]
        for c in sorted(case["candidates"], key=lambda c: -c["logme"]):
            a = c["accuracy"]
            out.append(f"| {c['model']}{' (floor)' if c['floor'] else ''} | {_number(c['logme'])} | "
                       f"{_number(c['leep'])} | {_number(c['probe_accuracy'])} | {a['mean']:.3f} ± "
                       f"{a['half_width']:.3f} | {' '.join(f'{v:.3f}' for v in c['per_seed'])} |")
        out += ["", "| estimator | Spearman's rho | 95 % bootstrap interval | candidates | fails |", "|---|---|---|---|---|"]
        for estimator, label in ESTIMATORS:
            v = case["validation"].get(estimator)
            if v is None:
                out.append(f"| {label} | - | - | - | not computed (fewer than {rank_validation.MIN_CANDIDATES} "
                           f"candidates with this score) |")
            else:
                out.append(f"| {label} | {v['rho']:+.2f} | {v['low']:+.2f} to {v['high']:+.2f} | {v['n']} | "
                           f"{'yes' if v['fails'] else 'no'} |")
        out += ["", f"**Verdict:** {verdict(key, case)}", ""]
    out += ["### Not covered", ""]
    out += [f"- **{key}**: {why}." for key, why in NOT_COVERED.items()]
    out.append("")
    for path in figures:
        out += [f"![score against fine-tuned accuracy]({path})", ""]
    out.append("<!-- /results:rank-validation -->")
    return "\n".join(out) + "\n"


def figure(study, path):
    """Each estimator's score against the fine-tuned score (mean with its 95 % interval), one row of
    panels per case, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(study["cases"].items())
    fig, axes = plt.subplots(len(cases), len(ESTIMATORS), figsize=(4 * len(ESTIMATORS), 3.4 * len(cases)),
                             squeeze=False)
    for row, (key, case) in zip(axes, cases):
        for ax, (estimator, label) in zip(row, ESTIMATORS):
            shown = [c for c in case["candidates"] if c[estimator] is not None]
            for c in shown:
                a = c["accuracy"]
                ax.errorbar(c[estimator], a["mean"], yerr=a["half_width"], fmt="o", capsize=4,
                            color="#c44" if c["floor"] else "#36a")
                ax.annotate(c["model"].split(":")[0] if not c["floor"] else "random floor",
                            (c[estimator], a["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
            v = case["validation"].get(estimator)
            title = f"{key}: {label}" + (f", rho {v['rho']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}]" if v else "")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(label)
            ax.set_ylabel(f"fine-tuned {case['metric']}")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def as_json(study):
    """``study`` with plain JSON types."""
    return json.loads(json.dumps(study, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
