"""The spawner's side of usage accounting and quotas: :class:`AccountingMixin`.

It also tells the user when a server that waited in the GPU queue is ready (``notify``).

At a start: the quotas are checked, the GPUs taken and a row opened, with no ``await`` between
them (two spawns of one user cannot both pass the check). The row's id lives in the spawner
state, so a server running across a hub restart keeps its row. At the end the row is closed with
the reason: who stopped it (:func:`stop_reason`), ``failed`` when it did not start or exited on
its own, ``gone`` when a restarted hub found it gone.
"""

import asyncio
import datetime
import html
import time

from jupyterhub import orm
from jupyterhub.handlers.base import BaseHandler
from traitlets import Dict, HasTraits, Integer, Unicode

from . import culler, notify, quotas, usage
from .spawn_form import refusal

CULLER = "idle-culler"  # the culler service's name (deepvre_hub.culler)


def requesting_handler():
    """The hub request handler whose task runs this code (JupyterHub stops a server in a task
    of the handler that asked: ``BaseHandler.stop_single_user``), or None (the hub itself)."""
    task = asyncio.current_task()
    coro = task.get_coro() if task else None
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        candidate = frame.f_locals.get("self") if frame is not None else None
        if isinstance(candidate, BaseHandler):
            return candidate
        coro = getattr(coro, "cr_await", None)
    return None


def stop_reason(owner):
    """``(reason, who)`` of a stop of ``owner``'s server happening now: asked for by a DELETE
    (its owner, an admin, the culler or another service); in another request, a spawn that
    failed after its start (e.g. the server never answered); outside any, the hub's own."""
    handler = requesting_handler()
    if handler is None:
        return usage.HUB, None
    who = handler.current_user
    if handler.request.method != "DELETE" or who is None:
        return usage.FAILED, None
    if getattr(who, "kind", "user") == "service":
        return (usage.CULLED if who.name == CULLER else usage.SERVICE), f"service:{who.name}"
    return (usage.USER if who.name == owner else usage.ADMIN), who.name


def referenced_ids(db):
    """The accounting row ids the hub's spawners hold in their state."""
    return {int(s.state["usage_id"]) for s in db.query(orm.Spawner) if (s.state or {}).get("usage_id")}


def sweep_once(book, db, log):
    """At the first start or usage page since the hub's start: open rows of an earlier hub process
    that no server holds are over (``UsageBook.sweep``)."""
    if not book.swept:
        stale = book.sweep(referenced_ids(db))
        if stale:
            log.warning("deepvre: usage rows %s were open but no server holds them: closed as gone", stale)


