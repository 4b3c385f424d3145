"""Read a preprocessed output: whole splits as numpy, or streamed for Keras.

    x, y = open_split("out/cells", "train")
    ds = tf_dataset("out/cells", "train", batch_size=32)   # a tf.data.Dataset
    model.fit(ds, epochs=3)

Arrays stored in a compact dtype come back decoded as the manifest's ``decode`` section says
(rasters: uint8 tiles -> float32 / 255), so every reader returns what a model should see.
"""

import os

import numpy as np

from .manifest import read_manifest


def shard_paths(output, split):
    """The Zarr shards of ``split``, in order (from the manifest)."""
    manifest = read_manifest(output)
    if split not in manifest["splits"]:
        raise KeyError(f"{output}: no split {split!r}; splits: {', '.join(manifest['splits'])}")
    return [os.path.join(output, r["path"]) for r in manifest["shards"] if r["split"] == split]


def _open(path):
    import zarr

    return zarr.open_group(path, mode="r")


def decode(array, rule):
    """``array`` as the manifest's ``decode`` rule for it says (``{}``: as stored)."""
    if not rule:
        return array
    out = array.astype(rule.get("dtype", "float32"))
    return out / out.dtype.type(rule["divide_by"]) if rule.get("divide_by") else out


def decoders(output):
    """The manifest's ``decode`` section: array name -> rule (empty for version 1 outputs)."""
    return read_manifest(output).get("decode", {})


def open_split(output, split, arrays=("x", "y")):
    """The arrays of one split, concatenated over its shards: ``(x, y)`` by default."""
    parts = {name: [] for name in arrays}
    rules = decoders(output)
    for path in shard_paths(output, split):
        group = _open(path)
        for name in arrays:
            parts[name].append(decode(group[name][...], rules.get(name)))
    out = tuple(np.concatenate(parts[name]) if parts[name] else np.zeros((0,)) for name in arrays)
    return out if len(out) > 1 else out[0]


def iter_split(output, split, arrays=("x", "y"), block=256):
    """Yield blocks of ``block`` samples, shard by shard, never the whole split in memory."""
    rules = decoders(output)
    for path in shard_paths(output, split):
        group = _open(path)
        n = group[arrays[0]].shape[0]
        for start in range(0, n, block):
            yield tuple(decode(group[name][start:start + block], rules.get(name)) for name in arrays)


def tf_dataset(output, split, batch_size=32, shuffle=0, seed=0, arrays=("x", "y"), cache=False):
    """A ``tf.data.Dataset`` of ``(x, y)`` batches streamed from the shards.

    ``cache=True`` keeps the read blocks in memory after the first epoch (a split that fits in
    RAM: later epochs cost what in-memory arrays cost); a path caches to that file instead.
    """
    import tensorflow as tf

    manifest = read_manifest(output)
    records = [r for r in manifest["shards"] if r["split"] == split and r["n"]]
    if not records:
        raise KeyError(f"{output}: split {split!r} is empty")
    rules = manifest.get("decode", {})
    signature = tuple(
        tf.TensorSpec((None, *records[0]["arrays"][name]["shape"][1:]),
                      rules.get(name, {}).get("dtype", records[0]["arrays"][name]["dtype"]))
        for name in arrays
    )

    def blocks():
        yield from iter_split(output, split, arrays)

    ds = tf.data.Dataset.from_generator(blocks, output_signature=signature)
    if cache:
        ds = ds.cache("" if cache is True else str(cache))
    if shuffle:
        return ds.unbatch().shuffle(shuffle, seed=seed).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    # batch-level: shard blocks are cut into batches without a per-sample step (benchmarks/training.py)
    return ds.rebatch(batch_size).prefetch(tf.data.AUTOTUNE)
