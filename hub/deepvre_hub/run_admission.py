"""Batch runs in the quotas, the GPU queue and the usage accounting: the hub API
``/hub/api/deepvre/runs`` (local mode).

A ``deepvre run`` with a profile, started inside a user's server, asks here before its notebook
starts (:mod:`deepvre.runs.admission`, with the server's own API token):

- ``POST /hub/api/deepvre/runs`` ``{"run": ID, "profile": SLUG, "pid": PID}``: the quotas are
  checked (429 naming the limit and when it frees up), then the run takes the profile's GPUs
  (200, ``{"state": "admitted", "gpu_ids": [...]}``) or waits in the same GPU queue as the spawns
  (202, ``{"state": "queued", "place": N, "message": ...}``). 409: more GPUs than the machine
  has, or than ``gpus.per_user`` allows.
- ``GET /hub/api/deepvre/runs/ID``: the same answer now (the worker polls while it waits).
- ``DELETE /hub/api/deepvre/runs/ID`` ``{"state": "done" | "failed" | "cancelled"}``: the run
  ended: its GPUs go back (the queue's head starts), its row is closed with that reason.

The caller is the token's owner and nobody else (no user name in the path): a token needs the
``users:activity`` scope for its own user, which a server's own token has. The ``pid`` must be a
process of the user's OS account (as root); a run whose process is gone, checked at each call and
every :data:`CHECK_EVERY` seconds, loses its place or its GPUs and its row ends as ``gone``.
Admitted runs are kept in the usage database (``deepvre_runs``): a restarted hub gives them their
GPUs back while their process runs.
One row per admitted run, of kind ``run``, with the run id as its server.
"""

import asyncio
import logging
import os
import pwd
import re
from dataclasses import dataclass, field

from jupyterhub.apihandlers import APIHandler
from tornado import web

from deepvre.site import profiles as site_profiles

from . import accounts, gpu_devices, gpu_queue, gpus, quotas, usage
from .accounting import sweep_once
from .spawn_form import ALLOCATOR_RESTORERS, group_priority, queue_settings_of, shared_allocator, shared_queue

CHECK_EVERY = 10  # seconds between checks that the waiting and admitted runs' processes still run
MAX_WAITING = 10  # runs one user may have waiting in the GPU queue at once
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # deepvre.runs.store's run ids
ENDINGS = {"done": usage.DONE, "failed": usage.FAILED, "cancelled": usage.CANCELLED}


@dataclass
class RunRequest:
    user: str
    run: str
    profile: str
    gpus: int
    pid: int
    uid: int = None
    state: str = "queued"  # queued, admitted, refused, ended
    gpu_ids: list = field(default_factory=list)
    usage_id: int = 0
    message: str = ""
    code: int = 0  # the HTTP status of a refusal at its turn
    task: object = None

    @property
    def owner(self):
        return owner_of(self.user, self.run)


def owner_of(user, run):
    """The allocator's and the queue's name of a run (``/`` and ``:`` keep it apart from servers)."""
    return f"{user}/run:{run}"


def process_alive(pid, uid=None):
    """Whether process ``pid`` runs (and belongs to ``uid``, if given)."""
    try:
        info = os.stat(f"/proc/{int(pid)}")
    except (OSError, ValueError):
        return False
    return uid is None or info.st_uid == uid


