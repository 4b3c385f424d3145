"""The pure parts of usage accounting and quotas: the table and its schema version, the quota
rules and their messages, the page's sums, chart and CSV."""

import asyncio
import datetime as dt
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from jupyterhub.handlers.base import BaseHandler

from deepvre_hub import accounting, quotas, usage, usage_page

NOW = dt.datetime(2026, 12, 2, 12, 0)


def row(user, server="", gpus=0, start_h=-1.0, end_h=None, gpu_ids=None):
    start = NOW + dt.timedelta(hours=start_h)
    return {"id": 1, "kind": "server", "profile": "p", "reason": None, "ended_by": None, "user": user, "server": server, "gpus": gpus, "gpu_ids": gpu_ids or ",".join(map(str, range(gpus))),
            "start": start, "end": None if end_h is None else NOW + dt.timedelta(hours=end_h)}


def test_the_book_opens_closes_and_keeps_a_closed_row(tmp_path):
    url = usage.default_url(tmp_path)
    book = usage.UsageBook(url)
    assert (tmp_path / "usage.sqlite").stat().st_mode & 0o777 == 0o600
    rid = book.open("alice", "a", "gpu-1", ["0"], start=NOW)
    assert book.rows(open_only=True)[0]["gpu_ids"] == "0"
    assert book.close(rid, usage.USER, "alice", end=NOW + dt.timedelta(hours=2))
    assert not book.close(rid, usage.ADMIN, "admin")  # a closed row stays as it was
    closed = book.get(rid)
    assert (closed["reason"], closed["ended_by"], usage.hours(closed, until=NOW + dt.timedelta(days=1))) == ("user", "alice", 2.0)
    assert usage.UsageBook(url).get(rid) == closed  # reopened: the same rows
    assert book.rows(since=NOW + dt.timedelta(hours=3)) == []


def test_a_sweep_closes_only_earlier_processes_unheld_rows(tmp_path):
    url = usage.default_url(tmp_path)
    earlier = usage.UsageBook(url)
    held, leaked = earlier.open("alice", "", "cpu"), earlier.open("bob", "", "gpu-1", ["0"])
    book = usage.UsageBook(url)  # a new hub process
    mine = book.open("carol", "", "cpu")
    assert book.sweep({held}) == [leaked] and book.swept
    assert book.get(leaked)["reason"] == "gone"
    assert book.get(held)["end"] is None and book.get(mine)["end"] is None


def test_the_schema_version_is_checked_and_migrated(tmp_path, monkeypatch):
    url = usage.default_url(tmp_path)
    usage.UsageBook(url)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(usage.schema.update().values(value="7"))
    with pytest.raises(usage.UsageDatabaseError, match=f"schema version 7, newer than this deepvre's {usage.SCHEMA_VERSION}"):
        usage.UsageBook(url)
    with engine.begin() as c:
        c.execute(usage.schema.update().values(value="0"))
    with pytest.raises(usage.UsageDatabaseError, match="no migration of the usage database from schema version 0"):
        usage.UsageBook(url)
    ran = []
    monkeypatch.setitem(usage.MIGRATIONS, 0, lambda connection: ran.append(0))
    usage.UsageBook(url)
    assert ran == [0]
    with engine.connect() as c:
        assert c.execute(sa.select(usage.schema.c.value)).scalar() == str(usage.SCHEMA_VERSION)


def test_version_1_gets_the_gpu_queue_table(tmp_path):
    url = usage.default_url(tmp_path)
    usage.UsageBook(url)
    engine = sa.create_engine(url)
    with engine.begin() as c:  # a database of the first deepvre with accounting: no queue table
        usage.waiting.drop(c)
        c.execute(usage.schema.update().values(value="1"))
    book = usage.UsageBook(url)
    book.enqueue("bob/", 1, 0, usage.utcnow(), 7)
    assert [(r["owner"], r["seq"]) for r in book.queued()] == [("bob/", 7)]
    with engine.connect() as c:
        assert c.execute(sa.select(usage.schema.c.value)).scalar() == str(usage.SCHEMA_VERSION)


