"""Finding 2 of issue 13: the start request's JSON body chose the Slurm job's terms.

JupyterHub hands the body of ``POST /hub/api/users/NAME/server`` to the spawner as
``user_options``, and batchspawner's ``submit_batch_script`` writes every key of it over its
template variables: ``partition``, ``gres``, ``runtime``, ``nprocs``, ``memory``, ``options``
(``--qos``, ``--account``), even ``prologue`` and ``cmd``. A user allowed only the small CPU
profile submitted ``--gres=gpu:8`` on the gpu partition for 7 days. Now the options are reduced
to the profile's slug, checked against the profiles the user may choose; the rest comes from the
profile.

Two layers: the real batch script ``DeepvreSlurmSpawner`` hands to sbatch for a hostile body
(no cluster needed), then the same attack by a second user on a real hub whose job runs on the
session's one-node Slurm (``slurm_hub``: a non-root hub with the sudo rule, as a site runs it).
"""

import asyncio
import os
import pwd
import re
import subprocess
from types import SimpleNamespace

import pytest
from tornado import web
from traitlets.config import Config

from deepvre.site.settings import validate_settings
from deepvre_hub import modes
from tests.hub.hubprocess import wait_for
from tests.prereqs import traversable
from tests.security.conftest import site_account, slurm_profiles, squeue

pytestmark = pytest.mark.root

# What a cpu-small user sent: the profile it may use, and every batchspawner variable besides.
HOSTILE = {
    "profile": "cpu-small",
    "partition": "gpu",
    "gres": "gpu:8",
    "runtime": "7-00:00:00",
    "nprocs": "64",
    "memory": "512G",
    "reservation": "maintenance",
    "options": "--qos=high --account=someone-elses-project",
    "prologue": "echo pwned > /tmp/deepvre-pwned",
    "srun": "",
    "cmd": "python -c 'import socket'",
    "homedir": "/tmp",
    "keepvars": "ALL",
}


def offline_spawner(user_options, groups=()):
    """The spawner the hub would build for ``mode: slurm`` (from ``modes.configure``), with no hub
    behind it; ``run_command`` records what would run instead of running it."""
    import tempfile

    from jupyterhub.objects import Hub

    settings = validate_settings({"mode": "slurm", "profiles": slurm_profiles("debug")})
    c = Config()
    with tempfile.TemporaryDirectory() as state:
        traversable(state)
        modes.configure(c, settings, state)
    me = pwd.getpwuid(os.getuid()).pw_name
    user = SimpleNamespace(name=me, escaped_name=me, url=f"/user/{me}/", admin=False, id=1,
                           groups=[SimpleNamespace(name=g) for g in groups])
    spawner = c.JupyterHub.spawner_class(user=user, config=c, hub=Hub(), _deprecated_db_session=None)
    spawner.api_token = "test-token"
    # the marketplace token is made in the hub's database, which this spawner has not
    spawner.environment = {**spawner.environment, "DEEPVRE_MARKET_TOKEN": "test-market-token"}
    spawner.user_options = dict(user_options)
    spawner.ran = []

    async def run_command(cmd, input=None, env=None):
        spawner.ran.append((cmd, input))
        return ""  # no job id: batchspawner stops there

    spawner.run_command = run_command
    return spawner


def submitted(user_options, groups=()):
    """(sbatch command, batch script) the spawner submits for a start with ``user_options``."""
    spawner = offline_spawner(user_options, groups)
    with pytest.raises(RuntimeError, match="no jobid"):
        asyncio.run(spawner.start())
    [(cmd, script)] = spawner.ran
    return cmd, script, spawner


def directives(script):
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def test_hostile_options_never_reach_the_batch_script():
    cmd, script, spawner = submitted(HOSTILE)
    assert spawner.user_options == {"profile": "cpu-small"}
    terms = [d for d in directives(script) if not re.match(r"#SBATCH --(output|job-name|chdir|export|get-user-env)=", d)]
    assert terms == ["#SBATCH --partition=debug", "#SBATCH --time=00:30:00", "#SBATCH --mem=300M",
                     "#SBATCH --cpus-per-task=1"], script
    for value in ("gpu", "7-00:00:00", "512G", "maintenance", "--qos", "someone-elses", "pwned", "socket"):
        assert value not in script, value
    assert f"--chdir={pwd.getpwuid(os.getuid()).pw_dir}" in script  # not the body's homedir
    assert "--export=ALL" not in script
    assert re.search(r"^srun .*batchspawner-singleuser .*jupyterhub-singleuser", script, re.M), script
    assert cmd.endswith("sbatch --parsable") and "gpu" not in cmd


def test_a_profile_the_user_may_not_choose_is_refused():
    for options in ({"profile": "big", "gres": "gpu:8"}, {"profile": ["cpu-small"]}, {"profile": {"slug": "big"}}):
        spawner = offline_spawner(options)
        with pytest.raises(web.HTTPError) as refused:
            asyncio.run(spawner.start())
        assert refused.value.status_code == 400
        assert "Unknown hardware profile" in refused.value.jupyterhub_message
        assert not spawner.ran
    # a member of the profile's group gets exactly the profile, still not the body's extras
    _, script, _ = submitted({"profile": "big", "gres": "gpu:8", "runtime": "30-00:00:00"}, groups=["big-users"])
    assert "#SBATCH --time=7-00:00:00" in script and "#SBATCH --cpus-per-task=2" in script
    assert "gres" not in script and "30-00:00:00" not in script


@pytest.mark.slurm
@pytest.mark.hub
def test_second_user_cannot_set_the_jobs_terms_on_a_real_hub(slurm_hub):
    """A second user of a real hub sends terms Slurm would grant (this cluster has 2 CPUs, no GPU):
    the job runs with the cpu-small profile's, not the body's."""
    hub, cluster = slurm_hub, slurm_hub.cluster
    name, _, token = site_account(hub, "opt")
    body = {"profile": "cpu-small", "runtime": "7-00:00:00", "nprocs": "2", "memory": "1000M",
            "options": "--comment=deepvre-attack", "srun": ""}
    r = hub.api(token, "POST", f"/users/{name}/server", json=body)
    assert r.status_code in (201, 202), r.text
    try:
        job = wait_for(lambda: squeue(cluster, "-u", name, "-o", "%i|%P|%C|%m|%l|%k"), 120, f"{name}'s job")
        assert job.split("|")[1:] == [cluster.partition, "1", "300M", "30:00", "(null)"], job  # no --comment
        hub.wait_ready(token, name, timeout=240)
    finally:
        if (hub.server_model(token, name) or {}).get("ready"):
            hub.stop_server(token, name)
        else:  # a spawn still waiting for its job ends when the job does
            subprocess.run(["scancel", "-u", name], env=cluster.env, check=False)
            wait_for(lambda: hub.server_model(token, name) is None, 120, f"{name}'s spawn to end", 0.5)
    # and the API refuses a profile the user may not choose, before any job
    r = hub.api(token, "POST", f"/users/{name}/server", json={"profile": "big"})
    assert r.status_code == 400 and "Unknown hardware profile 'big'" in r.json()["message"], r.text
    assert not squeue(cluster, "-u", name)
