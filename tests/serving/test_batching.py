"""The batcher stacks concurrent calls into one model call and hands each caller its own rows."""

import threading

import numpy as np
import pytest

from deepvre.serving.batching import Batcher


class Recorder:
    """A "model": doubles its input after ``gate`` opens; records the batch sizes it saw."""

    def __init__(self):
        self.sizes, self.entered, self.gate = [], [], threading.Event()

    def __call__(self, x):
        self.entered.append(len(x))
        self.gate.wait(10)
        if np.any(x < 0):
            raise ValueError("negative input")
        self.sizes.append(len(x))
        return x * 2


def all_queued(batcher, model, inputs):
    """Wait until every call either waits in ``batcher`` or is in a model call held by the gate."""
    total = sum(len(x) for x in inputs)
    for _ in range(1000):
        if batcher.waiting() + sum(model.entered) == total:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{batcher.waiting()} rows waiting, {model.entered} in the model, of {total}")


def call_all(batcher, inputs):
    results = [None] * len(inputs)

    def one(i):
        try:
            results[i] = batcher(inputs[i])
        except ValueError as err:
            results[i] = err

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    return threads, results


def test_concurrent_calls_are_stacked_and_each_gets_its_rows():
    model = Recorder()
    batcher = Batcher(model, max_rows=64)
    inputs = [np.full((1 + i % 2, 3), float(i)) for i in range(9)]
    threads, results = call_all(batcher, inputs)
    all_queued(batcher, model, inputs)  # the first stack holds the model; the rest wait behind it
    model.gate.set()
    for t in threads:
        t.join(10)
    for x, y in zip(inputs, results):
        np.testing.assert_array_equal(y, x * 2)
    assert sum(model.sizes) == sum(len(x) for x in inputs) and len(model.sizes) == 2, model.sizes


def test_stacks_stay_within_max_rows_and_calls_run_on_several_workers():
    model = Recorder()
    batcher = Batcher(model, max_rows=4, workers=2)
    inputs = [np.full((1 + i % 3, 3), float(i)) for i in range(12)]
    threads, results = call_all(batcher, inputs)
    all_queued(batcher, model, inputs)  # two stacks hold the two workers
    assert len(model.entered) == 2
    model.gate.set()
    for t in threads:
        t.join(10)
    for x, y in zip(inputs, results):
        np.testing.assert_array_equal(y, x * 2)
    assert max(model.sizes) <= 4 and sum(model.sizes) == sum(len(x) for x in inputs), model.sizes
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(model, max_rows=0)


def test_an_error_reaches_each_caller_of_that_call_and_the_batcher_goes_on():
    model = Recorder()
    model.gate.set()
    batcher = Batcher(model)
    with pytest.raises(ValueError, match="negative"):
        batcher(np.full((1, 3), -1.0))
    np.testing.assert_array_equal(batcher(np.ones((2, 3))), np.full((2, 3), 2.0))


def test_inputs_of_another_shape_are_not_stacked():
    model = Recorder()
    batcher = Batcher(model)
    inputs = [np.ones((1, 3)), np.ones((1, 3)), np.ones((1, 4)), np.ones((1, 3))]
    threads, results = call_all(batcher, inputs)
    all_queued(batcher, model, inputs)
    model.gate.set()
    for t in threads:
        t.join(10)
    assert [r.shape for r in results] == [(1, 3), (1, 3), (1, 4), (1, 3)]
