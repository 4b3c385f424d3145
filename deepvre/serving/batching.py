"""Concurrent predictions stacked into one model call.

A service's requests each decode their own input in their own thread, then wait here: one of
the waiting threads runs the model on what is queued, stacked along the first axis (up to
``max_rows``), and hands each caller its rows. Nothing waits for a stack to fill: a lone request runs at once, and
requests that arrive while the workers are busy go together in the next call. Small stacks and a
few calls at once (``workers``) keep the cores busy as threads calling the model in process do;
large stacks do not pay on a CPU (MobileNetV2 at 224x224 on 2 cores: 36 ms for one image, 44 ms
per image in a stack of 4, 54 in a stack of 16), see docs/benchmarks.md.
"""

import collections
import threading

import numpy as np


class Batcher:
    """``Batcher(fn)(x)`` is ``fn(x)`` for a batch ``x``, run together with concurrent calls.

    ``fn`` takes and returns arrays with one row per sample (e.g. ``model.predict_on_batch``);
    ``max_rows`` bounds one stacked call; ``workers`` calls of ``fn`` run at once, each on what
    is queued when it starts. An error of a stacked call goes to each of its callers.

    The callers run the calls themselves (leader and followers): a caller that finds a free call
    slot takes the oldest waiting calls and runs them in its own thread; the others wait for their
    rows, or for a slot. A lone request thus runs at once in its own thread, with no hand-over to
    another thread and back (a few milliseconds of CPU per request on a loaded machine).
    """

    def __init__(self, fn, max_rows=8, workers=1):
        if max_rows < 1 or workers < 1:
            raise ValueError(f"max_rows and workers must be at least 1, not {max_rows} and {workers}")
        self.fn, self.max_rows, self.workers = fn, max_rows, workers
        self._waiting = collections.deque()
        self._running = 0  # calls of fn now
        self._changed = threading.Condition()

    def __call__(self, x):
        slot = {"x": np.asarray(x), "done": False}
        with self._changed:
            self._waiting.append(slot)
            while not slot["done"]:
                if self._running < self.workers and self._waiting:
                    self._lead()
                else:
                    self._changed.wait()
        if "error" in slot:
            raise slot["error"]
        return slot["y"]

    def waiting(self):
        """How many rows (samples) wait for a call."""
        with self._changed:
            return sum(len(slot["x"]) for slot in self._waiting)

    def _lead(self):
        """Run one stacked call in this thread (called and returning with the lock held)."""
        slots = self._take()
        self._running += 1
        self._changed.release()
        try:
            self._run(slots)
        finally:
            self._changed.acquire()
            self._running -= 1
            for slot in slots:
                if "y" not in slot and "error" not in slot:  # fn was interrupted (BaseException)
                    slot["error"] = RuntimeError("the model call was interrupted")
                slot["done"] = True
            self._changed.notify_all()

    def _take(self):
        """The oldest waiting call and those behind it of the same shape that fit in ``max_rows``
        (a call larger than that goes alone); the others keep their place."""
        first = self._waiting.popleft()
        slots, rows, kept = [first], len(first["x"]), collections.deque()
        while self._waiting:
            slot = self._waiting.popleft()
            fits = slot["x"].shape[1:] == first["x"].shape[1:] and slot["x"].dtype == first["x"].dtype
            if fits and rows + len(slot["x"]) <= self.max_rows:
                slots.append(slot)
                rows += len(slot["x"])
            else:
                kept.append(slot)
        self._waiting.extendleft(reversed(kept))
        return slots

    def _run(self, slots):
        try:
            y = np.asarray(self.fn(np.concatenate([s["x"] for s in slots]) if len(slots) > 1 else slots[0]["x"]))
            bounds = np.cumsum([len(s["x"]) for s in slots])[:-1]
            for slot, rows in zip(slots, np.split(y, bounds)):
                slot["y"] = rows
        except Exception as err:  # noqa: BLE001  (each caller raises it)
            for slot in slots:
                slot["error"] = err
