"""Shards on disk and the manifest that describes them.

Layout of an output folder::

    OUTPUT/.deepvre-preprocess.json    marker: this folder is a deepvre output (kind)
    OUTPUT/manifest.json               counts, shapes, sha256 per shard, parameters, bad records
    OUTPUT/<split>/shard-00000.zarr/   one Zarr group per shard: arrays ``x`` and ``y`` (and extras)
    OUTPUT/<split>/shard-00000.json    the shard's record, written after the shard is complete

A shard is written to ``*.partial`` and renamed when complete, then its record.
A re-run skips a shard whose record names the same task key and whose sha256 still
matches the files; anything else (missing record, changed files, other parameters)
is redone. Nothing here holds a time stamp, so a resumed run's output is byte-identical
to a clean one.

Version 2 adds ``decode``: how readers turn a stored array into what a model sees, e.g.
rasters keep tiles in the scene's dtype (uint8: a quarter of float32's bytes) with
``{"x": {"dtype": "float32", "divide_by": 255.0}}``; ``deepvre.pipelines.dataset`` applies it.
"""

import hashlib
import json
import os
import shutil

from deepvre import atomic
from deepvre.errors import Invalid

MARKER = ".deepvre-preprocess.json"
MANIFEST = "manifest.json"
FORMAT = "deepvre-preprocess"
VERSION = 2


class OutputError(Invalid):
    """The output folder cannot be used (holds other files, or overlaps the input)."""


