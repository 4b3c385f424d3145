"""A kernel's channels are closed to other local accounts (found by the listener census).

On jupyter_client's default ``tcp`` transport a kernel's iopub is a ZeroMQ PUB socket on
127.0.0.1: any local process may subscribe and read every cell and its output. The kernels of
papermill runs and of the users' servers now use Unix sockets in a folder (0700) of their own.
The attacker here is ``nobody`` subscribing to the kernel's iopub while the owner runs code.
"""

import asyncio
import os
import subprocess
import sys

import pytest

from deepvre.runs.kernels import PrivateKernelManager
from tests.prereqs import require_root

SUBSCRIBE = """
import sys, zmq
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.connect(sys.argv[1])
print("READY", flush=True)
got = sub.poll(8000)
print("GOT" if got else "NOTHING", flush=True)
"""


async def attack(km):
    """Run code in the kernel while ``nobody`` subscribes to its iopub; what ``nobody`` got."""
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        info = km.get_connection_info()
        address = (f"ipc://{info['ip']}-{info['iopub_port']}" if info["transport"] == "ipc"
                   else f"tcp://{info['ip']}:{info['iopub_port']}")
        spy = subprocess.Popen([sys.executable, "-c", SUBSCRIBE, address], user="nobody", extra_groups=[],
                               stdout=subprocess.PIPE, text=True, cwd="/")
        assert spy.stdout.readline().strip() == "READY"
        for _ in range(10):
            kc.execute("print('secret output')")
            await asyncio.sleep(0.3)
        return spy.communicate(timeout=30)[0].strip(), info
    finally:
        kc.stop_channels()


@pytest.mark.parametrize("private", [True, False])
def test_a_kernels_output_is_closed_to_other_accounts(private):
    """``private=False`` is jupyter_client's default manager: the attack works there, so the
    test can tell."""
    require_root()
    from jupyter_client.manager import AsyncKernelManager

    async def run():
        km = PrivateKernelManager() if private else AsyncKernelManager()
        await km.start_kernel()
        try:
            return await attack(km)
        finally:
            await km.shutdown_kernel(now=True)

    seen, info = asyncio.run(run())
    if private:
        assert info["transport"] == "ipc" and os.path.dirname(info["ip"]).startswith("/")
        assert seen == "NOTHING"
    else:
        assert seen == "GOT"


SERVER = """
import sys
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.initialize(argv=["--allow-root", "--no-browser", "--port=0", "--ServerApp.root_dir=" + sys.argv[1],
                     "--ServerApp.jpserver_extensions={'deepvre_jupyter': True}"])
print(app.kernel_manager.kernel_manager_class)
"""


def test_the_server_extension_gives_the_server_private_kernels(tmp_path):
    """In a process of its own: a ServerApp made here would stay linked to this test process's
    extension instances."""
    out = subprocess.run([sys.executable, "-c", SERVER, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, check=True, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "deepvre_jupyter.kernels.PrivateServerKernelManager"
