"""What deepvre's spawners share: the profile form, the profile choice and its state,
and the OS account a server runs as.

``ProfileSpawnerMixin`` goes before the JupyterHub spawner class it extends. The spawner says
how many GPUs it can give (:meth:`ProfileSpawnerMixin.gpu_capacity`); everything else about
profiles (the page, the server-side check of a chosen slug, ``user_options`` reduced to that
slug, the slug kept in the state) lives here once. ``LocalGpusMixin`` holds this machine's GPUs
for the local process and container spawners.
"""

import asyncio
import datetime
import functools
import html

from tornado import web
from traitlets import Dict, HasTraits, List, Unicode, default

from deepvre.site import profiles

from . import accounts, culler, gpu_queue, gpus


def refusal(status, message):
    """An HTTP error whose message JupyterHub shows to the user as is (API and spawn page)."""
    error = web.HTTPError(status, message)
    error.jupyterhub_message = message
    return error


class AccountSettings(HasTraits):
    """Who a server may run as: the ``accounts:`` and ``hub.personal_user`` settings (local and Slurm)."""

    account_group = Unicode(
        accounts.MARKER_GROUP,
        config=True,
        help="""The group every OS account the hub makes is put in (created if missing); an existing
        account outside it is never given to a hub user (``accounts.group``).

        Example: ``"deepvre-users"``
        """,
    )

    allowed_existing_accounts = List(
        Unicode(),
        config=True,
        help="""Existing OS accounts outside ``account_group`` that the hub user of the same name may
        still use (``accounts.allow_existing``), e.g. an account made before the hub.

        Example: ``["alice"]``
        """,
    )

    personal_user = Unicode(
        "",
        config=True,
        help="""Personal mode: the one non-admin hub user who may start servers (``hub.personal_user``);
        empty: admins only.

        Example: ``"alice"``
        """,
    )


