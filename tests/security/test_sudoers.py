"""Finding 3 of issue 13: the Slurm sudo rule let the hub's account act as every non-root account.

hub/slurm/sudoers.deepvre had ``@HUB_USER@ ALL=(ALL,!root) NOPASSWD:SETENV: sbatch, squeue,
scancel``: the hub account (or whoever takes it over) could submit jobs, that is run anything, as
any person's own login or any service account; its ``%group`` form did not work, since the
accounts the hub made were in no group. Now the rule's only form is the marker group
(``accounts.group``, the hub puts every account it makes there), and the jobs' environment passes
by name (``env_keep``) instead of ``SETENV``. The commands it names are root's wrappers
(hub/slurm/slurm-command.in) with the site's slurm.conf fixed in them, and ``SLURM_CONF`` is not
kept: the hub account never chooses the Slurm configuration (and the SPANK plugins it loads) that
sbatch reads as a user (see test_attacks_review.py).

The rule is rendered as hub/slurm/README.md says, checked by ``visudo -cf`` and installed in
/etc/sudoers.d; then sudo itself is asked (``sudo -l -U``), and the hub account, a second
account and an anonymous local account try it for real on the session's one-node Slurm.
"""

import os
import secrets
import subprocess
import time

import pytest

from deepvre_hub import accounts
from tests.hub.hubprocess import wait_for
from tests.prereqs import require_root
from tests.security.conftest import SLURM_PROGRAMS, new_name, os_account, squeue, sudoers_text

pytestmark = [pytest.mark.slurm, pytest.mark.root]


@pytest.fixture(scope="module")
def cast(slurm_for_users, hub_sudo):
    """The hub account with the rule installed (``hub_sudo``), a marked account (made by the hub's
    accounts code), an existing unmarked account (a person's own login) and an anonymous local account."""
    require_root()
    marked = new_name("m")
    accounts.ensure_account(marked)
    try:
        with os_account("own") as unmarked, os_account("anon", home=False) as anonymous:
            yield {"hub": hub_sudo.account, "marked": marked, "unmarked": unmarked, "anonymous": anonymous,
                   "rule": hub_sudo.rule, "cluster": slurm_for_users,
                   **{program: os.path.join(hub_sudo.command_dir, program) for program in SLURM_PROGRAMS}}
    finally:
        subprocess.run(["userdel", "-r", marked], capture_output=True, check=False)


