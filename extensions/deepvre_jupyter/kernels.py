"""The server's kernel manager: jupyter_server's own, with channels only the account can reach
(``deepvre.runs.kernels.PrivateChannels``). The extension sets it as
``AsyncMappingKernelManager.kernel_manager_class`` when it is linked to the server."""

from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

from deepvre.runs.kernels import PrivateChannels


class PrivateServerKernelManager(PrivateChannels, ServerKernelManager):
    """jupyter_server's kernel manager (activity, execution state) over private ``ipc`` channels."""