class AccountingMixin(HasTraits):
    """Quotas at start and one accounting row per server; goes before ``LocalGpusMixin``."""

    usage_db_url = Unicode(
        config=True,
        help="""SQLAlchemy URL of the usage accounting (``deepvre_hub.usage``); empty: none kept,
        and no quota checked.

        Example: ``"sqlite:////srv/deepvre/usage.sqlite"`` (the default: ``usage.sqlite`` in the hub's state folder)
        """,
    )

    quotas = Dict(
        config=True,
        help="""Per-user and per-group limits (the ``quotas:`` settings section, ``deepvre_hub.quotas``).

        Example: ``{"default": {"gpus": 1, "servers": 2}, "groups": {"students": {"gpu_hours_per_week": 100}}}``
        """,
    )

    notify = Dict(
        config=True,
        help="""Who is told when a server is ready (the ``notify:`` settings section, ``deepvre_hub.notify``):
        a webhook and an e-mail, for spawns that waited in the GPU queue (or every spawn).

        Example: ``{"webhook": {"url": "https://chat.example.org/hooks/gpu", "secret_file": "/etc/deepvre/hook"}}``
        """,
    )

    public_hub_url = Unicode(
        "",
        config=True,
        help="""The hub's public address, for the link in a notice (empty: the path alone).

        Example: ``"https://hub.example.org"``
        """,
    )

    usage_id = Integer(0, help="The id of this server's open accounting row (kept in the state).")

    end_reason = Unicode(usage.FAILED, help="Why the open row ends if it ends now without a stop request.")

    @property
    def book(self):
        return usage.book(self.usage_db_url) if self.usage_db_url else None

    def user_groups(self):
        """``{group: [member names]}`` of this user's hub groups."""
        return {g.name: [u.name for u in g.users] for g in getattr(self.user, "groups", [])}

    def quota_refusal(self, profile, now):
        """Why this start breaks a quota, or None (reads the rows of the user and group members)."""
        groups = self.user_groups()
        watched = quotas.watched_users(self.quotas, self.user.name, groups)
        rows = self.book.rows(users=watched, since=now - quotas.WINDOW)
        return quotas.refusal(self.quotas, self.user.name, self.name, groups, rows, int(profile.get("gpus", 0)), now)

    def profile_refusal(self, profile):  # the spawn page: a profile over a quota is disabled, with the reason
        return self.quota_refusal(profile, usage.utcnow()) if self.book is not None else None

    def quota_notice(self):
        """The spawn page's line of the user's own limits and what they use of them, or ``""``."""
        limits = quotas.user_limits(self.quotas, self.user.name)
        if self.book is None or not limits:
            return ""
        now = usage.utcnow()
        rows = [r for r in self.book.rows(users=[self.user.name], since=now - quotas.WINDOW)
                if not (r["server"] == self.name and r["end"] is None)]
        running = [r for r in rows if r["end"] is None]
        used = {"servers": sum(1 for r in running if r.get("kind", "server") == "server"),
                "gpus": sum(r["gpus"] for r in running),
                "gpu_hours_per_week": round(quotas.gpu_hours(rows, now), 1)}
        names = {"servers": "servers at once", "gpus": "GPUs at once", "gpu_hours_per_week": "GPU-hours in the last 7 days"}
        text = "; ".join(f"{names[k]}: {used[k]:g} of {v:g}" for k, v in limits.items())
        base = getattr(getattr(self, "hub", None), "base_url", "/hub/")
        return (f'<p class="deepvre-quota">Your limits: {html.escape(text)}. '
                f'<a href="{html.escape(base)}usage">Your usage</a></p>')

    def admit(self, profile):
        """Check the quotas, take the GPUs, open the row (synchronous: no other spawn in between)."""
        if self.book is None:
            self.hold_gpus(profile)
            return
        self.close_usage()  # a row left open by an earlier start of this server
        sweep_once(self.book, self.user.db, self.log)
        now = usage.utcnow()
        why = self.quota_refusal(profile, now)
        if why:
            self.log.info("deepvre: quota refused %s: %s", self.owner, why)
            raise refusal(429, why)
        self.hold_gpus(profile)
        self.usage_id = self.book.open(self.user.name, self.name, profile["slug"], self.gpu_ids, start=now)
        self.end_reason = usage.FAILED

    async def admit_queued(self, profile):
        """:meth:`admit`, after a wait in the GPU queue when free GPUs are all that is missing (a
        quota refusal comes at once, not after the wait, and is checked again at the turn); a
        server admitted from the queue tells its user when it is ready (:meth:`notice_when_ready`)."""
        count = int(profile.get("gpus", 0))
        try:
            if not self.needs_queue(count):
                self.admit(profile)
                self.notice_when_ready(profile, None)
                return
            if self.book is not None:
                why = self.quota_refusal(profile, usage.utcnow())
                if why:
                    self.log.info("deepvre: quota refused %s: %s", self.owner, why)
                    raise refusal(429, why)
            queued = time.monotonic()
            await self.wait_for_gpus(count)
            try:
                self.admit(profile)  # no await since the turn came: nobody took the GPUs
                self.notice_when_ready(profile, time.monotonic() - queued)
                woke = self.gpu_queue.notified_at
                self.log.info("deepvre: %s admitted from the GPU queue, %.1f ms after the wake-up", self.owner,
                              (time.monotonic() - woke) * 1000 if woke else -1)
            finally:
                self.gpu_queue.leave(self.owner)
        finally:
            self.gpus_decided = True

    # --- telling the user (notify) ---------------------------------------------------------

    user_email = None  # from the auth state (run_auth_state_hook)
    _notices = set()  # the running notice tasks (a reference, so none is collected mid-way)

    async def run_auth_state_hook(self, auth_state):
        self.user_email = notify.address({}, self.user.name, auth_state)
        return await super().run_auth_state_hook(auth_state)

    def email_address(self):
        signup = None
        try:
            from nativeauthenticator.orm import UserInfo

            info = UserInfo.find(self.user.db, self.user.name)
            signup = info.email if info is not None else None
        except Exception:  # another authenticator: no such table
            self.user.db.rollback()
        return self.user_email or notify.address(self.notify.get("email"), self.user.name, None, signup)

    def notice_when_ready(self, profile, waited):
        """Once this spawn is over and the server ready (with its proxy route), tell the user
        (``waited``: seconds in the GPU queue; None: it did not queue). Never blocks the spawn."""
        if not notify.wanted(self.notify, waited is not None):
            return
        task = asyncio.ensure_future(self._notice(self._spawn_future, profile, list(self.gpu_ids), waited))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _notice(self, spawn, profile, gpu_ids, waited):
        try:
            if spawn is not None:
                await asyncio.shield(spawn)
            else:
                while self.pending:
                    await asyncio.sleep(0.5)
        except BaseException:
            return  # the spawn failed or was cancelled: nothing to tell
        if not self.ready:
            return
        try:
            url = notify.server_url(self.public_hub_url, self.server.base_url)
            payload = notify.event(self.user.name, self.name, profile["slug"], gpu_ids, url, waited)
            await notify.tell(self.notify, payload, self.email_address(), self.log)
        except Exception:
            self.log.exception("deepvre: telling %s that %s is ready failed", self.user.name, self.owner)

    def close_usage(self, reason=None, who=None):
        if self.usage_id and self.book is not None:
            self.book.close(self.usage_id, reason or self.end_reason, who)
            self.log.info("deepvre: usage of %s ended (%s)", self.owner, reason or self.end_reason)
        self.usage_id = 0
        self.end_reason = usage.FAILED

    def note_stop(self):
        """Called at the start of ``stop()``: who asked, for the row."""
        self.end_reason, self.ended_by = stop_reason(self.user.name)
        if self.end_reason == usage.CULLED and self.culled_for_age():
            self.end_reason = usage.LIFETIME
        if self.gpu_queue.waiter(self.owner) is None:
            self.gpu_queue.forget(self.owner)  # a stopped pending spawn gives up its place for good

    ended_by = None

    def culled_for_age(self):
        """Whether the culler stops this server for its maximum lifetime (not for being idle)."""
        culling = getattr(self, "culling", None) or {}
        orm_spawner = self.orm_spawner
        if not culling or orm_spawner is None or orm_spawner.started is None:
            return False
        server = {"state": self.get_state()}
        limits = culler.lifetimes(culling, getattr(self, "profiles", None) or [])
        # to the microsecond (usage.utcnow() drops them): the culler decided on an age a moment ago
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        if not culler.past_max_age(server, orm_spawner.started, now, limits):
            return False
        timeouts = {p["slug"]: p["idle_timeout"] for p in getattr(self, "profiles", None) or [] if p.get("idle_timeout")}
        idle = (now - (orm_spawner.last_activity or orm_spawner.started)).total_seconds()
        return idle < culler.idle_limit(server, culling["timeout"], culling["gpu_timeout"], timeouts)

    async def poll(self):
        status = await super().poll()
        if status is None and self.end_reason == usage.GONE:
            self.end_reason = usage.FAILED  # it ran after the hub's start: ending on its own now is a failure
        return status

    # --- state: survives a hub restart -------------------------------------------------

    def load_state(self, state):
        super().load_state(state)
        self.usage_id = int(state.get("usage_id", 0))
        if self.usage_id:
            self.end_reason = usage.GONE  # until a poll finds it running

    def get_state(self):
        state = super().get_state()
        if self.usage_id:
            state["usage_id"] = self.usage_id
        return state

    def clear_state(self):
        self.close_usage(self.end_reason, self.ended_by)
        self.ended_by = None
        super().clear_state()
