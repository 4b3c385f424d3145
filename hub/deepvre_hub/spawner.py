"""``DeepvreSpawner``: local processes with hardware profiles, exclusive GPUs and per-user accounts.

Thin glue over the pure pieces: ``profiles`` (choice and environment), ``gpus`` (allocation),
``accounts`` (OS accounts). The GPU ids a server holds live in its spawner state, so a
restarted hub rebuilds the allocation from the servers still running.

Nothing here blocks the hub's event loop while other users spawn: ``useradd`` and the first
GPU discovery (``nvidia-smi``) run in a thread, and the discovery is done once per hub process.
"""

import asyncio
import os
import pwd
import subprocess
import sys

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Enum, Unicode, default

from deepvre.site import profiles

from . import accounts, examples, gpu_devices, gpus, limits, terminals, usage
from .accounting import AccountingMixin
from .spawn_form import LocalGpusMixin, ProfileSpawnerMixin, refusal


class DeepvreSpawner(AccountingMixin, LocalGpusMixin, ProfileSpawnerMixin, LocalProcessSpawner):
    """Local-mode spawner: a profile chooses cores, memory and GPUs; GPUs are given exclusively,
    within the quotas; each server's use is recorded (``accounting``)."""

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

    # --- GPUs (spawn_form.LocalGpusMixin): their device nodes open to the server's account alone

    @property
    def restricts_devices(self):
        return self.gpu_settings.get("restrict_devices", True) and not self.personal_mode and accounts.hub_is_root()

    def device_nodes(self, gpu_ids):
        nodes = {g.index: g.device for g in gpus.machine_gpus(self.gpu_settings)}
        return [nodes.get(i) or gpus.device_node(i) for i in gpu_ids]

    def change_devices(self, change):
        """``change`` (``gpu_devices.grant`` or ``revoke``) this server's GPUs' device nodes for its
        account, when it has GPUs and ``restrict_devices`` holds; returns the error, else None."""
        if not (self.gpu_ids and self.restricts_devices):
            return None
        try:
            change(self.device_nodes(self.gpu_ids), self.user.name)
        except (gpu_devices.DevicesUnrestricted, OSError) as err:
            return err
        return None

    def grant_devices(self):
        """Open this server's GPUs' device nodes to its account (``restrict_devices``)."""
        err = self.change_devices(gpu_devices.grant)
        if err is not None:
            raise refusal(503, f"The GPU device nodes cannot be restricted to your account ({err}); "
                               "an administrator must fix this before GPU servers start.")

    def revoke_devices(self):
        err = self.change_devices(gpu_devices.revoke)
        if err is not None:
            self.log.error("Cannot take %s's GPU device nodes back: %s", self.owner, err)

    def release_gpus(self):
        self.revoke_devices()
        super().release_gpus()

    def gpus_restored(self):  # the hub's restart locked the nodes: the running server keeps its GPUs
        try:
            self.grant_devices()
        except Exception as err:
            self.log.error("%s: %s", self.owner, err)

    # --- the spawn page (spawn_form.ProfileSpawnerMixin) ---------------------------------

    def form_notice(self):
        notice = self.quota_notice()
        if not self.personal_mode:
            return notice
        return ('<p class="alert alert-warning deepvre-personal-mode">Personal mode: the hub is not root, '
                "so every server runs under the same OS account and users are not isolated.</p>" + notice)

    # --- state: survives a hub restart -------------------------------------------------

    def clear_state(self):
        super().clear_state()
        self.remove_limits()  # also when the server died on its own (the hub then skips stop())

    # --- accounts and process ----------------------------------------------------------

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
        args += terminals.server_args(BIN_DIR)
        return args

    def get_env(self):
        env = super().get_env()
        env["PATH"] = terminals.path_with(BIN_DIR, env.get("PATH"))  # `deepvre` in every kernel and terminal
        profile = profiles.find_profile(self.profiles or [profiles.FALLBACK_PROFILE], self.profile_slug)
        if profile is not None:
            env.update(profiles.local_environment(profile, self.gpu_ids))
        return env

    examples_dir = Unicode(
        config=True,
        help="""Notebooks copied into each user's home at the first spawn, into ~/deepvre-examples
        (once: later spawns keep the user's edits and deletions; copied as the user, never over a
        file and never through a symlink: ``deepvre_hub.examples``).

        Example: ``"/srv/deepvre/notebooks"``; empty: none. Default: ``notebooks/`` of the checkout
        the hub runs from (the four use cases), if there is one.
        """,
    )

    @default("examples_dir")
    def _default_examples_dir(self):
        from deepvre.site.settings import REPO_ROOT

        folder = REPO_ROOT / "notebooks" if REPO_ROOT is not None else None
        return str(folder) if folder is not None and folder.is_dir() else ""

    async def offer_examples(self):
        """Copy :attr:`examples_dir` into the user's home (the first spawn only); a failure is
        logged, never a refused spawn."""
        if not self.examples_dir or not os.path.isdir(self.examples_dir):
            return
        try:
            if self.personal_mode:  # the server runs as the hub's account: so does the copy
                await asyncio.to_thread(examples.copy_examples, self.examples_dir, self.personal_home())
                return
            entry = pwd.getpwnam(self.user.name)
            done = await asyncio.to_thread(
                subprocess.run, examples.as_user_command(self.examples_dir), user=entry.pw_uid, group=entry.pw_gid,
                extra_groups=[], env={"PATH": os.defpath, "HOME": entry.pw_dir}, cwd=entry.pw_dir,
                capture_output=True, text=True, timeout=120)
            if done.returncode:
                self.log.warning("deepvre: examples not copied for %s: %s", self.user.name, done.stderr[-500:])
        except (OSError, KeyError, subprocess.SubprocessError) as err:
            self.log.warning("deepvre: examples not copied for %s: %s", self.user.name, err)

    async def start(self):
        profile = self.reduce_user_options()
        await self.offer_examples()
        await self.discover_gpus()
        await self.admit_queued(profile)  # quotas, the GPU queue, GPUs and the accounting row
        self.profile_slug = profile["slug"]
        # this profile's limits only (not those of the profile this server last ran with)
        self.cpu_limit = float(profile["cpu"]) if profile.get("cpu") else None
        self.mem_limit = profiles.parse_memory(profile["memory"]) if profile.get("memory") else None
        self.log.info("Starting %s with profile %s, GPUs [%s]", self.owner, self.profile_slug, ",".join(self.gpu_ids))
        try:
            self.apply_limits()
            self.grant_devices()
            return await self.own_start(super().start())  # within start_timeout after the queue
        except Exception:
            self.close_usage(usage.FAILED)
            self.release_gpus()
            self.remove_limits()
            raise

    async def stop(self, now=False):
        self.note_stop()
        await super().stop(now=now)
        self.release_gpus()
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


# This environment's commands: jupyterhub-singleuser, deepvre, python
BIN_DIR = os.path.dirname(sys.executable)


def singleuser_command():
    """The single-user server of this environment (readable by the users' accounts)."""
    return [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
