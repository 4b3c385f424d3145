"""``deepvre serve MODEL[:VERSION]``: a catalog model behind the real DEEPaaS API (``deepaas-run``).

deepaas finds models through the ``deepaas.v2.model`` entry point. ``serve`` writes a one-entry
distribution record (``<dir>/deepvre_serve_<name>-0.dist-info``) that points the model's name at
:mod:`deepvre.serving.model`, puts ``<dir>`` on ``PYTHONPATH`` and runs ``deepaas-run`` with
``--model-name NAME``. deepaas 2.6 installs beside the notebook stack (``pip check`` clean), so
it runs from this environment.
"""

import os
import sys
import tempfile
from pathlib import Path

import click

from . import main


def entry_point_dir(name, folder):
    """Write the dist-info that registers ``name`` in ``deepaas.v2.model``; returns ``folder``."""
    safe = name.replace("-", "_")
    info = Path(folder) / f"deepvre_serve_{safe}-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: deepvre-serve-{name}\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[deepaas.v2.model]\n{name} = deepvre.serving.model\n")
    return folder


def deepaas_command(name, ip="127.0.0.1", port=5000, base_path=None, python=sys.executable):
    """The ``deepaas-run`` command line for one model (pure)."""
    command = [str(Path(python).parent / "deepaas-run"), "--listen-ip", ip, "--listen-port", str(port),
               "--model-name", name, "--nodebug"]
    if base_path:
        command += ["--base-path", base_path]
    return command


def serve_environment(ref, entry_dir, artifact_dir=None, env=None):
    """The environment for ``deepaas-run`` serving ``ref`` (pure)."""
    env = dict(os.environ if env is None else env)
    env["DEEPVRE_SERVE_MODEL"] = ref
    if artifact_dir:
        env["DEEPVRE_SERVE_DIR"] = str(artifact_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(entry_dir), env.get("PYTHONPATH", "")) if p)
    return env


@main.command()
@click.argument("model")
@click.option("--ip", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, help="Port to listen on.")
@click.option("--base-path", default=None, help="URL prefix when behind a proxy, e.g. /services/serve-NAME.")
@click.option("--artifact-dir", type=click.Path(file_okay=False), default=None,
              help="Where the model's files are pulled (default: ~/.cache/deepvre/serve/NAME).")
def serve(model, ip, port, base_path, artifact_dir):
    """Serve MODEL[:VERSION] from the marketplace with DEEPaaS (GET /v2/models/, POST .../predict/)."""
    from deepvre.market.client import parse_ref

    name, _ = parse_ref(model)
    entry_dir = entry_point_dir(name, tempfile.mkdtemp(prefix="deepvre-serve-"))
    command = deepaas_command(name, ip, port, base_path)
    env = serve_environment(model, entry_dir, artifact_dir)
    click.echo(f"serving {model} with DEEPaaS on http://{ip}:{port}/v2/models/{name}/", err=True)
    os.execvpe(command[0], command, env)