class RunAdmissions:
    """The hub's batch-run requests (one per hub process, :func:`admissions`)."""

    def __init__(self, settings, url, log):
        self.profiles = settings.get("profiles") or []
        self.gpu_settings = settings["gpus"]
        self.quotas = settings["quotas"]
        self.account_settings = settings.get("accounts")  # the OS accounts the hub gives servers (account_uid)
        self.url = url
        self.log = log
        self.requests = {}  # owner -> RunRequest
        self._checker = None

    @property
    def book(self):
        return usage.book(self.url)

    @property
    def allocator(self):
        return shared_allocator(self.gpu_settings, self.log)

    @property
    def queue(self):
        return shared_queue(self.gpu_settings, self.book, self.log)

    def answer(self, request):
        body = {"state": request.state, "run": request.run, "profile": request.profile, "gpus": request.gpus,
                "gpu_ids": list(request.gpu_ids), "message": request.message}
        if request.state == "queued":
            place = self.queue.place(request.owner)
            body["place"] = place
            body["message"] = (f"Waiting for a GPU: {gpu_queue.ordinal(place)} in the queue (GPUs free now: "
                               f"{len(self.allocator.free())} of {self.allocator.total}; "
                               f"{self.queue.gpus_ahead(request.owner)} wanted ahead)") if place else request.message
        return body

    # --- the checks ------------------------------------------------------------------

    def account_uid(self, name):
        """The uid the run's process must have: the user's OS account when the hub is root, one the
        hub gives servers (never root's nor another system or foreign account's: a user without an
        account, who never started a server, is refused); in personal mode the hub's own."""
        if not accounts.hub_is_root():
            return os.geteuid()
        settings = self.account_settings or {}
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise web.HTTPError(403, f"{name} has no OS account on this machine yet: start a server first") from None
        if entry.pw_uid < accounts.uid_min() or not (
                accounts.in_group(entry, settings.get("group") or accounts.MARKER_GROUP)
                or name in (settings.get("allow_existing") or ())):
            raise web.HTTPError(403, f"the OS account {name!r} is not one this hub gives servers")
        return entry.pw_uid

    def refusal(self, user, groups, request):
        """Why this run may not take its GPUs now (a quota), or None."""
        now = usage.utcnow()
        watched = quotas.watched_users(self.quotas, user, groups)
        rows = self.book.rows(users=watched, since=now - quotas.WINDOW)
        return quotas.refusal(self.quotas, user, request.run, groups, rows, request.gpus, now, kind="run")

    def check_processes(self):
        """Runs whose process is gone lose their place or their GPUs."""
        for request in list(self.requests.values()):
            if request.state in ("queued", "admitted") and not process_alive(request.pid, request.uid):
                self.log.warning("deepvre: run %s: its process %s is gone", request.owner, request.pid)
                self.end(request, usage.GONE)

    async def _check_loop(self):
        while True:
            await asyncio.sleep(CHECK_EVERY)
            try:
                self.check_processes()
            except Exception:
                self.log.exception("deepvre: checking the runs' processes failed")

    def restore(self, gpu_settings, allocator):
        """At a hub's start (its allocator's making): the runs an earlier hub admitted keep their GPUs
        while their process runs; the others' rows end as ``gone``."""
        if gpu_settings != self.gpu_settings:
            return
        for row in self.book.admitted_runs():
            request = RunRequest(row["user"], row["run"], row["profile"], len(row["gpu_ids"].split(",")) if
                                 row["gpu_ids"] else 0, row["pid"], row["uid"], state="admitted",
                                 usage_id=row["usage_id"])
            if not process_alive(request.pid, request.uid):
                self.book.forget_run(request.owner)
                self.book.close(request.usage_id, usage.GONE)
                self.log.warning("deepvre: run %s ended while the hub was down: its row ends as gone", request.owner)
                continue
            request.gpu_ids = allocator.restore(request.owner, row["gpu_ids"].split(",") if row["gpu_ids"] else [])
            request.message = f"GPUs: {', '.join(request.gpu_ids) or 'none'}"
            self.requests[request.owner] = request
            self.book.opened_here.add(request.usage_id)  # held: the first spawn's sweep leaves it open
            self.log.info("deepvre: run %s keeps GPUs [%s] across the restart", request.owner,
                          ",".join(request.gpu_ids))
        if self.requests and self._checker is None:
            try:
                self._checker = asyncio.ensure_future(self._check_loop())
            except RuntimeError:  # no event loop yet: the first request starts the checks
                pass

    # --- requests --------------------------------------------------------------------

    def request(self, user, groups, db, run, slug, pid):
        """Admit, queue or refuse ``user``'s run (raises ``web.HTTPError`` for a refusal); ``groups``:
        ``{group: [member names]}`` of the user's groups; ``db``: the hub's database session."""
        if self._checker is None:
            self._checker = asyncio.ensure_future(self._check_loop())
        self.check_processes()
        owner = owner_of(user, run)
        known = self.requests.get(owner)
        if known is not None and known.state in ("queued", "admitted"):
            return known  # asked again (a retried call): the same answer
        profile = site_profiles.find_profile(self.profiles, slug)
        if profile is None:
            known = ", ".join(p["slug"] for p in self.profiles) or "none"
            raise web.HTTPError(400, f"no profile {slug!r} on this hub (profiles: {known})")
        uid = self.account_uid(user)
        if not process_alive(pid, uid):
            raise web.HTTPError(403, f"process {pid} is not a running process of {user}'s account")
        request = RunRequest(user, run, slug, int(profile.get("gpus", 0)), pid, uid)
        sweep_once(self.book, db, self.log)
        why = self.refusal(user, groups, request)
        if why:
            self.log.info("deepvre: quota refused run %s: %s", owner, why)
            raise web.HTTPError(429, why)
        allocator, queue, settings = self.allocator, self.queue, queue_settings_of(self.gpu_settings)
        waiting = sum(1 for r in self.requests.values() if r.user == user and r.state == "queued")
        if waiting >= MAX_WAITING:
            raise web.HTTPError(429, f"{waiting} of your runs wait in the GPU queue already (at most {MAX_WAITING}); "
                                     "start more when one of them has started.")
        if request.gpus > allocator.total:
            raise web.HTTPError(409, f"This profile needs {request.gpus} GPUs; this machine has {allocator.total}.")
        per_user = self.gpu_settings.get("per_user")
        theirs = sum(1 for o in allocator.holders.values() if o.startswith(user + "/"))
        priority = group_priority(self.gpu_settings, list(groups))
        self.requests[owner] = request
        if (request.gpus and settings["enabled"] and not (per_user is not None and theirs + request.gpus > per_user)
                and queue.must_wait(request.gpus, len(allocator.free()), priority)):
            queue.join(owner, request.gpus, priority)
            request.task = asyncio.ensure_future(self._wait(request, groups, settings["timeout"]))
            self.log.info("deepvre: run %s waits for %d GPU(s), %s in the queue", owner, request.gpus,
                          gpu_queue.ordinal(queue.place(owner)))
            return request
        try:
            self.admit(request)
        except web.HTTPError:
            del self.requests[owner]
            raise
        return request

    def admit(self, request):
        """Take the GPUs and open the row (synchronous: nobody takes the GPUs in between)."""
        try:
            request.gpu_ids = self.allocator.allocate(request.owner, request.gpus, self.gpu_settings.get("per_user"))
        except gpus.NoFreeGpus as err:
            raise web.HTTPError(409, str(err)) from None
        try:
            self.change_devices(gpu_devices.grant, request)
        except (gpu_devices.DevicesUnrestricted, OSError) as err:
            self.release_gpus(request)
            raise web.HTTPError(503, f"The GPU device nodes cannot be restricted to your account ({err}).") from None
        request.usage_id = self.book.open(request.user, request.run, request.profile, request.gpu_ids, kind="run")
        self.book.admit_run(request.owner, request.user, request.run, request.profile, request.gpu_ids, request.pid,
                            request.uid, request.usage_id)  # a restarted hub keeps it (restore)
        request.state, request.message = "admitted", f"GPUs: {', '.join(request.gpu_ids) or 'none'}"
        self.log.info("deepvre: run %s admitted with GPUs [%s]", request.owner, ",".join(request.gpu_ids))

    async def _wait(self, request, groups, timeout):
        queue = self.queue
        try:
            await asyncio.wait_for(queue.wait_turn(request.owner, lambda: len(self.allocator.free())), timeout)
            why = self.refusal(request.user, groups, request)  # checked again at the turn
            if why:
                request.state, request.message, request.code = "refused", why, 429
                return
            try:
                self.admit(request)  # no await since the turn came
            except web.HTTPError as err:
                request.state, request.message, request.code = "refused", err.log_message, err.status_code
        except TimeoutError:
            request.state, request.code = "refused", 503
            request.message = f"No GPU freed up in {timeout} s of waiting in the queue."
        except RuntimeError:  # it left the queue (ended)
            pass
        finally:
            queue.leave(request.owner)

    def change_devices(self, change, request):
        """Open (``grant``) or take back (``revoke``) the run's GPUs' device nodes for the user's account."""
        if not (request.gpu_ids and self.gpu_settings.get("restrict_devices", True) and accounts.hub_is_root()
                and request.uid not in (None, os.geteuid())):
            return
        nodes = {g.index: g.device for g in gpus.machine_gpus(self.gpu_settings)}
        change([nodes.get(i) or gpus.device_node(i) for i in request.gpu_ids], request.user)

    def release_gpus(self, request):
        if self.allocator.release(request.owner):
            self.queue.notify()  # the head of the queue that now fits starts at once
        request.gpu_ids = []

    def end(self, request, reason):
        """The run ended (or its process is gone): its place or its GPUs go, its row closes."""
        if request.state == "queued":
            if request.task is not None:
                request.task.cancel()
            self.queue.leave(request.owner)
        if request.gpu_ids:
            try:
                self.change_devices(gpu_devices.revoke, request)
            except (gpu_devices.DevicesUnrestricted, OSError, KeyError) as err:
                self.log.error("deepvre: cannot take run %s's GPU device nodes back: %s", request.owner, err)
            self.release_gpus(request)
        if request.state == "admitted":
            self.book.forget_run(request.owner)
        if request.usage_id:
            self.book.close(request.usage_id, reason)
            self.log.info("deepvre: usage of run %s ended (%s)", request.owner, reason)
        request.state, request.usage_id = "ended", 0
        self.requests.pop(request.owner, None)