class ProfileSpawnerMixin(AccountSettings):
    """The hardware-profile form and choice, for a spawner class that comes after it."""

    profiles = List(
        Dict(),
        config=True,
        help="""Hardware profiles offered on the spawn page (the ``profiles:`` settings list).

        Example: ``[{"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1, "groups": ["gpu-users"]}]``
        """,
    )

    profile_slug = Unicode(help="Slug of the profile this server was started with (kept in the state).")

    # {key in the spawner's state: text trait}: restored at a hub's start, saved when not empty
    state_traits = {"profile": "profile_slug"}

    personal_mode = False  # the local spawner makes it a setting

    def gpu_capacity(self):
        """``(free, total, line)``: GPUs a profile may ask for now, the most there are, and the
        page's sentence about them."""
        raise NotImplementedError

    async def prepare_form(self):
        """Anything slow the form needs, done off the event loop (the local GPU discovery)."""

    # --- the spawn page --------------------------------------------------------------

    def user_profiles(self):
        """The profiles this user may choose (group restriction applied)."""
        groups = [g.name for g in getattr(self.user, "groups", [])]
        return profiles.visible_profiles(self.profiles or [profiles.FALLBACK_PROFILE], groups)

    @default("options_form")
    def _default_options_form(self):
        async def form(spawner):
            await spawner.prepare_form()
            return spawner.render_options_form()

        return form

    def render_options_form(self):
        """The spawn page: each profile, what it gives, the GPUs, and why one is disabled."""
        free, total, gpu_line = self.gpu_capacity()
        choices = self.user_profiles()
        reasons = {p["slug"]: self.gpu_unavailable(p, free, total) or self.profile_refusal(p) for p in choices}
        chosen = profiles.default_profile([p for p in choices if not reasons[p["slug"]]])
        notice = self.form_notice()
        parts = [notice] if notice else []
        parts.append(f'<p class="deepvre-gpus-free">{html.escape(gpu_line)}</p>')
        for p in choices:
            reason = reasons[p["slug"]]
            attrs = " disabled" if reason else (" checked" if p is chosen else "")
            slug = html.escape(p["slug"], quote=True)
            why = f'<br><em class="deepvre-unavailable">Unavailable: {html.escape(reason)}</em>' if reason else ""
            note = "" if reason else self.gpu_note(p, free)
            why += f'<br><em class="deepvre-queue">{html.escape(note)}</em>' if note else ""
            parts.append(
                f'<div class="radio deepvre-profile" data-profile="{slug}"><label>'
                f'<input type="radio" name="profile" value="{slug}"{attrs}> '
                f"<strong>{html.escape(p['display_name'])}</strong>: {html.escape(profiles.summary(p))}"
                f"<br><small>{html.escape(p.get('description') or '')}</small>{why}</label></div>"
            )
        return "\n".join(parts)

    def form_notice(self):
        """An HTML warning above the profiles, or ``""``."""
        return ""

    def gpu_unavailable(self, profile, free, total):
        """Why the machine's GPUs do not allow ``profile`` now, or None."""
        return profiles.unavailable_reason(profile, free, total)

    def gpu_note(self, profile, free):
        """A line under an available profile about its GPUs (the queue), or ``""``."""
        return ""

    def profile_refusal(self, profile):
        """Why this user may not start ``profile`` now besides the machine's GPUs (a quota), or None."""
        return None

    def options_from_form(self, formdata):
        return {"profile": formdata.get("profile", [""])[0]}

    # --- the choice ------------------------------------------------------------------

    def chosen_profile(self):
        """The profile named in ``user_options`` (or the default), refused if the user may not use it."""
        choices = self.user_profiles()
        slug = (self.user_options or {}).get("profile")
        if not slug:
            return profiles.default_profile(choices)
        profile = profiles.find_profile(choices, slug) if isinstance(slug, str) else None
        if profile is None:
            raise refusal(400, f"Unknown hardware profile {slug!r} (or not available to you).")
        return profile

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return reduce_user_options

    def reduce_user_options(self):
        """Keep only the chosen profile's slug in ``user_options``; return the profile.

        A start request's JSON body becomes ``user_options`` as is, and batchspawner writes every
        key of it into the batch script (``partition``, ``gres``, ``runtime``, ``options`` ...): the
        user chooses a profile, and everything else comes from that profile.
        """
        profile = self.chosen_profile()
        self.user_options = {"profile": profile["slug"]}
        return profile

    @default("pre_spawn_hook")
    def _default_pre_spawn_hook(self):
        return ensure_account_hook

    # --- state: survives a hub restart -------------------------------------------------

    def load_state(self, state):
        super().load_state(state)
        for key, trait in self.state_traits.items():
            setattr(self, trait, state.get(key, ""))

    def get_state(self):
        state = super().get_state()
        for key, trait in self.state_traits.items():
            if getattr(self, trait):
                state[key] = getattr(self, trait)
        return state

    def clear_state(self):
        super().clear_state()
        self.profile_slug = ""


# One allocator and one queue per hub process and GPU settings, shared by every spawner and the
# batch runs' admission (run_admission), built on first use.
_ALLOCATORS = {}
_QUEUES = {}


def allocator_key(gpu_settings):
    return repr(sorted(gpu_settings.items()))


# Called with each new allocator (the batch runs a restarted hub finds still holding GPUs: run_admission)
ALLOCATOR_RESTORERS = []


def shared_allocator(gpu_settings, log):
    """This machine's :class:`gpus.GpuAllocator` for ``gpu_settings`` (one per hub process)."""
    key = allocator_key(gpu_settings)
    if key not in _ALLOCATORS:
        found = gpus.machine_gpus(gpu_settings)
        log.info("GPUs for local servers: %s", ", ".join(g.index for g in found) or "none")
        allocator = _ALLOCATORS.setdefault(key, gpus.GpuAllocator([g.index for g in found]))
        for restore in ALLOCATOR_RESTORERS:
            restore(gpu_settings, allocator)
    return _ALLOCATORS[key]


def queue_settings_of(gpu_settings):
    return {"enabled": True, "timeout": 86400, "restart_grace": 600, "priorities": {},
            **(gpu_settings.get("queue") or {})}


def shared_queue(gpu_settings, book, log):
    """This machine's :class:`gpu_queue.GpuQueue`; made at first use (a hub's start), with the
    places of the requests that waited before a restart, kept for ``gpus.queue.restart_grace`` s."""
    key = allocator_key(gpu_settings)
    if key not in _QUEUES:
        queue = _QUEUES[key] = gpu_queue.GpuQueue(book)
        if queue.restore():
            grace = queue_settings_of(gpu_settings)["restart_grace"]
            log.info("deepvre: GPU queue from before the restart: %s (places kept %d s)",
                     ", ".join(w.owner for w in queue.waiting), grace)
            asyncio.get_event_loop().call_later(grace, queue.drop_restored)
    return _QUEUES[key]