def test_version_2_gets_the_admitted_runs_table(tmp_path):
    url = usage.default_url(tmp_path)
    usage.UsageBook(url)
    engine = sa.create_engine(url)
    with engine.begin() as c:  # a database of the deepvre with the queue: no runs table
        usage.admitted.drop(c)
        c.execute(usage.schema.update().values(value="2"))
    book = usage.UsageBook(url)
    book.admit_run("bob/run:r1", "bob", "r1", "gpu-1", ["0"], 4242, 1000, 7)
    assert [(r["owner"], r["gpu_ids"], r["pid"]) for r in book.admitted_runs()] == [("bob/run:r1", "0", 4242)]
    book.forget_run("bob/run:r1")
    assert book.admitted_runs() == []
    with engine.connect() as c:
        assert c.execute(sa.select(usage.schema.c.value)).scalar() == "3"


def test_user_limits_merge_the_default_and_the_users_own():
    section = {"default": {"gpus": 1, "servers": 2}, "users": {"alice": {"gpus": 2, "servers": None}}}
    assert quotas.user_limits(section, "alice") == {"gpus": 2}
    assert quotas.user_limits(section, "bob") == {"gpus": 1, "servers": 2}
    assert quotas.user_limits({}, "bob") == {}


def test_gpus_and_servers_at_once_name_the_limit_and_what_holds_it():
    section = {"default": {"gpus": 1, "servers": 2}}
    rows = [row("alice", "a", gpus=1, gpu_ids="0"), row("bob", "", gpus=1)]
    why = quotas.refusal(section, "alice", "b", {}, rows, 1, NOW)
    assert why.startswith("GPUs at once (your limit): 1 of 1 held (alice/a (GPU 0)); this profile needs 1.")
    assert quotas.refusal(section, "alice", "b", {}, rows, 0, NOW) is None  # a CPU server fits
    assert quotas.refusal(section, "alice", "a", {}, rows, 1, NOW) is None  # restarting the same server
    rows.append(row("alice", "c"))
    why = quotas.refusal(section, "alice", "d", {}, rows, 0, NOW)
    assert why.startswith("Servers at once (your limit): 2 of 2 running (alice/a (GPU 0), alice/c).")
    rows[0]["end"] = NOW  # stopped: it counts no more
    assert quotas.refusal(section, "alice", "d", {}, rows, 1, NOW) is None


def test_gpu_hours_in_the_rolling_week_and_when_they_free_up():
    section = {"users": {"carol": {"gpu_hours_per_week": 10}}}
    # 2 GPUs for 5 hours, ending 6 days ago: 10 GPU-hours in the window
    rows = [row("carol", "", gpus=2, start_h=-24 * 6 - 5, end_h=-24 * 6)]
    why = quotas.refusal(section, "carol", "", {}, rows, 1, NOW)
    # it falls under 10 as soon as its first second leaves the window: 19 hours from now (rounded up)
    assert why == ("GPU-hours this week (your limit): 10.0 of 10 in the last 7 days; under the limit again on "
                   "Thu 3 Dec 07:01 UTC. Pick a CPU profile until then.")
    assert quotas.refusal(section, "carol", "", {}, rows, 0, NOW) is None
    rows[0]["start"] += dt.timedelta(minutes=30)  # 9 GPU-hours
    assert quotas.refusal(section, "carol", "", {}, rows, 1, NOW) is None
    old = [row("carol", gpus=4, start_h=-24 * 8, end_h=-24 * 7 - 1)]  # before the window
    assert quotas.gpu_hours(old, NOW) == 0
    assert "none allowed" in quotas.refusal({"default": {"gpu_hours_per_week": 0}}, "x", "", {}, [], 1, NOW)


