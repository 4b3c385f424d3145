"""Kernels whose channels only their own account can reach.

jupyter_client's default ``tcp`` transport puts a kernel's channels on 127.0.0.1. Requests must
be signed with the key of the connection file, but iopub is a ZeroMQ PUB socket: any local
process may subscribe and read every cell a kernel runs and everything it prints (found by the
listener census, docs/security.md). These managers use the ``ipc`` transport instead: Unix
sockets in a new folder (0700) of the kernel's own, short enough for the 107-byte limit of a
socket path wherever the home folder is; the folder goes with the kernel.

``PrivateKernelManager`` is papermill's (``deepvre.runs.execute``); the server's is
``deepvre_jupyter.kernels.PrivateServerKernelManager``, set by the server extension.
"""

import os
import shutil
import tempfile

from jupyter_client.manager import AsyncKernelManager


class PrivateChannels:
    """Mixin for a kernel manager: ``ipc`` channels in a private folder."""

    # traitlets' dynamic defaults by name (a ``@default`` in a mixin is not registered)
    def _transport_default(self):
        return "ipc"

    def _ip_default(self):  # for ipc: the sockets' path prefix
        if self.transport != "ipc":
            return super()._ip_default()
        self._channels_folder = tempfile.mkdtemp(prefix="jupyter-kernel-")  # 0700
        return os.path.join(self._channels_folder, "ipc")

    async def _async_cleanup_resources(self, restart=False):  # what every shutdown calls
        await super()._async_cleanup_resources(restart=restart)
        folder = getattr(self, "_channels_folder", None)
        if folder and not restart:
            shutil.rmtree(folder, ignore_errors=True)


class PrivateKernelManager(PrivateChannels, AsyncKernelManager):
    """For papermill (nbclient)."""
