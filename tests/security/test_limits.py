"""A profile's cores and memory are enforced by the kernel in local mode (issue 13: "local CPU,
memory and GPU limits are advisory"): each server runs in a cgroup of its own
(``deepvre_hub.limits``), and a user's process that goes past the profile's memory is killed
instead of taking the machine's."""

import os
import secrets
import subprocess

import pytest

from deepvre_hub import limits
from tests.hub.hubprocess import HubProcess, run_code
from tests.prereqs import require, require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

PASSWORD = "limits-" + secrets.token_hex(6)
PROFILES = [{"slug": "small", "display_name": "Small", "cpu": 0.5, "memory": "600M", "default": True}]
HOG = """
import subprocess, sys
for mib in (50, 1500):
    r = subprocess.run([sys.executable, "-c", f"x = bytearray({mib} * 2**20); x[::4096] = b'1' * len(x[::4096])"])
    print(mib, r.returncode)
print(open("/proc/self/cgroup").read())
"""


ESCAPE = """
import os
for path, value in {targets!r}:
    try:
        with open(path, "w") as f:
            f.write(value if value != "0" else str(os.getpid()))
        print("WROTE")
    except OSError:
        print("DENIED")
"""


def test_limit_files_for_both_cgroup_versions():
    assert limits.limit_files(2, cpu=1.5, memory=2**30) == {
        ("pids", "pids.max"): "4096", ("memory", "memory.max"): str(2**30), ("memory", "memory.swap.max"): "0",
        ("cpu", "cpu.max"): "150000 100000"}
    assert limits.limit_files(1, cpu=0.5, memory=2**20) == {
        ("pids", "pids.max"): "4096", ("memory", "memory.limit_in_bytes"): str(2**20),
        ("memory", "memory.memsw.limit_in_bytes"): str(2**20),
        ("cpu", "cpu.cfs_period_us"): "100000", ("cpu", "cpu.cfs_quota_us"): "50000"}
    assert limits.limit_files(2, pids=None) == {}


def test_cgroup_names_stay_in_their_folder_and_are_one_per_server():
    assert limits.cgroup_name("alice/").startswith("alice-")
    assert limits.cgroup_name("alice/gpu-a").startswith("alice--gpu-a-")
    for owner in ("../../x/", "al ice/../../y", "a/b/c"):
        name = limits.cgroup_name(owner)
        assert "/" not in name and name not in (".", "..") and not name.startswith(".")
    # owners that read alike (a trailing "-" is a valid user name; server names may hold "--")
    alike = ["alice/", "alice-/", "alice--/", "alice/-", "alice/--", "a/b--c", "a--b/c", "alice/gpu", "alice--gpu/",
             "a b/", "a_b/"]
    assert len({limits.cgroup_name(owner) for owner in alike}) == len(alike)


def test_hierarchy_is_found_or_not(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert limits.find_hierarchy(str(v2)) == limits.Hierarchy(2, str(v2), str(v2), str(v2))
    (v2 / "cgroup.controllers").write_text("pids\n")
    assert limits.find_hierarchy(str(v2)) is None
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "cpu").mkdir()
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert limits.find_hierarchy(str(v1)) == limits.Hierarchy(1, str(v1 / "memory"), str(v1 / "cpu"))
    assert limits.find_hierarchy(str(tmp_path / "none")) is None


def test_sweep_removes_empty_server_cgroups_only(tmp_path):
    """Empty cgroups left by stopped servers go at the next hub start; ones with processes stay
    (a plain folder tree stands in for cgroupfs: there rmdir refuses a cgroup with processes)."""
    hierarchy = limits.Hierarchy(1, str(tmp_path / "memory"), str(tmp_path / "cpu"))
    for base in ("memory", "cpu"):
        (tmp_path / base / "deepvre" / "gone-1").mkdir(parents=True)
        (tmp_path / base / "deepvre" / "busy-2").mkdir(parents=True)
        (tmp_path / base / "deepvre" / "busy-2" / "cgroup.procs").write_text("4242\n")
    assert limits.sweep(hierarchy) == set()  # just made: another hub's spawn may be about to join it
    later = os.stat(tmp_path / "cpu" / "deepvre" / "gone-1").st_ctime + limits.FRESH + 1
    assert limits.sweep(hierarchy, now=later) == {"gone-1"}
    assert sorted(p.name for p in (tmp_path / "memory" / "deepvre").iterdir()) == ["busy-2"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    try:  # the machine must let root make cgroups (a container may not)
        limits.create("deepvre-probe/", cpu=1, memory=2**30)
        limits.remove("deepvre-probe/")
    except limits.LimitsUnavailable as err:
        require(False, f"needs a cgroup tree root may write to: {err}")
    process = HubProcess({"profiles": PROFILES, "hub": {"enforce_limits": "required"}},
                         tmp_path_factory.mktemp("limits-hub") / "state")
    process.start()
    admin = process.login(process.admin, process.admin_password)
    name = f"limits{secrets.token_hex(3)}"
    _, token = process.approved_user(admin, name, PASSWORD)
    yield process, name, token
    process.teardown()


def test_a_process_past_the_profiles_memory_is_killed_not_the_machine(hub):
    process, name, token = hub
    assert process.spawn(token, name).status_code in (201, 202)
    out = run_code(process.server_url(name), token, HOG, timeout=180)
    lines = out.splitlines()
    assert "50 0" in lines, out  # within the profile: fine
    assert "1500 -9" in lines, out  # past 600M: the kernel kills it (before: it got its 1.5 GiB)
    # the kernel (a child of the server) is in the server's cgroup, with the profile's quota
    hierarchy = limits.find_hierarchy()
    folder = f"{limits.GROUP}/{limits.cgroup_name(name + '/')}"
    assert f"/{folder}" in out
    if hierarchy.version == 1:
        quota = open(os.path.join(hierarchy.cpu, folder, "cpu.cfs_quota_us")).read().strip()
        memory = open(os.path.join(hierarchy.memory, folder, "memory.limit_in_bytes")).read().strip()
    else:
        quota = open(os.path.join(hierarchy.cpu, folder, "cpu.max")).read().split()[0]
        memory = open(os.path.join(hierarchy.memory, folder, "memory.max")).read().strip()
    assert quota == "50000" and int(memory) == 600 * 2**20
    # the user's kernel cannot raise its own limits nor leave its cgroup; another local account
    # cannot join it (to spend the user's budget) or change it either
    limit_file = os.path.join(hierarchy.memory, folder, "memory.limit_in_bytes" if hierarchy.version == 1 else "memory.max")
    root_procs = os.path.join(hierarchy.memory, "cgroup.procs")
    tries = run_code(process.server_url(name), token, ESCAPE.format(targets=[(limit_file, "99999999999"), (root_procs, "0")]))
    assert tries.split() == ["DENIED", "DENIED"], tries
    procs = os.path.join(hierarchy.memory, folder, "cgroup.procs")
    other = subprocess.run(["runuser", "-u", "nobody", "--", "sh", "-c", f"echo $$ > {procs}; echo 1 > {limit_file}"],
                           capture_output=True, text=True)
    assert other.returncode != 0 and "Permission denied" in other.stderr, other
    assert int(open(limit_file).read()) == 600 * 2**20
    if hierarchy.pids:
        assert open(os.path.join(hierarchy.pids, folder, "pids.max")).read().strip() == str(limits.MAX_PIDS)
    process.stop_server(token, name)
    assert not os.path.exists(os.path.join(hierarchy.memory, folder)), "the cgroup is removed with the server"
