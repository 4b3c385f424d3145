"""Slurm mode: each user's server is a Slurm job started by batchspawner's ``SlurmSpawner``.

The profile's Slurm terms (sbatch options, batchspawner's ``req_*`` traits, the GPU check) come
from ``deepvre.site.slurm_terms``, shared with ``deepvre run --backend slurm`` and Dask's
``SLURMCluster``. Here:

- ``unreadable_reason(env)``: why the users' accounts cannot run the single-user environment.
- ``nodes_reach_hub_refusal(settings, nodes)``: why the servers on the cluster's nodes could not
  call the hub API and the marketplace (loopback or every interface in ``hub.hub_ip`` /
  ``hub.hub_connect_ip`` with a node that is not this machine); ``configure`` exits with it.
- ``slurm_command(slurm, program)`` / ``in_command_dir(cmd, folder)``: the sbatch, squeue and
  scancel the hub runs as a user (``slurm.command_dir``: root's wrappers with the site's
  slurm.conf fixed, named by hub/slurm/sudoers.deepvre).

``configure(c, settings, state_dir)`` is called by ``modes.configure`` for ``mode: slurm``.
"""

import html
import logging
import os
import socket
import stat
import sys

from traitlets import Dict, Unicode

from deepvre.site import environment
from deepvre.site.addresses import (
    hub_address,
    is_every_interface,
    is_loopback,
    listen_refusal,
    loopback_refusal,
    resolved,
)
from deepvre.site.slurm_terms import (
    SlurmSettingsError,
    batchspawner_traits,
    cluster_gpus_per_node,
    gpu_refusal,
    sbatch_options,
    slurm_nodes,
    slurm_settings,
)

log = logging.getLogger(__name__)
SERVER_BINARIES = ("python", "jupyterhub-singleuser", "batchspawner-singleuser")


# ---------------------------------------------------------------- the users' environment