def group_priority(gpu_settings, groups):
    """The highest ``gpus.queue.priorities`` of the group names ``groups`` (0 without one)."""
    priorities = queue_settings_of(gpu_settings)["priorities"]
    return max([priorities[g] for g in groups if g in priorities] + [0])


class LocalGpusMixin(HasTraits):
    """This machine's GPUs, each held by one server at a time (local processes and containers).

    Goes before :class:`ProfileSpawnerMixin`. One allocator per hub process; the ids a server
    holds live in its state, so a restarted hub rebuilds the allocation from the servers still
    running. A spawner may act when GPUs come back (:meth:`gpus_restored`) or go
    (by extending :meth:`release_gpus`).
    """

    gpu_settings = Dict(
        config=True,
        help="""How to find this machine's GPUs (the ``gpus:`` settings section).

        Example: ``{"discovery": "list", "devices": [{"index": "0"}, {"index": "1"}]}``
        """,
    )

    culling = Dict(
        config=True,
        help="""The idle culler's settings (the ``culling:`` section): the GPU queue's estimate of when
        a GPU frees up comes from the running GPU servers' idle limits, and "at the latest" from
        their maximum lifetimes (``max_age``, ``gpu_max_age``).

        Example: ``{"enabled": True, "timeout": 3600, "gpu_timeout": 900, "every": 60}``
        """,
    )

    gpu_ids = List(help="GPU indices this server holds (kept in the spawner state).")

    gpus_decided = False  # this spawn is past the GPU queue (admitted or refused): progress() stops
    base_start_timeout = None  # the configured start_timeout; a GPU spawn gets the queue's wait on top

    @property
    def owner(self):
        return f"{self.user.name}/{self.name}"

    def _allocator_key(self):
        return allocator_key(self.gpu_settings)

    @property
    def allocator(self):
        return shared_allocator(self.gpu_settings, self.log)

    async def discover_gpus(self):
        """Build the shared allocator in a thread (``nvidia-smi`` can take seconds) if not done yet."""
        if self._allocator_key() not in _ALLOCATORS:
            await asyncio.to_thread(lambda: self.allocator)

    async def prepare_form(self):
        await self.discover_gpus()

    def gpu_capacity(self):
        free, total = len(self.allocator.free()), self.allocator.total
        return free, total, f"GPUs free now: {free} of {total}"

    # --- the GPU queue (gpu_queue) ------------------------------------------------------

    @property
    def gpu_queue(self):
        """The machine's queue (:func:`shared_queue`)."""
        return shared_queue(self.gpu_settings, getattr(self, "book", None), self.log)

    @property
    def queue_settings(self):
        return queue_settings_of(self.gpu_settings)

    def queue_priority(self):
        """The highest ``gpus.queue.priorities`` of this user's groups (0 without one)."""
        return group_priority(self.gpu_settings, [g.name for g in getattr(self.user, "groups", [])])

    def gpu_unavailable(self, profile, free, total):
        """With the queue on, too few free GPUs is no reason: the spawn waits (:meth:`gpu_note`)."""
        wanted = int(profile.get("gpus", 0))
        if self.queue_settings["enabled"] and 0 < wanted <= total:
            return None
        return super().gpu_unavailable(profile, free, total)

    def gpu_note(self, profile, free):
        wanted = int(profile.get("gpus", 0))
        waiting = len(self.gpu_queue.waiting)
        if not wanted or (wanted <= free and not waiting):
            return ""
        return (f"Needs {wanted} GPU{'s' if wanted > 1 else ''}, {free} free now: your server will wait in the "
                f"GPU queue ({waiting} waiting now) and start when GPUs free up. You may close the page.")

    def needs_queue(self, count):
        """Whether a request of ``count`` GPUs waits: the queue is on, the machine has that many, the
        user's ``gpus.per_user`` allows them, and they are not free now (or others wait first).
        Otherwise the allocation answers at once (GPUs, or a refusal waiting would not cure)."""
        if count <= 0 or not self.queue_settings["enabled"] or count > self.allocator.total:
            return False
        per_user = self.gpu_settings.get("per_user")
        user = self.user.name + "/"
        theirs = sum(1 for o in self.allocator.holders.values() if o.startswith(user) and o != self.owner)
        if per_user is not None and theirs + count > per_user:
            return False
        return self.gpu_queue.must_wait(count, len(self.allocator.free()), self.queue_priority())

    async def wait_for_gpus(self, count):
        """Queue, wait for this request's turn; returns with the GPUs free for a synchronous
        allocation (the caller leaves the queue after it). Refused after ``gpus.queue.timeout``."""
        queue, timeout = self.gpu_queue, self.queue_settings["timeout"]
        queue.join(self.owner, count, self.queue_priority())
        self.log.info("deepvre: %s waits for %d GPU(s), %s in the queue", self.owner, count,
                      gpu_queue.ordinal(queue.place(self.owner)))
        try:
            await asyncio.wait_for(queue.wait_turn(self.owner, lambda: len(self.allocator.free())), timeout)
        except TimeoutError:
            queue.leave(self.owner)
            raise refusal(503, f"No GPU freed up in {timeout} s of waiting in the queue; try again later.") from None
        except BaseException:  # cancelled: the user stopped the pending server (stop() forgets the row), or the hub exits
            queue.leave(self.owner, stored=True)
            raise

    def gpu_releases(self, now):
        """``(likely, latest)``: per running GPU server ``(when, gpus, (user, why))``, when the idle
        culler stops it if it stays idle from now on (or at its maximum lifetime, if sooner), and
        when it stops at the latest, at its maximum lifetime (``when`` None: no lifetime). Nothing
        without culling."""
        if not self.culling or not self.culling.get("enabled", True):
            return [], []
        from jupyterhub import orm

        timeouts = {p["slug"]: p["idle_timeout"] for p in self.profiles if p.get("idle_timeout")}
        lifetimes = culler.lifetimes(self.culling, self.profiles)
        counts = {}
        for owner in self.allocator.holders.values():
            counts[owner] = counts.get(owner, 0) + 1
        likely, latest = [], []
        for owner, count in counts.items():
            user, server = owner.split("/", 1)
            found = (self.user.db.query(orm.Spawner).join(orm.User, orm.Spawner.user_id == orm.User.id)
                     .filter(orm.User.name == user, orm.Spawner.name == server).first())
            if found is None or found.server is None:
                continue
            model = {"state": found.state}
            limit = culler.idle_limit(model, self.culling["timeout"], self.culling["gpu_timeout"], timeouts)
            since = found.last_activity or found.started or now
            idle_when = max(since + datetime.timedelta(seconds=limit), now)
            age = culler.max_age(model, lifetimes)
            end = None
            if age and found.started:  # the culler looks every `every` seconds
                end = max(found.started + datetime.timedelta(seconds=age + self.culling.get("every", 60)), now)
            latest.append((end, count, (user, f"maximum age ({gpu_queue.duration(age)})" if age else "")))
            if end is not None and end < idle_when:
                likely.append((end, count, (user, f"maximum age ({gpu_queue.duration(age)})")))
            else:
                likely.append((idle_when, count, (user, f"idle limit {limit // 60} min")))
        return likely, latest

    def queue_message(self, now):
        place = self.gpu_queue.place(self.owner)
        waiter = self.gpu_queue.waiter(self.owner)
        needed = self.gpu_queue.gpus_ahead(self.owner) + waiter.gpus - len(self.allocator.free())
        # the same for every page: once per second and set of GPU holders (a change wakes every page)
        key = (tuple(sorted(self.allocator.holders.items())), now.replace(microsecond=0))
        likely, latest = self.gpu_queue.shared(key, lambda: self.gpu_releases(now))
        return gpu_queue.progress_message(place, gpu_queue.estimate(likely, needed), now,
                                          gpu_queue.estimate(latest, needed))

    async def progress(self):
        """Progress events: this spawn's place in the GPU queue and the estimate, again at each
        change of the queue (and each minute), until it is admitted; then the spawner's own. After
        each wake-up a bare event (no message, no line on the page): JupyterHub notices a stream
        its reader left only when it writes, and a left page's stream would otherwise wake and
        recompute at every change of the queue until the spawn ends (benchmarks/hub_api_load.py)."""
        last = None
        while not self.gpus_decided:
            queued = self.gpu_queue.place(self.owner) is not None
            if queued:
                message = self.queue_message(datetime.datetime.now(datetime.UTC).replace(tzinfo=None))
                if message != last:
                    yield {"progress": 5, "message": message}
                    last = message
            await self.gpu_queue.changed(60 if queued else 0.5)
            if queued:
                yield {"progress": 5}
        async for event in super().progress():
            yield event

    def run_pre_spawn_hook(self):
        """Before ``start()`` (JupyterHub reads ``start_timeout`` before ``start()`` runs): a GPU
        spawn may wait in the queue for ``gpus.queue.timeout`` on top of its start timeout."""
        if self.base_start_timeout is None:
            self.base_start_timeout = self.start_timeout
        self.gpus_decided = False
        try:
            count = int(self.chosen_profile().get("gpus", 0))
        except web.HTTPError:
            count = 0
        queued = count > 0 and self.queue_settings["enabled"]
        self.start_timeout = self.base_start_timeout + (self.queue_settings["timeout"] if queued else 0)
        return super().run_pre_spawn_hook()

    async def own_start(self, start):
        """Await ``start`` (the spawner's own start, after the GPU queue) within the configured start
        timeout: JupyterHub's limit for a GPU spawn also covered its wait in the queue."""
        if self.base_start_timeout is None or self.start_timeout <= self.base_start_timeout:
            return await start
        return await asyncio.wait_for(start, self.base_start_timeout)

    def hold_gpus(self, profile):
        """Give this server the GPUs ``profile`` asks for (409 when they are not free)."""
        try:
            self.gpu_ids = self.allocator.allocate(self.owner, profile.get("gpus", 0), self.gpu_settings.get("per_user"))
        except gpus.NoFreeGpus as err:
            raise refusal(409, str(err)) from None

    def release_gpus(self):
        if self.allocator.release(self.owner):
            self.gpu_queue.notify()  # the head of the queue that now fits starts at once
        self.gpu_ids = []

    def gpus_restored(self):
        """Called when a hub's start gave this running server its GPUs back."""

    # --- state: survives a hub restart -------------------------------------------------

    def load_state(self, state):
        super().load_state(state)
        if self.queue_settings["enabled"]:
            self.gpu_queue  # noqa: B018  (at a hub's start: the places of the requests that waited)
        self.gpu_ids = list(state.get("gpu_ids", []))
        if self.gpu_ids:
            self.allocator.restore(self.owner, self.gpu_ids)
            self.gpus_restored()

    def get_state(self):
        state = super().get_state()
        if self.gpu_ids:
            state["gpu_ids"] = list(self.gpu_ids)
        return state

    def clear_state(self):
        super().clear_state()
        self.release_gpus()


