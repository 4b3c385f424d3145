"""The GPU queue's bookkeeping and its asyncio wait (pure): order, the head-only rule, priorities,
the wake-up at a release, and the progress line's estimate."""

import asyncio
import datetime as dt

import pytest

from deepvre_hub import gpu_queue

NOW = dt.datetime(2026, 11, 30, 13, 0)


def test_first_come_first_served_within_a_priority_higher_first():
    q = gpu_queue.GpuQueue()
    q.join("bob/", 1)
    q.join("carol/", 1)
    q.join("dave/", 1, priority=5)
    q.join("erin/", 1, priority=5)
    assert [w.owner for w in q.waiting] == ["dave/", "erin/", "bob/", "carol/"]
    assert (q.place("bob/"), q.place("zoe/")) == (3, None)
    with pytest.raises(ValueError, match="already waiting"):
        q.join("bob/", 1)
    q.leave("dave/")
    assert q.place("bob/") == 2


def test_only_the_head_takes_gpus_a_later_smaller_request_waits():
    q = gpu_queue.GpuQueue()
    q.join("big/", 2)
    q.join("small/", 1)
    assert not q.is_turn("small/", free=1) and not q.is_turn("big/", free=1)
    assert q.is_turn("big/", free=2)
    assert q.gpus_ahead("small/") == 2
    # a newcomer queues behind waiters of its priority even with a free GPU; a higher priority goes first
    assert q.must_wait(1, free=1) and not q.must_wait(1, free=1, priority=1)
    assert not gpu_queue.GpuQueue().must_wait(1, free=1) and gpu_queue.GpuQueue().must_wait(2, free=1)


def test_a_release_wakes_the_head_at_once():
    async def scenario():
        q = gpu_queue.GpuQueue()
        free = {"n": 0}
        order = []
        q.join("bob/", 1)
        q.join("carol/", 1)

        async def waiter(owner):
            await q.wait_turn(owner, lambda: free["n"])
            free["n"] -= 1  # the allocation, before any await
            order.append(owner)
            q.leave(owner)

        tasks = [asyncio.create_task(waiter(o)) for o in ("carol/", "bob/")]
        await asyncio.sleep(0.05)
        assert order == []
        free["n"] = 1
        q.notify()
        await asyncio.sleep(0.05)
        assert order == ["bob/"] and q.place("carol/") == 1  # carol did not take it: not her turn, none left
        free["n"] = 1
        q.notify()
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
        assert order == ["bob/", "carol/"] and q.waiting == []

    asyncio.run(scenario())


def test_a_cancelled_waiter_lets_the_next_move_up():
    async def scenario():
        q = gpu_queue.GpuQueue()
        q.join("bob/", 1)
        q.join("carol/", 1)
        task = asyncio.create_task(q.wait_turn("carol/", lambda: 1))
        await asyncio.sleep(0.01)
        assert not task.done()
        q.leave("bob/")
        await asyncio.wait_for(task, 1)
        assert q.place("carol/") == 1

    asyncio.run(scenario())


