"""The environment's commands (``deepvre``) on a server's ``PATH``: its kernels and its terminals.

A JupyterLab terminal is a login shell when the server has no terminal command of its own, and
the system's ``/etc/profile`` sets ``PATH`` anew: the environment's ``bin/`` was gone from every
terminal. :func:`terminal_shell` puts it back after the profile. Spawners pass it on the server's
command line (``deepvre_hub.terminals``); the server extension (``deepvre_jupyter``) sets it, and
the server's own ``PATH``, where no spawner could (Slurm: sudo's ``secure_path`` replaces ``PATH``
and batchspawner does not quote the server's arguments).
"""

import os
import shlex


def path_with(folder, path=None):
    """``PATH`` with ``folder`` first (once)."""
    rest = [p for p in (path or os.defpath).split(os.pathsep) if p and p != folder]
    return os.pathsep.join([folder, *rest])


def terminal_shell(bin_dir):
    """A terminal's command: a login shell (the profile's variables, as JupyterLab's default
    ``sh -l`` gives them), then the user's shell with ``bin_dir`` first on ``PATH`` again."""
    keep = f'export PATH={shlex.quote(bin_dir)}:"$PATH"; exec "${{SHELL:-/bin/sh}}" -i'
    return ["/bin/sh", "-l", "-c", keep]
