"""The local GPU queue: a GPU spawn that finds too few free GPUs waits here instead of failing.

Pure bookkeeping plus one asyncio wait. Order: higher priority first (a group's
``gpus.queue.priorities``), then first come, first served. The rule: **only the head of the
queue may take GPUs**. A later request waits even when it would fit, so nobody is overtaken and
a large request is not starved by a stream of small ones (GPUs may then stay free while the head
waits for more). A new request joins behind every waiter of its own or a higher priority, even
when GPUs are free now. :meth:`GpuQueue.notify` (called when GPUs are released, or a waiter
leaves) wakes the waiters at once; the head that now fits takes its GPUs without an ``await``
between the check and the allocation (the spawner does that right after :meth:`wait_turn`).

With a store (the usage database) the waiting requests survive a hub restart, which drops
JupyterHub's pending spawns: the restarted hub keeps their places (:meth:`GpuQueue.restore`), the
same server's spawn takes its place back, and places nobody takes are given up after a grace.
"""

import asyncio
import datetime
import itertools
import time
from dataclasses import dataclass, field


@dataclass(order=True)
class Waiter:
    sort_key: tuple = field(init=False, repr=False)
    owner: str = field(compare=False)  # "user/server"
    gpus: int = field(compare=False)
    priority: int = field(default=0, compare=False)
    queued: datetime.datetime = field(default=None, compare=False)
    seq: int = field(default=0, compare=False)
    restored: bool = field(default=False, compare=False)  # from before a hub restart, not asked for again yet

    def __post_init__(self):
        self.sort_key = (-self.priority, self.seq)


class GpuQueue:
    """The waiting GPU requests of one machine, in the order they will get GPUs."""

    def __init__(self, store=None):
        self.waiting = []
        self._seq = itertools.count()
        self.store = store  # keeps the waiting requests across a hub restart (usage.UsageBook), or None
        self._changed = None  # asyncio.Event of the current generation: set (and replaced) by notify()
        self.notified_at = None  # time.monotonic() of the last notify(): the benchmark's release time
        self._shared = None  # (key, value) of shared()

    def restore(self):
        """At a hub's start: the store's requests, in their order, as places kept for their owners
        (:meth:`join` again takes the place; :meth:`drop_restored` gives up those not taken)."""
        rows = self.store.queued() if self.store is not None else []
        for r in rows:
            self.waiting.append(Waiter(r["owner"], r["gpus"], r["priority"], r["queued"], r["seq"], restored=True))
        self.waiting.sort()
        self._seq = itertools.count(max([r["seq"] for r in rows], default=-1) + 1)
        return len(rows)

    def drop_restored(self):
        """Give up the places of a restarted hub's requests that nobody asked for again."""
        gone = [w.owner for w in self.waiting if w.restored]
        for owner in gone:
            self.leave(owner)
        return gone

    def join(self, owner, gpus, priority=0, queued=None):
        """Queue ``owner``'s request (behind every waiter of the same or a higher priority); the
        same server's request from before a hub restart keeps its place."""
        kept = self.waiter(owner)
        if kept is not None and not kept.restored:
            raise ValueError(f"{owner} is already waiting for a GPU")
        if kept is not None:
            self.waiting.remove(kept)
        waiter = Waiter(owner, int(gpus), int(priority), kept.queued if kept else
                        (queued or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)),
                        kept.seq if kept else next(self._seq))
        self.waiting.append(waiter)
        self.waiting.sort()
        if self.store is not None:
            self.store.enqueue(owner, waiter.gpus, waiter.priority, waiter.queued, waiter.seq)
        self.notify()  # a progress page of someone behind shows the new place
        return waiter

    def leave(self, owner, stored=False):
        """Drop ``owner``'s request (admitted, refused; ``stored``: cancelled, its row kept until
        :meth:`forget`, for a hub's shutdown cancels the waiting spawns too); wake the others."""
        before = len(self.waiting)
        self.waiting = [w for w in self.waiting if w.owner != owner]
        if not stored:
            self.forget(owner)
        if len(self.waiting) != before:
            self.notify()

    def forget(self, owner):
        """Drop ``owner``'s stored request (its server was stopped)."""
        if self.store is not None:
            self.store.dequeue(owner)

    def place(self, owner):
        """1-based place of ``owner`` in the queue, or None."""
        return next((i for i, w in enumerate(self.waiting, 1) if w.owner == owner), None)

    def waiter(self, owner):
        return next((w for w in self.waiting if w.owner == owner), None)

    def must_wait(self, gpus, free, priority=0):
        """Whether a new request must queue: too few GPUs free, or someone of its priority or a
        higher one is waiting already."""
        return gpus > free or any(w.priority >= priority for w in self.waiting)

    def is_turn(self, owner, free):
        """``owner`` is the head and its GPUs are free."""
        return bool(self.waiting) and self.waiting[0].owner == owner and self.waiting[0].gpus <= free

    def gpus_ahead(self, owner):
        """GPUs the waiters ahead of ``owner`` will take first."""
        total = 0
        for w in self.waiting:
            if w.owner == owner:
                return total
            total += w.gpus
        return total

    def shared(self, key, compute):
        """``compute()``, once for each new ``key``: what every waiter's progress page shows alike
        (the GPU holders' release times), worked out once when a change of the queue wakes them all."""
        if self._shared is None or self._shared[0] != key:
            self._shared = (key, compute())
        return self._shared[1]

    # --- the asyncio side ----------------------------------------------------------------

    def _event(self):
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def notify(self):
        """Wake everyone waiting on a change (synchronous: called from ``release_gpus``)."""
        self.notified_at = time.monotonic()
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def changed(self, timeout=None):
        """Return at the next :meth:`notify`, or after ``timeout`` seconds."""
        event = self._event()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    async def wait_turn(self, owner, free):
        """Return when ``owner`` is the head and ``free()`` GPUs suffice; the caller takes them
        before its next ``await`` and then leaves the queue."""
        while not self.is_turn(owner, free()):
            if self.place(owner) is None:
                raise RuntimeError(f"{owner} left the GPU queue")
            await self._event().wait()


