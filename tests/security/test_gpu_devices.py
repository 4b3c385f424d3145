"""A GPU's device node opens only for the account of the server that holds it.

The finding (issue 13): local GPU allocation was ``CUDA_VISIBLE_DEVICES`` only, advice that a
user's code can ignore, since the driver makes ``/dev/nvidia<N>`` 0666. This machine has no
GPU, so the GPUs' nodes are real character devices the test makes with ``mknod`` (the numbers of
``/dev/null`` and ``/dev/zero``: opening one is what CUDA's open of a GPU node is to the kernel's
permission check), 0666 as the driver leaves them, named in the ``gpus.devices`` list. A real
root hub runs alice's GPU server and bob's CPU server; their kernels, and ``nobody``, try the
nodes.
"""

import os
import pwd
import secrets
import shutil
import subprocess
import sys

import pytest

from deepvre_hub import gpu_devices
from tests.hub.hubprocess import HubProcess, run_code
from tests.prereqs import hub_tmpdir, require_program, require_proxy, require_root

PASSWORD = "gpu-devices-pw-1"
PROFILES = [{"slug": "cpu", "display_name": "CPU", "default": True},
            {"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1}]
OPEN = """
import sys
for node in {nodes!r}:
    try:
        open(node, "wb").close()
        print("OPENED", node)
    except PermissionError:
        print("REFUSED", node)
"""


def make_nodes(folder):
    """Two "GPU" nodes as the NVIDIA driver leaves them: character devices, 0666, root's."""
    nodes = []
    for i, minor in enumerate((3, 5)):
        node = os.path.join(folder, f"nvidia{i}")
        os.mknod(node, 0o666 | 0o020000, os.makedev(1, minor))
        os.chmod(node, 0o666)
        nodes.append(node)
    return nodes


def tried(nodes, user=None, server=None, token=None):
    """{node: "OPENED" or "REFUSED"}, tried in a kernel of ``server`` or as the OS account ``user``."""
    code = OPEN.format(nodes=nodes)
    if server:
        out = run_code(server, token, code)
    else:
        out = subprocess.run([sys.executable, "-c", code], user=user, extra_groups=[], capture_output=True,
                             text=True, timeout=60, check=True, cwd="/").stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines() if line.split()[:1] in (["OPENED"], ["REFUSED"])}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_program("setfacl")
    require_proxy()
    folder = hub_tmpdir("gpu-nodes-")
    nodes = make_nodes(folder)
    process = HubProcess({"profiles": PROFILES, "gpus": {"discovery": "list", "devices": [
        {"index": "0", "device": nodes[0]}, {"index": "1", "device": nodes[1]}]}},
        tmp_path_factory.mktemp("gpu-hub") / "state")
    process.start()
    admin = process.login(process.admin, process.admin_password)
    users = {}
    for role in ("alice", "bob"):
        name = f"gpud{secrets.token_hex(3)}{role[0]}"
        users[role] = (name, process.approved_user(admin, name, PASSWORD)[1])
    process.nodes, process.users = nodes, users
    yield process
    process.teardown()
    shutil.rmtree(folder, ignore_errors=True)


def test_a_gpu_node_opens_only_for_the_server_that_holds_it(hub):
    nodes = hub.nodes
    for node in nodes:  # locked at hub start: root's, 0600, no ACL
        info = os.stat(node)
        assert (info.st_uid, info.st_mode & 0o777) == (0, 0o600), node
        assert not gpu_devices.has_acl(node)
    assert tried(nodes, user="nobody") == {nodes[0]: "REFUSED", nodes[1]: "REFUSED"}

    alice, alice_token = hub.users["alice"]
    bob, bob_token = hub.users["bob"]
    assert hub.spawn(alice_token, alice, profile="gpu-1").status_code in (201, 202)
    assert hub.spawn(bob_token, bob, profile="cpu").status_code in (201, 202)
    alice_sees = tried(nodes, server=hub.server_url(alice), token=alice_token)
    mine = [n for n, result in alice_sees.items() if result == "OPENED"]
    assert len(mine) == 1, alice_sees  # her one GPU, not the other
    other = [n for n in nodes if n not in mine]
    # bob's kernel ignores CUDA_VISIBLE_DEVICES and opens the nodes directly; nobody tries too
    assert tried(nodes, server=hub.server_url(bob), token=bob_token) == dict.fromkeys(nodes, "REFUSED")
    assert tried(nodes, user="nobody") == dict.fromkeys(nodes, "REFUSED")
    assert os.stat(other[0]).st_mode & 0o777 == 0o600

    hub.stop_server(alice_token, alice)
    assert tried(nodes, user=alice) == dict.fromkeys(nodes, "REFUSED")  # taken back at stop
    assert not gpu_devices.has_acl(mine[0]) or f"user:{alice}:" not in subprocess.run(
        ["getfacl", "-p", mine[0]], capture_output=True, text=True, check=True).stdout
    hub.stop_server(bob_token, bob)


def test_a_node_the_driver_recreated_is_locked_again_before_it_is_granted(tmp_path):
    require_root()
    require_program("setfacl")
    node = make_nodes(hub_tmpdir("gpu-node-"))[0]
    try:
        assert gpu_devices.lock([node, str(tmp_path / "missing")]) == [node]  # no node: nothing to do
        gpu_devices.grant([node], "nobody")
        assert tried([node], user="nobody") == {node: "OPENED"}
        # a process that opened it while it could keeps no handle past the revoke
        holder = subprocess.Popen([sys.executable, "-c", f"f = open({node!r}, 'wb'); print('open', flush=True); "
                                   "import time; time.sleep(120)"], user="nobody", stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "open"
        assert gpu_devices.holders(node, pwd.getpwnam("nobody").pw_uid) == [holder.pid]
        gpu_devices.revoke([node], "nobody")
        assert holder.wait(30) == -9
        assert tried([node], user="nobody") == {node: "REFUSED"}
        os.chmod(node, 0o666)  # module reloaded: NVreg_DeviceFileMode
        subprocess.run(["setfacl", "-m", "user:nobody:rw", node], check=True)  # an entry a failed revoke left
        gpu_devices.grant([node], "daemon")
        assert tried([node], user="nobody") == {node: "REFUSED"}
        assert tried([node], user="daemon") == {node: "OPENED"}
        # a node reached through a link, or in a folder others may write, is never touched
        link = os.path.join(os.path.dirname(node), "link")
        os.symlink(node, link)
        writable = hub_tmpdir("gpu-open-")
        os.chmod(writable, 0o777)
        os.mknod(os.path.join(writable, "nvidia9"), 0o600 | 0o020000, os.makedev(1, 3))
        for bad in (link, os.path.join(writable, "nvidia9")):
            with pytest.raises(gpu_devices.DevicesUnrestricted, match="link or lies in a folder"):
                gpu_devices.grant([bad], "nobody")
        shutil.rmtree(writable, ignore_errors=True)
    finally:
        shutil.rmtree(os.path.dirname(node), ignore_errors=True)