def test_estimate_and_message():
    releases = [(NOW + dt.timedelta(hours=2), 1, ("alice", "idle limit 15 min")),
                (NOW + dt.timedelta(minutes=5), 1, ("dave", "idle limit 15 min")),
                (None, 1, ("erin", ""))]
    assert gpu_queue.estimate(releases, 1)[1] == ("dave", "idle limit 15 min")
    assert gpu_queue.estimate(releases, 2)[0] == NOW + dt.timedelta(hours=2)
    assert gpu_queue.estimate(releases, 3) is None
    line = gpu_queue.progress_message(2, gpu_queue.estimate(releases, 2), NOW)
    assert line == ("Waiting for a GPU: 2nd in the queue; a GPU frees up by 15:00 UTC if alice's server "
                    "stays idle (idle limit 15 min).")
    assert gpu_queue.progress_message(11, None, NOW).startswith("Waiting for a GPU: 11th in the queue; no estimate")
    # "at the latest": the holders' maximum lifetimes
    latest = [(NOW + dt.timedelta(hours=8), 1, ("alice", "maximum age (8 h)")),
              (NOW + dt.timedelta(hours=3), 1, ("dave", "maximum age (3 h)"))]
    line = gpu_queue.progress_message(1, gpu_queue.estimate(releases, 1), NOW, gpu_queue.estimate(latest, 1))
    assert line == ("Waiting for a GPU: 1st in the queue; a GPU frees up by 13:05 UTC if dave's server stays idle "
                    "(idle limit 15 min). At the latest by 16:00 UTC, when dave's server reaches its maximum age (3 h).")
    line = gpu_queue.progress_message(3, None, NOW, gpu_queue.estimate(latest, 2))
    assert line == ("Waiting for a GPU: 3rd in the queue; a GPU frees up at the latest by 21:00 UTC, when alice's "
                    "server reaches its maximum age (8 h).")
    found = (NOW + dt.timedelta(minutes=1), ("erin", "maximum age (1 min)"))  # the lifetime comes first
    assert gpu_queue.progress_message(1, found, NOW, found) == (
        "Waiting for a GPU: 1st in the queue; a GPU frees up by 13:01 UTC, when erin's server reaches its "
        "maximum age (1 min).")
    assert [gpu_queue.duration(s) for s in (28800, 900, 40, 5400)] == ["8 h", "15 min", "40 s", "90 min"]
    assert [gpu_queue.ordinal(n) for n in (1, 2, 3, 4, 12, 21, 113)] == ["1st", "2nd", "3rd", "4th", "12th", "21st", "113th"]


def test_the_order_survives_a_restart_in_the_usage_database(tmp_path):
    from deepvre_hub import usage

    book = usage.UsageBook(usage.default_url(tmp_path))
    before = gpu_queue.GpuQueue(book)
    for owner in ("bob/", "carol/", "dave/"):
        before.join(owner, 1)
    before.leave("dave/", stored=True)  # a spawn cancelled by the hub's shutdown keeps its row
    assert [r["owner"] for r in book.queued()] == ["bob/", "carol/", "dave/"]
    before.leave("dave/")
    before.forget("dave/")  # its server stopped: gone for good

    after = gpu_queue.GpuQueue(book)  # the restarted hub
    assert after.restore() == 2 and all(w.restored for w in after.waiting)
    after.join("erin/", 1)  # a newcomer queues behind the kept places
    after.join("carol/", 1)  # carol asks again first: her place, not the back
    assert [w.owner for w in after.waiting] == ["bob/", "carol/", "erin/"]
    with pytest.raises(ValueError, match="already waiting"):
        after.join("carol/", 1)
    assert after.drop_restored() == ["bob/"]  # bob never came back
    assert [w.owner for w in after.waiting] == ["carol/", "erin/"]
    assert [r["owner"] for r in book.queued()] == ["carol/", "erin/"]


def test_after_the_queue_the_start_itself_keeps_the_configured_timeout():
    """JupyterHub's start timeout of a GPU spawn covers the queue's wait too; the spawner's own
    start after it is held to the configured one."""
    from types import SimpleNamespace

    from deepvre_hub.spawner import DeepvreSpawner

    user = SimpleNamespace(name="alice", groups=[], url="/user/alice/")
    spawner = DeepvreSpawner(user=user, profiles=[], gpu_settings={"discovery": "none"}, personal_mode=True)
    spawner.base_start_timeout, spawner.start_timeout = 1, 1 + 86400

    async def slow():
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        asyncio.run(spawner.own_start(slow()))
    spawner.start_timeout = 1  # a spawn that could not queue: JupyterHub's own limit applies, nothing more
    assert asyncio.run(spawner.own_start(asyncio.sleep(1.2, "url"))) == "url"
