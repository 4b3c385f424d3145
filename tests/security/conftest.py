"""What the multi-user attacks share: OS accounts made for an attack, the Slurm sudo rule, and one
Slurm hub run the way a site runs it (a non-root hub account, hub/slurm/sudoers.deepvre installed).

``os_account(role, ...)`` makes an account outside the hub (a person's own login, a service
account) and removes it; ``slurm_wrappers(conf)`` renders hub/slurm/slurm-command.in for sbatch,
squeue and scancel with ``conf`` fixed in them, in a root-owned folder, as hub/slurm/README.md
says; ``sudoers_rule(hub_account, command_dir)`` renders the sudo template the same way (naming
those wrappers), checks it with ``visudo -cf`` and installs it for the block. The package fixture
``hub_sudo`` is one hub account with that rule and wrappers of the session's cluster, used by
test_sudoers.py and by ``slurm_hub`` (one rule at a time: two copies would define the same
Cmnd_Alias twice).
"""

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from deepvre_hub import accounts
from tests.hub.hubprocess import HubProcess, hub_folder
from tests.kubernetes import conftest as kubernetes_tests
from tests.prereqs import REPO, require_program, require_proxy, require_root

SUDOERS_TEMPLATE = Path(REPO) / "hub" / "slurm" / "sudoers.deepvre"
WRAPPER_TEMPLATE = Path(REPO) / "hub" / "slurm" / "slurm-command.in"
COMMAND_DIR = "/usr/local/libexec/deepvre"  # hub/slurm/README.md's folder of the wrappers
SLURM_PROGRAMS = ("sbatch", "squeue", "scancel")
PASSWORD = "correct-horse-" + secrets.token_hex(4)

# The start of the probe scripts other accounts run with ``python -c`` (test_serving.py,
# test_listener_census.py): ``UnixConnection(path)``, HTTP to a Unix socket.
UNIX_HTTP = r'''
import http.client, socket

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=20)
        self.unix_path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(20)
        self.sock.connect(self.unix_path)
'''


def new_name(role):
    """A fresh account / hub user name for this run."""
    return f"sect{secrets.token_hex(3)}{role}"


