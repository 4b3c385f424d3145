"""``DeepvreSpawner``: local processes with hardware profiles, exclusive GPUs and per-user accounts.

Thin glue over the pure pieces: ``profiles`` (choice and environment), ``gpus`` (allocation),
``accounts`` (OS accounts). The GPU ids a server holds live in its spawner state, so a
restarted hub rebuilds the allocation from the servers still running.

Nothing here blocks the hub's event loop while other users spawn: ``useradd`` and the first
GPU discovery (``nvidia-smi``) run in a thread, and the discovery is done once per hub process.
"""

import asyncio
import functools
import html
import os
import sys

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Bool, Dict, Enum, HasTraits, List, Unicode, default

from deepvre.site import profiles

from . import accounts, gpu_devices, gpus, limits

# One allocator per hub process, shared by every spawner (built on first use).
_ALLOCATORS = {}
_DEVICE_NODES = {}  # per gpus settings: {GPU index: its device node}


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


class DeepvreSpawner(AccountSettings, LocalProcessSpawner):
    """Local-mode spawner: a profile chooses cores, memory and GPUs; GPUs are given exclusively."""

    profiles = List(
        Dict(),
        config=True,
        help="""Hardware profiles offered on the spawn page (the ``profiles:`` settings list).

        Example: ``[{"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1, "groups": ["gpu-users"]}]``
        """,
    )

    gpu_settings = Dict(
        config=True,
        help="""How to find this machine's GPUs (the ``gpus:`` settings section).

        Example: ``{"discovery": "list", "devices": [{"index": "0"}, {"index": "1"}]}``
        """,
    )

    personal_mode = Bool(
        config=True,
        help="""Run every server under the hub's own account (the default when the hub is not root).

        Example: ``False`` (as root: each user's server runs under the user's own OS account)
        """,
    )

    @default("personal_mode")
    def _default_personal_mode(self):
        return not accounts.hub_is_root()

    personal_home_template = Unicode(
        "",
        config=True,
        help="""Personal mode: the folder each user's server works in; ``{username}`` is expanded.

        Example: ``"/srv/deepvre/homes/{username}"``
        """,
    )

    enforce_limits = Enum(
        ["auto", "required", "off"],
        default_value="auto",
        config=True,
        help="""Make the kernel enforce the profile's cores and memory (a cgroup per server,
        ``deepvre_hub.limits``): ``auto`` where the machine allows it, else start with advisory
        limits and log why; ``required``: refuse to start without them; ``off``: never.

        Example: ``"required"`` (the ``hub.enforce_limits`` setting)
        """,
    )

    gpu_ids = List(help="GPU indices this server holds (kept in the spawner state).")
    profile_slug = Unicode(help="Slug of the profile this server was started with (kept in the state).")

    # --- profiles and the spawn page -------------------------------------------------

    @property
    def owner(self):
        return f"{self.user.name}/{self.name}"

    @property
    def allocator(self):
        key = repr(sorted(self.gpu_settings.items()))
        if key not in _ALLOCATORS:
            found = gpus.discover_gpus(self.gpu_settings)
            self.log.info("GPUs for local servers: %s", ", ".join(g.index for g in found) or "none")
            _DEVICE_NODES[key] = {g.index: g.device for g in found}
            _ALLOCATORS.setdefault(key, gpus.GpuAllocator([g.index for g in found]))
        return _ALLOCATORS[key]

    @property
    def restricts_devices(self):
        return self.gpu_settings.get("restrict_devices", True) and not self.personal_mode and accounts.hub_is_root()

    def device_nodes(self, gpu_ids):
        nodes = _DEVICE_NODES.get(repr(sorted(self.gpu_settings.items())), {})
        return [nodes.get(i) or gpus.device_node(i) for i in gpu_ids]

    def grant_devices(self):
        """Open this server's GPUs' device nodes to its account (``restrict_devices``)."""
        if not (self.gpu_ids and self.restricts_devices):
            return
        try:
            gpu_devices.grant(self.device_nodes(self.gpu_ids), self.user.name)
        except (gpu_devices.DevicesUnrestricted, OSError) as err:
            raise refusal(503, f"The GPU device nodes cannot be restricted to your account ({err}); "
                               "an administrator must fix this before GPU servers start.") from None

    def revoke_devices(self):
        if not (self.gpu_ids and self.restricts_devices):
            return
        try:
            gpu_devices.revoke(self.device_nodes(self.gpu_ids), self.user.name)
        except (gpu_devices.DevicesUnrestricted, OSError) as err:
            self.log.error("Cannot take %s's GPU device nodes back: %s", self.owner, err)

    async def discover_gpus(self):
        """Build the shared allocator in a thread (``nvidia-smi`` can take seconds) if not done yet."""
        if repr(sorted(self.gpu_settings.items())) not in _ALLOCATORS:
            await asyncio.to_thread(lambda: self.allocator)

    def user_profiles(self):
        """The profiles this user may choose (group restriction applied)."""
        groups = [g.name for g in getattr(self.user, "groups", [])]
        return profiles.visible_profiles(self.profiles or [profiles.FALLBACK_PROFILE], groups)

    @default("options_form")
    def _default_options_form(self):
        async def form(spawner):
            await spawner.discover_gpus()
            return spawner.render_options_form()

        return form

    def render_options_form(self):
        """The spawn page: each profile, what it gives, GPUs free now, and why one is disabled."""
        allocator = self.allocator
        free, total = len(allocator.free()), allocator.total
        choices = self.user_profiles()
        chosen = profiles.default_profile(
            [p for p in choices if not profiles.unavailable_reason(p, free, total)]
        )
        parts = []
        if self.personal_mode:
            parts.append(
                '<p class="alert alert-warning deepvre-personal-mode">Personal mode: the hub is not root, '
                "so every server runs under the same OS account and users are not isolated.</p>"
            )
        parts.append(f'<p class="deepvre-gpus-free">GPUs free now: {free} of {total}</p>')
        for p in choices:
            reason = profiles.unavailable_reason(p, free, total)
            attrs = " disabled" if reason else (" checked" if p is chosen else "")
            slug = html.escape(p["slug"], quote=True)
            why = f'<br><em class="deepvre-unavailable">Unavailable: {html.escape(reason)}</em>' if reason else ""
            parts.append(
                f'<div class="radio deepvre-profile" data-profile="{slug}"><label>'
                f'<input type="radio" name="profile" value="{slug}"{attrs}> '
                f"<strong>{html.escape(p['display_name'])}</strong>: {html.escape(profiles.summary(p))}"
                f"<br><small>{html.escape(p.get('description') or '')}</small>{why}</label></div>"
            )
        return "\n".join(parts)

    def options_from_form(self, formdata):
        return {"profile": formdata.get("profile", [""])[0]}

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

    # --- state: survives a hub restart -------------------------------------------------

    def load_state(self, state):
        super().load_state(state)
        self.profile_slug = state.get("profile", "")
        self.gpu_ids = list(state.get("gpu_ids", []))
        if self.gpu_ids:
            self.allocator.restore(self.owner, self.gpu_ids)  # the hub's restart locked the nodes:
            try:
                self.grant_devices()  # the running server keeps its GPUs
            except Exception as err:
                self.log.error("%s: %s", self.owner, err)

    def get_state(self):
        state = super().get_state()
        if self.profile_slug:
            state["profile"] = self.profile_slug
        if self.gpu_ids:
            state["gpu_ids"] = list(self.gpu_ids)
        return state

    def clear_state(self):
        super().clear_state()
        self.revoke_devices()
        self.allocator.release(self.owner)
        self.gpu_ids = []
        self.profile_slug = ""
        self.remove_limits()  # also when the server died on its own (the hub then skips stop())

    # --- accounts and process ----------------------------------------------------------

    @default("pre_spawn_hook")
    def _default_pre_spawn_hook(self):
        return ensure_account_hook

    def make_preexec_fn(self, name):
        procs = list(getattr(self, "cgroup_procs", []))
        if not self.personal_mode:
            become = super().make_preexec_fn(name)
        else:
            home = self.personal_home()

            def become():
                os.chdir(home)

        def preexec():
            limits.join(procs)  # as root, before dropping to the user's account
            become()

        return preexec

    def apply_limits(self):
        """The server's cgroup with the profile's cores and memory (``enforce_limits``)."""
        self.cgroup_procs = []
        if self.enforce_limits == "off" or not (self.cpu_limit or self.mem_limit):
            return
        try:
            self.cgroup_procs = limits.create(self.owner, self.cpu_limit, self.mem_limit)
        except limits.LimitsUnavailable as err:
            if self.enforce_limits == "required":
                raise refusal(503, f"The profile's limits cannot be enforced on this machine ({err}); "
                                   "an administrator must fix this before servers start.") from None
            self.log.warning("Limits of %s are advisory only: %s", self.owner, err)

    def personal_home(self):
        template = self.personal_home_template or os.path.join(os.path.expanduser("~"), "deepvre-users", "{username}")
        home = template.format(username=self.user.name)
        os.makedirs(home, mode=0o700, exist_ok=True)
        return home

    def user_env(self, env):
        if not self.personal_mode:
            return super().user_env(env)
        env["USER"] = self.user.name
        env["HOME"] = self.personal_home()
        return env

    def get_args(self):
        args = super().get_args()
        if self.personal_mode and accounts.hub_is_root():
            args.append("--allow-root")
        return args

    def get_env(self):
        env = super().get_env()
        profile = profiles.find_profile(self.profiles or [profiles.FALLBACK_PROFILE], self.profile_slug)
        if profile is not None:
            env.update(profiles.local_environment(profile, self.gpu_ids))
        return env

    async def start(self):
        profile = self.reduce_user_options()
        await self.discover_gpus()
        try:
            self.gpu_ids = self.allocator.allocate(self.owner, profile.get("gpus", 0), self.gpu_settings.get("per_user"))
        except gpus.NoFreeGpus as err:
            raise refusal(409, str(err)) from None
        self.profile_slug = profile["slug"]
        # this profile's limits only (not those of the profile this server last ran with)
        self.cpu_limit = float(profile["cpu"]) if profile.get("cpu") else None
        self.mem_limit = profiles.parse_memory(profile["memory"]) if profile.get("memory") else None
        self.log.info("Starting %s with profile %s, GPUs [%s]", self.owner, self.profile_slug, ",".join(self.gpu_ids))
        try:
            self.apply_limits()
            self.grant_devices()
            return await super().start()
        except Exception:
            self.revoke_devices()
            self.allocator.release(self.owner)
            self.gpu_ids = []
            self.remove_limits()
            raise

    async def stop(self, now=False):
        await super().stop(now=now)
        self.revoke_devices()
        self.allocator.release(self.owner)
        self.remove_limits()

    def remove_limits(self):
        """Remove the server's cgroup; one that still holds processes (a run the user detached)
        stays, with its limits, and the hub log says so."""
        if self.enforce_limits == "off":
            return
        try:
            if not limits.remove(self.owner):
                self.log.warning("The cgroup of %s still has processes; left in place", self.owner)
        except OSError as err:
            self.log.warning("Cannot remove the cgroup of %s: %s", self.owner, err)


def reduce_user_options(spawner, user_options):
    """``Spawner.apply_user_options``: refuse an unknown profile early, keep only its slug."""
    spawner.reduce_user_options()


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
        if accounts.exists(name):
            ensure()
        else:
            await asyncio.to_thread(ensure)
    except accounts.AccountError as err:
        spawner.log.warning("deepvre: refused an OS account to %s: %s", name, err)
        raise refusal(403, str(err)) from None


def singleuser_command():
    """The single-user server of this environment (readable by the users' accounts)."""
    return [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
