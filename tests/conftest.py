"""Fixtures shared by every test folder. Folder-specific ones live in that folder's conftest.py."""

import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.prereqs import REPO, hub_tmpdir, require_proxy, require_root
from tests.slurmd import session_slurm


@pytest.fixture(scope="session", autouse=True)
def private_state(tmp_path_factory):
    """No test writes to the user's catalog or runs: for the whole session the default catalog
    is ``<root>/market`` and runs go to ``<root>/runs``, and no marketplace URL is set. One value
    for every test folder: session fixtures that each set their own would leave whichever came
    last to the tests of the others on the same xdist worker."""
    root = tmp_path_factory.mktemp("default-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPVRE_MARKET_DIR", str(root / "market"))
        mp.setenv("DEEPVRE_RUNS_DIR", str(root / "runs"))
        mp.delenv("DEEPVRE_MARKET_URL", raising=False)  # never a real service either
        yield root


@pytest.fixture(scope="session")
def private_market(private_state):
    """The session's default catalog folder (``$DEEPVRE_MARKET_DIR``)."""
    return private_state / "market"


@pytest.fixture
def hub_state():
    """A state folder for a hub configured in the test, which other accounts may pass through
    (as root, the hub's services run under their own accounts)."""
    folder = hub_tmpdir("state-")
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root():
    return REPO


@pytest.fixture(scope="session")
def personal_hub():
    """One hub in personal mode (under an ordinary OS account) for tests/hub and tests/security."""
    from tests.hub.hubprocess import personal_hub_process

    require_root()  # to make the ordinary account the hub runs under
    require_proxy()
    with personal_hub_process() as hub:
        yield hub


@pytest.fixture(scope="session")
def dummy_kubeconfig(tmp_path_factory):
    """A kubeconfig for an API server that is not there (127.0.0.1:6443): KubeSpawner and the
    Kubernetes clients read one; nothing is sent unless a test points them at an emulator."""
    path = tmp_path_factory.mktemp("kubernetes-kubeconfig") / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dummy",
        "clusters": [{"name": "dummy", "cluster": {"server": "http://127.0.0.1:6443"}}],
        "users": [{"name": "dummy", "user": {"token": "not-a-token"}}],
        "contexts": [{"name": "dummy", "context": {"cluster": "dummy", "user": "dummy", "namespace": "deepvre"}}],
    }))
    # kubernetes_asyncio reads $KUBECONFIG once, at import: point its default there instead.
    from kubernetes_asyncio.config import kube_config

    old = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    yield path
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = old


@pytest.fixture(scope="session")
def slurm():
    """The session's one-node Slurm on loopback (tests/slurmd.py), ``SLURM_CONF`` set for it."""
    yield from session_slurm()


# `make test` runs the suite on three pytest-xdist workers (--dist loadgroup). Tests that share the
# machine's one-of-a-kind things (the session's Slurm daemons and the sudoers they need, the personal
# hub) run on one worker, in the "machine-slurm" group. The other tests that need root, a real hub or a
# browser are grouped by folder ("machine-hub", "machine-security" and its "machine-attacks",
# "machine-other"): their hubs, OS accounts (random names) and browsers coexist, and one group at a
# time per worker keeps each worker's load to one hub. Every other module is a group of its own, so
# its module fixtures (a hub, a trained model, an executed notebook) start once.
MACHINE_FOLDERS = ("auth", "hub", "security", "slurm")
MACHINE_MARKS = {"root", "slurm", "oidc", "browser"}
MACHINE_FIXTURES = {"slurm", "os_account", "personal_hub"}
SLURM_FIXTURES = {"slurm", "personal_hub"}  # session fixtures: one per worker, so one group
MACHINE_ORDER = ["machine-hub", "machine-security", "machine-slurm", "machine-attacks", "machine-other"]
LONG_FOLDERS = ("notebooks", "science", "binder")


def xdist_group(module_items):
    folder = os.path.relpath(str(module_items[0].path), os.path.join(REPO, "tests")).split(os.sep)[0]
    marks = {m.name for item in module_items for m in item.iter_markers()}
    fixtures = {name for item in module_items for name in getattr(item, "fixturenames", ())}
    if folder == "slurm" or "slurm" in marks or SLURM_FIXTURES & fixtures:
        return "machine-slurm"
    if folder in MACHINE_FOLDERS or MACHINE_MARKS & marks or MACHINE_FIXTURES & fixtures:
        if folder == "security" and os.path.basename(module_items[0].path).startswith("test_attacks"):
            return "machine-attacks"
        return f"machine-{folder}" if folder in ("hub", "security") else "machine-other"
    return module_items[0].nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    modules = {}
    for item in items:
        modules.setdefault(item.path, []).append(item)
    groups = {}
    for module_items in modules.values():
        group = xdist_group(module_items)
        for item in module_items:
            item.add_marker(pytest.mark.xdist_group(group))
            groups[item] = group
    # the machine groups first, longest first, then the modules that run notebooks and train (minutes
    # each), then the rest: `make test` hands groups out in this order (--no-loadscope-reorder), so the
    # long ones do not start last; a module's tests stay together and in order
    def rank(item):
        group = groups[item]
        if group in MACHINE_ORDER:
            return MACHINE_ORDER.index(group)
        folder = os.path.relpath(str(item.path), os.path.join(REPO, "tests")).split(os.sep)[0]
        return len(MACHINE_ORDER) + (0 if folder in LONG_FOLDERS else 1)

    items.sort(key=rank)
