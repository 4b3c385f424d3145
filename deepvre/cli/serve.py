"""``deepvre serve MODEL[:VERSION]``: a catalog model behind the real DEEPaaS API (``deepaas-run``).

deepaas finds models through the ``deepaas.v2.model`` entry point. ``serve`` writes a one-entry
distribution record (``<dir>/deepvre_serve_<name>-0.dist-info``) that points the model's name at
:mod:`deepvre.serving.model`, puts ``<dir>`` on ``PYTHONPATH`` and runs ``deepaas-run`` with
``--model-name NAME``, through deepvre's launcher (:mod:`deepvre.serving.launch`): DEEPaaS's own
app, listening on a Unix socket in an owner-only folder or on TCP behind a token, with private
uploads and ``train`` for the model's owner only. deepaas 2.6 installs beside the notebook stack
(``pip check`` clean), so it runs from this environment.
"""

import os
import secrets
import sys
import tempfile
from pathlib import Path

import click

from ..site import environment
from . import main

TOKEN_ENV = environment.SERVE_TOKEN  # deepvre.serving.launch reads it (and drops it from its environment)


def entry_point_dir(name, folder):
    """Write the dist-info that registers ``name`` in ``deepaas.v2.model``; returns ``folder``."""
    safe = name.replace("-", "_")
    info = Path(folder) / f"deepvre_serve_{safe}-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: deepvre-serve-{name}\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[deepaas.v2.model]\n{name} = deepvre.serving.model\n")
    return folder


def deepaas_command(name, ip="127.0.0.1", port=5000, base_path=None, python=sys.executable, socket=None,
                    uploads=None, insecure=False, exit_with_parent=False, threads=None, max_batch=None,
                    model_calls=None):
    """The command line of deepvre's DEEPaaS launcher (``deepaas-run`` plus its guards) for one model (pure).

    With ``socket`` it listens on that Unix socket only; else on ``ip:port``, where it demands the
    token in ``$DEEPVRE_SERVE_TOKEN`` unless ``insecure``.
    """
    command = [str(python), "-m", "deepvre.serving.launch", "--model-name", name]
    command += ["--socket", str(socket)] if socket else ["--ip", ip, "--port", str(port)]
    if base_path:
        command += ["--base-path", base_path]
    if uploads:
        command += ["--uploads", str(uploads)]
    if exit_with_parent:
        command.append("--exit-with-parent")
    for flag, value in (("--threads", threads), ("--max-batch", max_batch), ("--model-calls", model_calls)):
        command += [flag, str(value)] if value else []
    return command + (["--insecure"] if insecure and not socket else [])


def serve_environment(ref, entry_dir, artifact_dir=None, env=None, token=None):
    """The environment for the launcher serving ``ref`` (pure)."""
    env = dict(os.environ if env is None else env)
    env[environment.SERVE_MODEL] = ref
    if artifact_dir:
        env[environment.SERVE_DIR] = str(artifact_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(entry_dir), env.get("PYTHONPATH", "")) if p)
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token
    return env


@main.command()
@click.argument("model")
@click.option("--ip", default="127.0.0.1", show_default=True, help="Address to listen on (TCP).")
@click.option("--port", default=5000, show_default=True, help="Port to listen on (TCP).")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), default=None,
              help="Listen on this Unix socket instead of TCP; its folder is made 0700 (owner only).")
@click.option("--base-path", default=None, help="URL prefix when behind a proxy, e.g. /services/serve-NAME.")
@click.option("--artifact-dir", type=click.Path(file_okay=False), default=None,
              help="Where the model's files are pulled (default: ~/.cache/deepvre/serve/NAME).")
@click.option("--uploads", type=click.Path(file_okay=False), default=None,
              help="Private folder (0700) for uploaded files; emptied after requests, removed at exit.")
@click.option("--threads", type=click.IntRange(1, 64), default=16, show_default=True,
              help="Requests predicted at once, in threads of the service; their model calls are stacked into one.")
@click.option("--max-batch", type=click.IntRange(1, 256), default=4, show_default=True,
              help="Most samples stacked into one model call.")
@click.option("--model-calls", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Model calls at once, each on a stack of requests.")
@click.option("--insecure", is_flag=True, help="TCP without a token: anyone who reaches the port can use the model.")
@click.option("--exit-with-parent", is_flag=True,
              help="Stop when the process that started this one ends (the Models panel's services end with their server).")
def serve(model, ip, port, socket_path, base_path, artifact_dir, uploads, threads, max_batch, model_calls, insecure,
          exit_with_parent):
    """Serve MODEL[:VERSION] from the marketplace with DEEPaaS (GET /v2/models/, POST .../predict/).

    On TCP every request needs the token (header ``Authorization: token TOKEN``, or ``?token=TOKEN``
    once in a browser): ``$DEEPVRE_SERVE_TOKEN``, else a new one printed here once.
    """
    from deepvre.market.client import parse_ref

    name, _ = parse_ref(model)
    entry_dir = entry_point_dir(name, tempfile.mkdtemp(prefix="deepvre-serve-"))
    token = None
    if socket_path:
        where = f"unix:{socket_path}"
    elif insecure:
        click.echo(f"WARNING: --insecure: anyone who can reach {ip}:{port} can read, predict with and train "
                   f"{model} as you", err=True)
        where = f"http://{ip}:{port}"
    else:
        given = environment.Environment().serve_token
        token = given or secrets.token_urlsafe(32)
        where = f"http://{ip}:{port}"
        if not given:
            click.echo(f"token (shown once; send it as 'Authorization: token ...'): {token}", err=True)
    command = deepaas_command(name, ip, port, base_path, socket=socket_path, uploads=uploads, insecure=insecure,
                              exit_with_parent=exit_with_parent, threads=threads, max_batch=max_batch,
                              model_calls=model_calls)
    env = serve_environment(model, entry_dir, artifact_dir, token=token)
    click.echo(f"serving {model} with DEEPaaS on {where}{base_path or ''}/v2/models/{name}/", err=True)
    os.execvpe(command[0], command, env)
