"""The deepvre jupyter_server extension: the REST API behind the Models panel.

Enabled by ``etc/jupyter/jupyter_server_config.d/deepvre.json`` when deepvre is installed.
Settings (``c.DeepvreExtension.<name>`` in ``jupyter_server_config.py``) are traitlets below.
"""

import os
import sys
import tempfile

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Unicode, default

from deepvre.site import shell
from deepvre.site.settings import server_sections

from .jobs import ModelServices, PreprocessJobs


class DeepvreExtension(ExtensionApp):
    name = "deepvre"

    runs_dir = Unicode(
        "runs", config=True,
        help="Folder of batch runs, relative to the server's root directory. Example: 'runs'.",
    )
    notebooks_dir = Unicode(
        "fine-tune", config=True,
        help="Folder (relative to the root directory) where Fine-tune writes parameterized notebooks. "
             "Example: 'fine-tune'.",
    )
    site = Dict(
        config=True,
        help="What this server uses of the site settings: 'runs_backend', and the 'slurm' and 'dask' "
             "sections for the panel's runs and Dask clusters. Default: what the hub handed the server "
             "($DEEPVRE_SERVER_SETTINGS, from deepvre.site.settings.for_servers); empty outside a hub.",
    )
    runs_backend = Unicode(
        config=True,
        help="Runner backend for batch runs started from the panel: 'local' or 'slurm' "
             "(default: the site's, else 'local'). Example: 'slurm'.",
    )
    cache_dir = Unicode(
        config=True,
        help="Folder for training notebooks fetched from the marketplace and service logs. "
             "Example: '~/.cache/deepvre'.",
    )

    @default("site")
    def _site_default(self):
        return server_sections()

    @default("runs_backend")
    def _runs_backend_default(self):
        return self.site.get("runs_backend") or "local"

    @default("cache_dir")
    def _cache_dir_default(self):
        return tempfile.mkdtemp(prefix="deepvre-server-")

    def _link_jupyter_server_extension(self, serverapp):
        """Before the server makes its kernel manager: kernels on private channels
        (``deepvre_jupyter.kernels``), unless the site chose a kernel manager class."""
        super()._link_jupyter_server_extension(serverapp)
        managers = serverapp.config.AsyncMappingKernelManager
        if "kernel_manager_class" not in managers:
            managers.kernel_manager_class = "deepvre_jupyter.kernels.PrivateServerKernelManager"
        # `deepvre` on PATH in kernels and terminals, whatever the spawner passed (deepvre.site.shell)
        bin_dir = os.path.dirname(sys.executable)
        os.environ["PATH"] = shell.path_with(bin_dir, os.environ.get("PATH"))
        if "shell_command" not in serverapp.terminado_settings:
            serverapp.terminado_settings = {**serverapp.terminado_settings,
                                            "shell_command": shell.terminal_shell(bin_dir)}

    def initialize_settings(self):
        self.cache_dir = os.path.expanduser(self.cache_dir)
        self.preprocess_jobs = PreprocessJobs(self.site.get("dask"), self.site.get("slurm"))
        self.services = ModelServices(os.path.join(self.cache_dir, "services"))
        self.settings["deepvre"] = self

    def initialize_handlers(self):
        from .handlers import handlers

        self.handlers.extend(handlers("/"))

    async def stop_extension(self):
        self.services.stop_all()


def _jupyter_server_extension_points():
    return [{"module": "deepvre_jupyter", "app": DeepvreExtension}]