_ADMISSIONS = {}


def admissions(settings, url, log):
    """The :class:`RunAdmissions` of this hub process."""
    if url not in _ADMISSIONS:
        _ADMISSIONS[url] = RunAdmissions(settings, url, log)
        ALLOCATOR_RESTORERS.append(_ADMISSIONS[url].restore)
    return _ADMISSIONS[url]


class RunsAPIHandler(APIHandler):
    """``/hub/api/deepvre/runs[/ID]``: a user's own batch runs (see the module)."""

    def initialize(self, settings, url):
        self.deepvre_settings = settings
        self.url = url

    @property
    def admissions(self):
        return admissions(self.deepvre_settings, self.url, self.log)

    def caller(self):
        """The token's user, if it may report for itself (``users:activity`` on its own user)."""
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "a user's token is needed")
        if getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "only a user's own server reports its runs")
        scopes = self.expanded_scopes
        if "users:activity" not in scopes and f"users:activity!user={user.name}" not in scopes:
            raise web.HTTPError(403, "this token may not report runs (it lacks users:activity for its user)")
        return user

    def run_id(self, run):
        if not isinstance(run, str) or not RUN_ID.fullmatch(run):
            raise web.HTTPError(400, "run: a run id (letters, digits, '.', '_', '-')")
        return run

    def write_answer(self, request, status=200):
        self.set_status(status)
        self.finish(self.admissions.answer(request))

    async def post(self, run=None):
        if run is not None:
            raise web.HTTPError(405, "POST /hub/api/deepvre/runs, with the run id in the body")
        user = self.caller()
        body = self.get_json_body() or {}
        if not isinstance(body, dict):
            raise web.HTTPError(400, "a JSON object: run, profile, pid")
        run, slug, pid = self.run_id(body.get("run")), body.get("profile"), body.get("pid")
        if not isinstance(slug, str) or not slug:
            raise web.HTTPError(400, "profile: a profile's slug")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
            raise web.HTTPError(400, "pid: the run's process id")
        groups = {g.name: [u.name for u in g.users] for g in user.groups}
        request = self.admissions.request(user.name, groups, self.db, run, slug, pid)
        self.write_answer(request, 202 if request.state == "queued" else 200)

    def find(self, run):
        user = self.caller()
        if run is None:
            raise web.HTTPError(405, "GET or DELETE /hub/api/deepvre/runs/ID")
        self.admissions.check_processes()
        request = self.admissions.requests.get(owner_of(user.name, self.run_id(run)))
        if request is None:
            raise web.HTTPError(404, f"no run {run} of yours is waiting or holding GPUs")
        return request

    async def get(self, run=None):
        request = self.find(run)
        if request.state == "refused":
            self.admissions.requests.pop(request.owner, None)
            raise web.HTTPError(request.code or 503, request.message)
        self.write_answer(request, 202 if request.state == "queued" else 200)

    async def delete(self, run=None):
        request = self.find(run)
        body = self.get_json_body() or {}
        state = body.get("state", "done") if isinstance(body, dict) else "done"
        if state not in ENDINGS:
            raise web.HTTPError(400, f"state: one of {', '.join(ENDINGS)}")
        self.admissions.end(request, ENDINGS[state])
        self.set_status(204)
        self.finish()


def handlers(settings, url):
    """``JupyterHub.extra_handlers`` entries (under the hub's prefix: ``/hub/api/deepvre/runs``);
    the admissions are made now, so a restarted hub's allocator gets the runs' GPUs back."""
    admissions(settings, url, logging.getLogger("JupyterHub"))
    return [(r"/api/deepvre/runs", RunsAPIHandler, {"settings": settings, "url": url}),
            (r"/api/deepvre/runs/([^/]+)", RunsAPIHandler, {"settings": settings, "url": url})]
