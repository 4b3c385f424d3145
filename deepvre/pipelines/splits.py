"""Seeded train/val/test splits: stratified per label, and grouped into shards."""

import numpy as np

SPLITS = ("train", "val", "test")


def stratified_split(labels, fractions=(0.8, 0.1, 0.1), seed=0):
    """The split name of each item, stratified by ``labels`` and reproducible from ``seed``.

    Within each label (in sorted order) the items are shuffled with one seeded
    generator and cut at the rounded fractions; the test split takes the rest.
    """
    if len(fractions) != 3 or min(fractions) < 0 or not 0.999 <= sum(fractions) <= 1.001:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, not {fractions}")
    rng = np.random.default_rng(seed)
    out = [None] * len(labels)
    by_label = {}
    for i, label in enumerate(labels):
        by_label.setdefault(str(label), []).append(i)
    for label in sorted(by_label):
        idx = np.array(by_label[label])[rng.permutation(len(by_label[label]))]
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        for j, i in enumerate(idx):
            out[i] = "train" if j < n_train else "val" if j < n_train + n_val else "test"
    return out


def chunked(items, size):
    """Consecutive groups of ``size`` items."""
    size = max(1, int(size))
    return [items[i:i + size] for i in range(0, len(items), size)]


def shards_by_split(items, assignment, shard_size, seed=None):
    """``{split: [group, ...]}``; with ``seed``, each split is shuffled (reproducibly) first."""
    out = {}
    for k, split in enumerate(SPLITS):
        chosen = [item for item, s in zip(items, assignment) if s == split]
        if seed is not None:
            chosen = [chosen[i] for i in np.random.default_rng([seed, k]).permutation(len(chosen))]
        if chosen:
            out[split] = chunked(chosen, shard_size)
    return out
