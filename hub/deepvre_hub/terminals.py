"""A JupyterLab terminal that keeps the environment's commands (``deepvre``) on ``PATH``
(:mod:`deepvre.site.shell`): the venv's ``bin/`` (the local checkout's, or ``/opt/deepvre/bin`` in
the images). The local, container and Kubernetes spawners pass :func:`server_args` to the server.
"""

import json

from deepvre.site.shell import path_with, terminal_shell

__all__ = ["IMAGE_BIN", "path_with", "server_args", "terminal_shell"]

IMAGE_BIN = "/opt/deepvre/bin"  # the images' venv (images/*/Dockerfile)


def server_args(bin_dir):
    """The single-user server's arguments that make its terminals :func:`terminal_shell`."""
    return [f"--ServerApp.terminado_settings={json.dumps({'shell_command': terminal_shell(bin_dir)})}"]
