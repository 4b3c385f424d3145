"""Concurrent predictions stacked into one model call.

A service's requests each decode their own input in their own thread, then wait here: one thread
runs the model on every batch queued meanwhile, stacked along the first axis, and hands each
caller its rows. Nothing waits for a batch to fill: a lone request runs at once, and requests that
arrive while the model is busy go together in the next call. CPU inference of a batch of n costs
far less than n calls of one, so a service under load keeps up with (or beats) the same number of
threads calling the model in process.
"""

import queue
import threading

import numpy as np


class Batcher:
    """``Batcher(fn)(x)`` is ``fn(x)`` for a batch ``x``, run together with concurrent calls.

    ``fn`` takes and returns arrays with one row per sample (e.g. ``model.predict_on_batch``);
    ``max_rows`` bounds one stacked call. An error of a stacked call goes to each of its callers.
    """

    def __init__(self, fn, max_rows=64):
        self.fn, self.max_rows = fn, max_rows
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="deepvre-batcher", daemon=True)
        self._thread.start()

    def __call__(self, x):
        slot = {"x": np.asarray(x), "done": threading.Event()}
        self._queue.put(slot)
        slot["done"].wait()
        if "error" in slot:
            raise slot["error"]
        return slot["y"]

    def _take(self):
        """The oldest waiting call and those queued behind it, up to ``max_rows`` rows of one shape."""
        slots = [self._queue.get()]
        rows = len(slots[0]["x"])
        while rows < self.max_rows:
            try:
                slot = self._queue.get_nowait()
            except queue.Empty:
                break
            if slot["x"].shape[1:] != slots[0]["x"].shape[1:] or slot["x"].dtype != slots[0]["x"].dtype:
                self._run([slot])  # another input shape: on its own
                continue
            slots.append(slot)
            rows += len(slot["x"])
        return slots

    def _serve(self):
        while True:
            self._run(self._take())

    def _run(self, slots):
        try:
            y = np.asarray(self.fn(np.concatenate([s["x"] for s in slots]) if len(slots) > 1 else slots[0]["x"]))
            bounds = np.cumsum([len(s["x"]) for s in slots])[:-1]
            for slot, rows in zip(slots, np.split(y, bounds)):
                slot["y"] = rows
        except Exception as err:  # noqa: BLE001  (each caller raises it)
            for slot in slots:
                slot["error"] = err
        finally:
            for slot in slots:
                slot["done"].set()