@contextlib.contextmanager
def os_account(role, system=False, home=True):
    """An OS account made outside the hub (``useradd``; regular uid unless ``system``), removed after."""
    require_root()
    name = new_name(role)
    cmd = ["useradd", "--shell", "/bin/bash"]
    cmd += ["--system"] if system else []
    cmd += ["--create-home", "-K", "HOME_MODE=0700"] if home else ["--no-create-home"]
    subprocess.run([*cmd, name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


def sudoers_text(hub_account, group=accounts.MARKER_GROUP, command_dir=COMMAND_DIR):
    """The template filled in, as hub/slurm/README.md's ``sed`` does."""
    return (SUDOERS_TEMPLATE.read_text().replace("@HUB_USER@", hub_account).replace("@GROUP@", group)
            .replace("@COMMAND_DIR@", command_dir))


def wrapper_text(program, conf):
    """hub/slurm/slurm-command.in filled in for ``program`` (its path), as the README's ``sed`` does."""
    return WRAPPER_TEMPLATE.read_text().replace("@COMMAND@", program).replace("@SLURM_CONF@", conf)


@contextlib.contextmanager
def slurm_wrappers(conf):
    """sbatch, squeue and scancel reading ``conf``, installed as the README says (root's, 0755) in
    a fresh folder only root can write (the README's is /usr/local/libexec/deepvre); its path."""
    require_root()
    folder = Path(tempfile.mkdtemp(prefix="deepvre-slurm-commands-"))
    try:
        os.chmod(folder, 0o755)
        for program in SLURM_PROGRAMS:
            draft = folder / f".{program}"
            draft.write_text(wrapper_text(shutil.which(program) or f"/usr/bin/{program}", conf))
            subprocess.run(["install", "-o", "root", "-g", "root", "-m", "0755", str(draft), str(folder / program)],
                           check=True)
            draft.unlink()
        yield str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def sudoers_rule(hub_account, group=accounts.MARKER_GROUP, command_dir=COMMAND_DIR):
    """The rendered rule, checked by ``visudo -cf``, installed in /etc/sudoers.d for the block."""
    require_program("visudo")
    require_program("sudo")
    folder = Path(tempfile.mkdtemp(prefix="deepvre-sudoers-"))
    draft = folder / "deepvre"
    draft.write_text(sudoers_text(hub_account, group, command_dir))
    checked = subprocess.run(["visudo", "-cf", str(draft)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rule = f"/etc/sudoers.d/deepvre-test-{hub_account}"
    subprocess.run(["install", "-m", "0440", str(draft), rule], check=True)
    try:
        yield rule
    finally:
        if os.path.exists(rule):
            os.remove(rule)
        shutil.rmtree(folder, ignore_errors=True)


def squeue(cluster, *args):
    out = subprocess.run(["squeue", "-h", *args], env=cluster.env, capture_output=True, text=True, timeout=60,
                         check=False)
    return out.stdout.strip()


@pytest.fixture(scope="package")
def slurm_for_users(slurm):
    """The session's cluster, its slurm.conf readable by the users' accounts (their sbatch reads it)."""
    for program in ("sudo", "visudo", "runuser"):
        require_program(program)
    os.chmod(slurm.base, 0o755)
    return slurm


# Profiles of the Slurm hub: every user may take cpu-small; only big-users members may take big.
def slurm_profiles(partition):
    return [
        {"slug": "cpu-small", "display_name": "CPU small", "cpu": 1, "memory": "300M", "walltime": "00:30:00",
         "partition": partition, "default": True},
        {"slug": "big", "display_name": "Big", "cpu": 2, "memory": "1000M", "walltime": "7-00:00:00",
         "partition": partition, "groups": ["big-users"]},
    ]


@pytest.fixture(scope="package")
def hub_sudo(slurm_for_users):
    """A non-root hub account (system account with a home), wrappers of the Slurm commands with the
    session's slurm.conf fixed in them, and the installed sudo rule naming them."""
    require_root()
    with os_account("hub", system=True) as hub_account, slurm_wrappers(slurm_for_users.conf) as command_dir, \
            sudoers_rule(hub_account, command_dir=command_dir) as rule:
        yield SimpleNamespace(account=hub_account, rule=rule, command_dir=command_dir)


@pytest.fixture(scope="package")
def slurm_hub(slurm_for_users, hub_sudo):
    """A ``mode: slurm`` hub running as a non-root hub account, as a site runs it: the sudo rule of
    hub/slurm/sudoers.deepvre installed, exec_prefix deepvre's default for a non-root hub
    (``sudo -n -u {username}``), ``slurm.command_dir`` the wrappers the rule names, users' accounts
    provided by the site in the marker group."""
    require_proxy()
    cluster, hub_account = slurm_for_users, hub_sudo.account
    with hub_folder("deepvre-sec-slurmhub-", owner=hub_account) as folder:
        hub = HubProcess({"mode": "slurm", "profiles": slurm_profiles(cluster.partition),
                          "slurm": {"poll_interval": 2, "start_timeout": 180, "command_dir": hub_sudo.command_dir}},
                         folder / "state", env={"SLURM_CONF": cluster.conf}, run_as=hub_account)
        hub.cluster = cluster
        hub.hub_account = hub_account
        with hub.running():
            yield hub


def site_account(hub, role):
    """A user of the non-root Slurm hub: the OS account made first, in the marker group (what the
    site's LDAP provides; here the hub's own accounts code as root), then signed up and approved.
    Returns (name, session, token)."""
    name = new_name(role)
    accounts.ensure_account(name)
    admin = hub.login(hub.admin, hub.admin_password)
    return (name, *hub.approved_user(admin, name, PASSWORD))


# ---------------------------------------------------------------- Kubernetes mode (offline)


# tests/kubernetes/settings.yaml, validated, and the z2jh values deepvre renders from it: the
# Kubernetes tests' own (tests/kubernetes/conftest.py), under names of their own here
k8s_settings = pytest.fixture(scope="module", name="k8s_settings")(kubernetes_tests.site_settings)
k8s_values = pytest.fixture(scope="module", name="k8s_values")(kubernetes_tests.rendered_values_of)


@pytest.fixture
async def two_users(k8s_values, monkeypatch, dummy_kubeconfig):
    """alice's and bob's spawns up to their pods, in one in-memory API: (cluster, {user: pod})."""
    from tests.kubernetes.fake_api import FakeCluster, start

    cluster = FakeCluster()
    pods = {user: await start(k8s_values, cluster, user, monkeypatch) for user in ("alice", "bob")}
    return cluster, pods
