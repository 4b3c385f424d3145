"""The streamed reader the training benchmark measures gives the same samples as the in-memory one."""

import numpy as np
import pytest


@pytest.mark.parametrize("cache", [False, True])
def test_tf_dataset_batches_are_the_split_in_order(data_output, cache):
    from deepvre.pipelines.dataset import open_split, tf_dataset

    x, y = open_split(str(data_output), "train")
    ds = tf_dataset(str(data_output), "train", batch_size=5, cache=cache)
    for _ in range(2):  # the second pass comes from the cache when there is one
        batches = [(bx.numpy(), by.numpy()) for bx, by in ds]
        assert [len(b) for b, _ in batches[:-1]] == [5] * (len(batches) - 1)  # batches cross shard ends
        assert np.array_equal(np.concatenate([b for b, _ in batches]), x)
        assert np.array_equal(np.concatenate([b for _, b in batches]), y)


def test_tf_dataset_shuffled_keeps_every_sample(data_output):
    from deepvre.pipelines.dataset import open_split, tf_dataset

    x, _ = open_split(str(data_output), "train")
    got = np.concatenate([b.numpy() for b, _ in tf_dataset(str(data_output), "train", batch_size=4, shuffle=64)])
    assert sorted(map(bytes, got)) == sorted(map(bytes, x))