def _closed_to_others(path):
    """Why others cannot pass through or read ``path`` itself (a phrase), or ``None``."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
        return f"is a folder of mode {stat.S_IMODE(mode):04o} that other accounts cannot enter"
    if not stat.S_ISDIR(mode) and not mode & stat.S_IROTH:
        return f"is a file of mode {stat.S_IMODE(mode):04o} that other accounts cannot read"
    return None


def _closed_on_the_way(path):
    """The first folder or file on the way to ``path`` closed to others, with why; or ``None``."""
    parts = path.split(os.sep)
    for i in range(2, len(parts) + 1):
        where = os.sep.join(parts[:i])
        why = _closed_to_others(where)
        if why:
            return f"{where} {why}"
    return None


def unreadable_reason(env):
    """Why the users' accounts cannot run the Python environment ``env`` (a sentence), or ``None``.

    Checks every folder on the way to ``env`` and to ``env/bin/{python,jupyterhub-singleuser,
    batchspawner-singleuser}`` and what their links point at (a venv's python links to the
    Python it was made from: one under /root, such as pyenv's, is closed to others).
    """
    env = os.path.abspath(env)
    advice = ("Make the environment from /usr/bin/python3 in a folder other accounts can read, "
              "e.g. /opt/deepvre/venv, and set slurm.env.")
    why = _closed_on_the_way(env)
    for binary in SERVER_BINARIES:
        if why:
            break
        path = os.path.join(env, "bin", binary)
        if not os.path.exists(path):
            return f"{path} does not exist (is {env} a Python environment with deepvre installed?)"
        why = _closed_on_the_way(path) or _closed_on_the_way(os.path.realpath(path))
    if why:
        return f"the single-user environment {env} is not usable by the users' accounts: {why}. {advice}"
    return None


# ---------------------------------------------------------------- the commands run as a user

SLURM_PROGRAMS = ("sbatch", "squeue", "scancel")
BATCHSPAWNER_COMMANDS = ("batch_submit_cmd", "batch_query_cmd", "batch_cancel_cmd")


def slurm_command(slurm, program):
    """The ``program`` (sbatch, squeue, scancel) the hub runs as a user: ``slurm.command_dir/program``
    when set (e.g. ``/usr/local/libexec/deepvre/squeue``), else the bare name (found on PATH)."""
    folder = (slurm or {}).get("command_dir")
    return os.path.join(folder, program) if folder else program


def in_command_dir(cmd, folder):
    """A batchspawner command line with its Slurm program taken from ``folder``:
    ``squeue -h -j {job_id}`` -> ``/usr/local/libexec/deepvre/squeue -h -j {job_id}``."""
    program, _, rest = cmd.strip().partition(" ")
    if program not in SLURM_PROGRAMS:
        raise SlurmSettingsError(f"slurm.command_dir: cannot place {program!r} of {cmd!r} (expected one of "
                                 f"{', '.join(SLURM_PROGRAMS)})")
    return " ".join(filter(None, (os.path.join(folder, program), rest)))


# ---------------------------------------------------------------- the spawner


def _batchspawner():
    from batchspawner import SlurmSpawner

    return SlurmSpawner


def make_spawner_class():
    """``DeepvreSlurmSpawner``: batchspawner's ``SlurmSpawner`` with deepvre's profile form.

    Built on first use so that importing this module does not need batchspawner.
    """
    from .spawn_form import ProfileSpawnerMixin, refusal

    class DeepvreSlurmSpawner(ProfileSpawnerMixin, _batchspawner()):
        """Each server is a Slurm job under the user's own account; the profile sets its ``req_*``.

        Of a start request's options only the profile's slug reaches batchspawner (which would
        write any other key into the batch script): see ``ProfileSpawnerMixin.reduce_user_options``.
        """

        slurm_settings = Dict(config=True, help="""The ``slurm:`` settings section (defaults filled in).

            Example: ``{"partition": "cpu", "account": "proj123", "gres_name": "gpu"}``
            """)
        end_message = Unicode(help="Why the last server ended without being stopped through the hub.")
        # the message outlives the server: clear_state (at its end) keeps it for the spawn page
        state_traits = {**ProfileSpawnerMixin.state_traits, "end_message": "end_message"}
        stopping = False

        def most_gpus(self, partition=None):
            return cluster_gpus_per_node(self.slurm_settings, partition or self.slurm_settings.get("partition"))

        def gpu_capacity(self):
            # Slurm, not the hub, knows which GPUs are free: a job waits in its queue for them
            most = self.most_gpus()
            return most, most, (f"GPUs per node: up to {most}; Slurm queues a server until its GPUs are free"
                                if most else "This cluster's partition has no GPUs")

        def form_notice(self):
            if not self.end_message:
                return ""
            return f'<p class="alert alert-warning deepvre-server-ended">{html.escape(self.end_message)}</p>'

        # --- the job ----------------------------------------------------------------------

        def get_env(self):
            env = super().get_env()
            env.update({environment.MODE: "slurm", environment.PROFILE: self.profile_slug})
            return env

        async def start(self):
            profile = self.reduce_user_options()  # user_options is now {"profile": slug}, nothing else
            partition = profile.get("partition") or self.slurm_settings.get("partition")
            if profile.get("gpus"):
                reason = gpu_refusal(profile, self.most_gpus(partition), partition)
                if reason:
                    raise refusal(409, reason)
            self.profile_slug = profile["slug"]
            self.end_message, self.stopping = "", False
            for trait, value in batchspawner_traits(profile, self.slurm_settings).items():
                setattr(self, trait, value)
            self.log.info("Submitting %s's server as a Slurm job: profile %s, %s", self.user.name,
                          self.profile_slug, " ".join(sbatch_options(profile, self.slurm_settings)))
            return await super().start()

        async def stop(self, now=False):
            self.stopping = True  # the hub stops it: not an outside end
            await super().stop(now=now)

        async def poll(self):
            job = self.job_id
            status = await super().poll()
            if status is not None and job and not self.stopping:
                state = await self._final_state(job)
                self.end_message = (f"Your server's Slurm job {job} ended outside the hub"
                                    f"{f' ({state})' if state else ''}; start it again.")
                self.log.warning("%s: %s", self.user.name, self.end_message)
            return status

        async def _final_state(self, job):
            """The ended job's state (CANCELLED, TIMEOUT, ...) while Slurm still remembers it."""
            subvars = dict(self.get_req_subvars(), job_id=job)
            prefix = self.exec_prefix.format(**subvars)
            try:
                out = await self.run_command(f"{prefix} {slurm_command(self.slurm_settings, 'squeue')} "
                                             f"-h -t all -j {int(job)} -o %T")
            except Exception:  # noqa: BLE001 (a forgotten job makes squeue fail: no state to add)
                return ""
            return out.strip().split("\n")[0]

    return DeepvreSlurmSpawner


def __getattr__(name):
    if name == "DeepvreSlurmSpawner":
        cls = make_spawner_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


# ---------------------------------------------------------------- hub configuration


def exec_prefix(slurm, root):
    """How the hub runs sbatch/squeue/scancel as a user: ``slurm.exec_prefix`` if set; else, as
    root, ``sudo -E -u {username}`` (root's own sudo rule lets it keep the job's environment);
    not as root, ``sudo -n -u {username}``: hub/slurm/sudoers.deepvre keeps the variables the
    job needs by name (env_keep), and gives no ``SETENV``, so the hub cannot set others
    (``LD_PRELOAD``...) and run more than sbatch as the user; nor ``SLURM_CONF``: the commands
    it names (``slurm.command_dir``) read the slurm.conf root fixed in them."""
    if slurm.get("exec_prefix"):
        return slurm["exec_prefix"]
    return "sudo -E -u {username}" if root else "sudo -n -u {username}"


def nodes_reach_hub_refusal(settings, nodes=None, this_host=None):
    """Why the servers on the Slurm nodes could not reach the hub API and the marketplace (a
    sentence naming the setting), or ``None``. ``nodes``: the cluster's node names (``None``: ask
    ``sinfo``, only when the address is loopback; a Slurm that does not answer is logged, not refused)."""
    address = hub_address(settings)
    if is_every_interface(address) or listen_refusal(settings):
        return loopback_refusal(settings, [], this_host)
    if not is_loopback(address, resolved):
        return None
    if nodes is None:
        try:
            nodes = slurm_nodes()
        except SlurmSettingsError as err:
            log.warning("deepvre: %s; servers on nodes other than this machine will not reach the hub at %s "
                        "(hub.hub_ip)", err, address)
            return None
    return loopback_refusal(settings, nodes, this_host or socket.gethostname())


def configure(c, settings, state_dir):
    """``mode: slurm``: servers are Slurm jobs submitted as each user; refuse an unreadable env."""
    from . import accounts

    slurm = slurm_settings(settings.get("slurm"))
    env = slurm["env"] or sys.prefix
    reason = unreadable_reason(env)
    if reason:
        print(f"deepvre: slurm.env: {reason}", file=sys.stderr)
        raise SystemExit(2)
    reason = nodes_reach_hub_refusal(settings)
    if reason:
        print(f"deepvre: {reason}", file=sys.stderr)
        raise SystemExit(2)
    root = accounts.hub_is_root()
    prefix = exec_prefix(slurm, root)
    account_settings = settings.get("accounts") or {}
    group = account_settings.get("group") or accounts.MARKER_GROUP
    if not root:
        log.info("deepvre: slurm mode without root: %r with %s, %s and %s must be allowed by sudoers for the "
                 "members of %r (see hub/slurm/sudoers.deepvre)", prefix,
                 *(slurm_command(slurm, program) for program in SLURM_PROGRAMS), group)
    spawner = __getattr__("DeepvreSlurmSpawner")
    c.JupyterHub.spawner_class = spawner
    c.DeepvreSlurmSpawner.profiles = settings.get("profiles") or []
    c.DeepvreSlurmSpawner.slurm_settings = slurm
    c.DeepvreSlurmSpawner.exec_prefix = prefix
    if slurm["command_dir"]:  # batchspawner's own command lines, their program taken from there
        defaults = spawner.class_traits()
        for trait in BATCHSPAWNER_COMMANDS:
            setattr(c.DeepvreSlurmSpawner, trait, in_command_dir(defaults[trait].default_value, slurm["command_dir"]))
    c.DeepvreSlurmSpawner.account_group = group
    c.DeepvreSlurmSpawner.allowed_existing_accounts = list(account_settings.get("allow_existing") or [])
    c.DeepvreSlurmSpawner.batchspawner_singleuser_cmd = os.path.join(env, "bin", "batchspawner-singleuser")
    c.Spawner.cmd = [os.path.join(env, "bin", "jupyterhub-singleuser")]
    c.Spawner.start_timeout = slurm["start_timeout"]
    c.Spawner.http_timeout = 120
    c.Spawner.poll_interval = slurm["poll_interval"]
    # sbatch (run through exec_prefix with the server's environment) must find the cluster's config;
    # under sudo without root, SLURM_CONF is dropped and slurm.command_dir's wrappers set their own
    keep = list(c.Spawner.env_keep) if "env_keep" in c.Spawner else ["JUPYTERHUB_SINGLEUSER_APP"]
    c.Spawner.env_keep = keep + [v for v in ("SLURM_CONF", "PATH") if v not in keep]