def reduce_user_options(spawner, user_options):
    """``Spawner.apply_user_options``: refuse an unknown profile early, keep only its slug."""
    spawner.reduce_user_options()


# Two first starts of one user at once both ran useradd (one failed: "already exists"), and the
# other's server could start before useradd had made its home the user's
_ACCOUNT_LOCK = asyncio.Lock()


async def ensure_account_hook(spawner):
    """Pre-spawn hook: the OS account the server will run under, or a refusal the user sees.

    Personal mode: only an admin or ``personal_user`` (the server runs as the hub itself).
    Otherwise the user's own account: created (private home, in ``account_group``) if missing; an
    existing one only if the hub made it (in ``account_group``) or it is allowed by name.
    A missing account is made in a thread: ``useradd`` takes tens of milliseconds, which would hold
    up every other spawn. An existing one is only checked (microseconds, less than a thread hop).
    """
    name = spawner.user.name
    if spawner.personal_mode:
        why = accounts.personal_refusal(name, spawner.user.admin, spawner.personal_user)
        if why:
            spawner.log.warning("deepvre: %s", why)
            raise refusal(403, why)
        return
    ensure = functools.partial(accounts.ensure_account, name, spawner.account_group,
                               tuple(spawner.allowed_existing_accounts))
    try:
        async with _ACCOUNT_LOCK:  # one at a time: a start never sees an account useradd is still making
            if accounts.exists(name):
                ensure()
            else:
                await asyncio.to_thread(ensure)
    except accounts.AccountError as err:
        spawner.log.warning("deepvre: refused an OS account to %s: %s", name, err)
        raise refusal(403, str(err)) from None