def ordinal(n):
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def estimate(releases, needed):
    """When ``needed`` more GPUs will have been given back, at the latest, if the servers holding
    them end at their limits. ``releases``: ``(when, gpus, holder)`` per running GPU server (when:
    None for a server without a limit). Returns ``(when, holder)`` of the release that completes
    the count, or None when the known limits do not free enough."""
    count = 0
    for when, gpus, holder in sorted((r for r in releases if r[0] is not None), key=lambda r: r[0]):
        count += gpus
        if count >= needed:
            return when, holder
    return None


def duration(seconds):
    """``8 h``, ``15 min``, ``40 s``."""
    seconds = int(seconds)
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _at(when, now):
    return when.strftime("%H:%M UTC") if when.date() == now.date() else when.strftime("%Y-%m-%d %H:%M UTC")


def progress_message(place, found, now, latest=None):
    """The progress page's line: the place, the likely estimate ``found`` and the guaranteed one
    ``latest`` (each from :func:`estimate`: from the holders' idle limits and from their maximum
    lifetimes), or why there is none."""
    line = f"Waiting for a GPU: {ordinal(place)} in the queue"
    if found is None and latest is None:
        return line + "; no estimate: the GPU servers running now have no idle limit that frees enough GPUs."
    if found is not None:
        when, (holder, why) = found
        if why.startswith("maximum age"):
            line += f"; a GPU frees up by {_at(when, now)}, when {holder}'s server reaches its {why}."
        else:
            line += f"; a GPU frees up by {_at(when, now)} if {holder}'s server stays idle ({why})."
    if latest is not None and latest != found:
        when, (holder, why) = latest
        line += (" At the latest" if found is not None else "; a GPU frees up at the latest") + \
            f" by {_at(when, now)}, when {holder}'s server reaches its {why}."
    return line