def test_back_under_waits_for_enough_use_to_leave():
    rows = [row("u", gpus=1, start_h=-24 * 7 + 1, end_h=-24 * 7 + 3), row("u", gpus=1, start_h=-10, end_h=-2)]
    # 2 + 8 = 10 GPU-hours; limit 9: under once 1 GPU-hour (from the first row) has left: 2 h from now
    assert abs((quotas.back_under(rows, 9, NOW) - (NOW + dt.timedelta(hours=2))).total_seconds()) <= 1
    # limit 2: both rows must shrink to under 2 hours; the second leaves from 7 days after its start
    at = quotas.back_under(rows, 2, NOW)
    assert NOW + dt.timedelta(hours=24 * 7 - 10 + 6) <= at + dt.timedelta(seconds=1)


def test_a_group_limit_is_on_its_members_sum_and_every_group_counts():
    section = {"groups": {"team": {"gpus": 1}, "big": {"gpus": 5}}, "default": {"gpus": 2}}
    groups = {"team": ["dave", "erin"], "big": ["dave", "erin", "fay"], "nolimits": ["x"]}
    rows = [row("dave", "", gpus=1, gpu_ids="3")]
    why = quotas.refusal(section, "erin", "", groups, rows, 1, NOW)
    assert why.startswith("GPUs at once (group team's limit): 1 of 1 held (dave/ (GPU 3))")
    assert quotas.watched_users(section, "erin", groups) == {"dave", "erin", "fay"}
    assert quotas.refusal(section, "erin", "", {"big": groups["big"]}, rows, 1, NOW) is None


def test_the_pages_sums_chart_and_csv():
    rows = [row("alice", "a", gpus=2, start_h=-3, end_h=-1), row("bob", "=cmd", start_h=-2)]
    since = NOW - dt.timedelta(days=28)
    sums = usage_page.totals(rows, {"alice": {"alice"}, "team": {"alice", "bob"}}, NOW, since)
    assert sums["alice"] == {"servers": 1, "running": 0, "hours": 2.0, "gpu_hours": 4.0, "gpu_hours_7d": 4.0}
    assert sums["team"]["hours"] == 4.0 and sums["team"]["running"] == 1
    days = usage_page.daily(rows, 2, NOW)
    assert [d for d, _, _ in days] == [dt.date(2026, 12, 1), dt.date(2026, 12, 2)]
    assert days[1][1:] == (4.0, 4.0) and days[0][1:] == (0, 0)
    svg = usage_page.svg_chart(days)
    assert svg.startswith("<svg") and svg.count('class="gpu-hours"') == 2 and "4.00 GPU-hours" in svg
    text = usage_page.csv_text(rows, NOW, since).splitlines()
    assert text[0] == ",".join(usage_page.CSV_FIELDS)
    assert ",'=cmd," in text[2]  # a server name is never a spreadsheet formula
    assert text[1].endswith(",2.0000,4.0000")


class FakeHandler(BaseHandler):
    """Only what :func:`accounting.stop_reason` reads of a hub request handler."""

    def __init__(self, method, who):  # no tornado application: nothing else is used
        self.request = SimpleNamespace(method=method)
        self._jupyterhub_user = who

    async def stop(self, owner):
        return await nested(owner)


async def nested(owner):
    return accounting.stop_reason(owner)  # deeper in the task, as Spawner.stop is


def test_the_stop_reason_is_read_from_the_request_that_stops_the_server():
    def reason(method, who):
        return asyncio.run(FakeHandler(method, who).stop("alice"))

    alice, admin = SimpleNamespace(name="alice", kind="user"), SimpleNamespace(name="root", kind="user")
    assert reason("DELETE", alice) == ("user", "alice")
    assert reason("DELETE", admin) == ("admin", "root")
    assert reason("DELETE", SimpleNamespace(name="idle-culler", kind="service")) == ("culled", "service:idle-culler")
    assert reason("DELETE", SimpleNamespace(name="other", kind="service")) == ("service", "service:other")
    assert reason("POST", alice) == ("failed", None)  # a spawn request whose server never answered
    assert asyncio.run(nested("alice")) == ("hub", None)  # the hub's own (its shutdown, its start)