def run_as(account, *cmd, env=None):
    return subprocess.run(["runuser", "-u", account, "--", *cmd], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def may(hub, target, command):
    """sudo's own answer (as root): may ``hub`` run ``command`` as ``target``?"""
    done = subprocess.run(["sudo", "-n", "-l", "-U", hub, "-u", target, command], capture_output=True, text=True,
                          timeout=30, check=False)
    return done.returncode == 0


def test_the_template_has_only_the_group_form():
    text = sudoers_text("jupyterhub")
    rules = [line for line in text.splitlines() if line and not line.startswith(("#", "Cmnd_Alias", "Defaults"))]
    assert rules == ["jupyterhub ALL=(%deepvre-users) NOPASSWD: DEEPVRE_SLURM"]
    assert not [line for line in text.splitlines() if "SETENV" in line and not line.startswith("#")]
    assert "env_keep" in text
    assert "Cmnd_Alias DEEPVRE_SLURM = /usr/local/libexec/deepvre/sbatch, /usr/local/libexec/deepvre/squeue, " \
           "/usr/local/libexec/deepvre/scancel" in text


def test_the_template_keeps_no_variable_slurm_reads_as_configuration():
    """sbatch, squeue and scancel read SLURM_CONF (the whole configuration: plugins) and their own
    input variables (SBATCH_*, SQUEUE_*, SCANCEL_*, SLURM_*): none may come from the hub."""
    text = sudoers_text("jupyterhub")
    kept = [name for line in text.splitlines() if line.startswith("Defaults") and "env_keep" in line
            for name in line.split('"')[1].split()]
    assert "JUPYTERHUB_*" in kept and "JPY_API_TOKEN" in kept, kept
    for name in kept:
        assert not name.startswith(("SLURM", "SBATCH", "SQUEUE", "SCANCEL", "SALLOC", "SRUN", "LD_", "BASH_ENV")), name
        assert name.split("_")[0] not in ("", "*"), name  # no catch-all pattern
    assert any(line.startswith("Defaults!DEEPVRE_SLURM") and "env_reset" in line for line in text.splitlines())


def test_sudo_lets_the_hub_act_only_as_marked_accounts(cast):
    hub = cast["hub"]
    listing = subprocess.run(["sudo", "-n", "-l", "-U", hub], capture_output=True, text=True, check=True).stdout
    assert f"(%deepvre-users) NOPASSWD: {cast['sbatch']}, {cast['squeue']}, {cast['scancel']}" in listing, listing
    assert "ALL, !root" not in listing and "SETENV" not in listing
    assert may(hub, cast["marked"], cast["sbatch"])
    assert not may(hub, cast["unmarked"], cast["sbatch"]), "a person's own login is not the hub's"
    assert not may(hub, "root", cast["sbatch"])
    assert not may(hub, "daemon", cast["squeue"])
    assert not may(hub, cast["marked"], "/usr/bin/id"), "only the Slurm commands"
    assert not may(hub, cast["marked"], "/usr/bin/sbatch"), "only the wrappers, which fix the slurm.conf"


def test_hub_submits_as_a_marked_account_with_the_jobs_environment(cast, tmp_path):
    """What batchspawner does (exec_prefix ``sudo -n -u {username}``, ``slurm.command_dir``'s
    sbatch): the job runs as the user and sees the variables it needs (the hub API token) through
    env_keep, and the SLURM_CONF the wrapper fixed, not the one the hub passed."""
    cluster, marked = cast["cluster"], cast["marked"]
    out = f"/tmp/{marked}-env.out"
    env = dict(cluster.env, JUPYTERHUB_API_TOKEN="token-for-the-job", DEEPVRE_PROFILE="cpu-small",
               NOT_KEPT="dropped", SLURM_CONF="/nonexistent/the-hubs-own/slurm.conf")
    try:
        done = run_as(cast["hub"], "sudo", "-n", "-u", marked, cast["sbatch"], "--parsable", "-o", "/dev/null",
                      "--wrap", f"{{ id -un; printenv JUPYTERHUB_API_TOKEN DEEPVRE_PROFILE SLURM_CONF; "
                                f"printenv NOT_KEPT || echo none; }} > {out}", env=env)
        assert done.returncode == 0, done.stderr
        job = done.stdout.strip()
        wait_for(lambda: not squeue(cluster, "-j", job, "-t", "PD,R,CG") and os.path.exists(out), 60,
                 f"job {job} to finish")
        time.sleep(0.2)
        with open(out) as f:
            assert f.read().split() == [marked, "token-for-the-job", "cpu-small", cluster.conf, "none"]
    finally:
        if os.path.exists(out):
            os.remove(out)


def test_hub_cannot_act_as_unmarked_accounts_or_root(cast):
    cluster, hub = cast["cluster"], cast["hub"]
    for target in (cast["unmarked"], "root"):
        name = f"sudoers-{secrets.token_hex(3)}"  # root's own jobs of other tests may still be listed
        done = run_as(hub, "sudo", "-n", "-u", target, cast["sbatch"], "--parsable", "-o", "/dev/null",
                      "-J", name, "--wrap", "true", env=cluster.env)
        assert done.returncode != 0 and "password is required" in done.stderr, (target, done.stdout, done.stderr)
        assert not squeue(cluster, "-u", target, "-t", "all", "-n", name)
    # no environment of its own choosing either (SETENV is gone): LD_PRELOAD would run any program
    for cmd in (["sudo", "-n", "-E", "-u", cast["marked"], cast["squeue"]],
                ["sudo", "-n", "-u", cast["marked"], "LD_PRELOAD=/tmp/x.so", cast["squeue"]],
                ["sudo", "-n", "-u", cast["marked"], "SLURM_CONF=/tmp/x.conf", cast["squeue"]]):
        done = run_as(hub, *cmd, env=cluster.env)
        assert done.returncode != 0 and "not allowed" in done.stderr, (cmd, done.stderr)


def test_anonymous_local_account_gets_nothing(cast):
    anonymous, cluster = cast["anonymous"], cast["cluster"]
    listing = run_as(anonymous, "sudo", "-n", "-l")
    assert listing.returncode != 0, listing.stdout
    done = run_as(anonymous, "sudo", "-n", "-u", cast["marked"], cast["sbatch"], "--wrap", "true", env=cluster.env)
    assert done.returncode != 0 and "password is required" in done.stderr, done.stderr