def tree_sha256(path):
    """sha256 over a file or a folder (sorted relative paths and contents)."""
    digest = hashlib.sha256()
    if os.path.isfile(path):
        files = [("", path)]
    else:
        files = []
        for root, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(root, name)
                files.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
    for rel, full in sorted(files):
        digest.update(rel.encode() + b"\0")
        with open(full, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _content(value):
    """JSON stand-in for arrays and frames in task arguments: their content hash."""
    if hasattr(value, "to_numpy") and hasattr(value, "columns"):  # a pandas DataFrame
        import pandas as pd

        return {"frame": list(map(str, value.columns)),
                "sha256": hashlib.sha256(pd.util.hash_pandas_object(value).to_numpy().tobytes()).hexdigest()}
    if hasattr(value, "tobytes"):  # a numpy array
        return {"array": list(value.shape), "sha256": hashlib.sha256(value.tobytes()).hexdigest()}
    return str(value)


def task_key(func, args, params):
    """A stable id for what a shard is made from: function, its arguments, parameters."""
    blob = json.dumps(
        {"func": f"{func.__module__}:{func.__qualname__}", "args": args, "params": params, "version": VERSION},
        sort_keys=True,
        default=_content,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def shard_paths(output, split, index):
    base = os.path.join(output, split, f"shard-{index:05d}")
    return base + ".zarr", base + ".json"


def _write_json(path, data):
    atomic.write_json(path, data, indent=1, sort_keys=True)


def read_record(output, split, index, key):
    """The record of a complete, verified shard made from ``key``; else None."""
    data_path, record_path = shard_paths(output, split, index)
    try:
        with open(record_path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if record.get("key") != key or not os.path.isdir(data_path):
        return None
    if tree_sha256(data_path) != record.get("sha256"):
        return None
    return record


def single_thread_codecs():
    """Run zarr's codecs (compression) in one thread, so a shard writer uses one core.

    zarr 3 compresses chunks in its own thread pool (``threading.max_workers``, default: one
    thread per core). A Dask worker with one thread, or a plain loop, then uses more than the
    core it was given and competes with the other workers. A limit the site already set
    (``zarr.config`` or ``ZARR_THREADING__MAX_WORKERS``) is kept.
    """
    import zarr

    if zarr.config.get("threading.max_workers") is None:
        zarr.config.set({"threading.max_workers": 1})


def write_shard(output, split, index, key, arrays, counts, bad, chunk=64):
    """Write ``arrays`` (name -> numpy array, same length) as a Zarr shard; return its record."""
    import zarr

    single_thread_codecs()

    data_path, record_path = shard_paths(output, split, index)
    tmp = data_path + ".partial"
    for stale in (record_path, data_path, tmp):
        if os.path.isdir(stale):
            shutil.rmtree(stale)
        elif os.path.exists(stale):
            os.remove(stale)
    os.makedirs(os.path.dirname(data_path), exist_ok=True)
    group = zarr.open_group(tmp, mode="w", zarr_format=3)
    shapes = {}
    for name, array in sorted(arrays.items()):
        chunks = (max(1, min(chunk, len(array))),) + tuple(array.shape[1:])
        chunks = tuple(max(1, c) for c in chunks)
        group.create_array(name, data=array, chunks=chunks)
        shapes[name] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    os.replace(tmp, data_path)
    lengths = {len(a) for a in arrays.values()}
    record = {
        "split": split,
        "index": index,
        "path": os.path.relpath(data_path, output).replace(os.sep, "/"),
        "key": key,
        "sha256": tree_sha256(data_path),
        "n": lengths.pop() if len(lengths) == 1 else None,
        "arrays": shapes,
        "counts": {str(k): int(v) for k, v in sorted(counts.items())},
        "bad": bad,
    }
    _write_json(record_path, record)
    return record


def _is_within(path, parent):
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def prepare_output(output, kind, inputs=(), overwrite=False):
    """Make ``output`` ready for a run of ``kind``; refuse a folder that holds other things.

    An empty or missing folder is used; one that holds an output of the same kind is
    resumed; anything else raises OutputError unless ``overwrite`` (then it is emptied).
    The output may not overlap an input (inputs are never modified).
    """
    for source in inputs:
        if _is_within(output, source) or _is_within(source, output):
            raise OutputError(f"output {output!r} overlaps the input {source!r}; choose another folder")
    if os.path.exists(output) and not os.path.isdir(output):
        raise OutputError(f"output {output!r} is a file, not a folder")
    entries = os.listdir(output) if os.path.isdir(output) else []
    marker_path = os.path.join(output, MARKER)
    marker = None
    if MARKER in entries:
        try:
            with open(marker_path) as f:
                marker = json.load(f)
        except (OSError, ValueError):
            marker = None
    resumable = marker is not None and marker.get("kind") == kind
    if entries and not resumable:
        if not overwrite:
            what = f"a {marker['kind']!r} output" if marker else f"{len(entries)} other entries"
            raise OutputError(
                f"output folder {output!r} is not empty (it holds {what}); "
                "pass --overwrite (overwrite=True) to replace it"
            )
        for name in entries:
            path = os.path.join(output, name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    os.makedirs(output, exist_ok=True)
    _write_json(marker_path, {"format": FORMAT, "version": VERSION, "kind": kind})


def remove_stale(output, keep):
    """Remove shard files of an earlier run that this plan does not produce."""
    keep = set(keep)
    for split in sorted(os.listdir(output)):
        folder = os.path.join(output, split)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            stem = name.split(".", 1)[0]
            if (split, stem) not in keep and name.startswith("shard-"):
                path = os.path.join(folder, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        if not os.listdir(folder):
            os.rmdir(folder)


def build_manifest(kind, input, params, summary, records, bad=(), decode=None):
    """The manifest: a pure function of the plan and the shard records."""
    records = sorted(records, key=lambda r: (r["split"], r["index"]))
    splits = {}
    bad = list(bad)
    for r in records:
        s = splits.setdefault(r["split"], {"n": 0, "shards": 0, "counts": {}})
        s["n"] += r["n"] or 0
        s["shards"] += 1
        for label, count in r["counts"].items():
            s["counts"][label] = s["counts"].get(label, 0) + count
        bad.extend(r["bad"])
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "input": os.path.basename(os.path.normpath(str(input))),
        "params": params,
        "summary": summary,
        "decode": decode or {},
        "splits": splits,
        "bad_records": {"count": sum(b.get("count", 1) for b in bad), "records": bad},
        "shards": records,
    }


def write_manifest(output, manifest):
    _write_json(os.path.join(output, MANIFEST), manifest)


def read_manifest(output):
    with open(os.path.join(output, MANIFEST)) as f:
        return json.load(f)
