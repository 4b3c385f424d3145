"""A JupyterLab terminal that keeps the environment's commands (``deepvre``) on ``PATH``.

JupyterLab starts a terminal as a login shell when the server has no terminal of its own (under a
spawner), and the system's ``/etc/profile`` sets ``PATH`` anew: the venv's ``bin/`` (the local
checkout's, or ``/opt/deepvre/bin`` in the images) was gone from every terminal, kernels kept it.
Every spawner passes :func:`server_args` to the server.
"""

import json
import os
import shlex

IMAGE_BIN = "/opt/deepvre/bin"  # the images' venv (images/*/Dockerfile)


def path_with(folder, path=None):
    """``PATH`` with ``folder`` first (once): a server's kernels run the environment's commands."""
    rest = [p for p in (path or os.defpath).split(os.pathsep) if p and p != folder]
    return os.pathsep.join([folder, *rest])


def terminal_shell(bin_dir):
    """A terminal's command: a login shell (the profile's variables, as JupyterLab's default
    ``sh -l`` gives them), then the user's shell with ``bin_dir`` first on ``PATH`` again."""
    keep = f'export PATH={shlex.quote(bin_dir)}:"$PATH"; exec "${{SHELL:-/bin/sh}}" -i'
    return ["/bin/sh", "-l", "-c", keep]


def server_args(bin_dir):
    """The single-user server's arguments that make its terminals :func:`terminal_shell`."""
    return [f"--ServerApp.terminado_settings={json.dumps({'shell_command': terminal_shell(bin_dir)})}"]
