"""The hub's sub-commands of ``deepvre``: ``deepvre hub`` (run the local JupyterHub, check its
settings) and ``deepvre deploy`` (render what a deployment needs, for review before applying it).

They live with the hub, which the ``deepvre`` command line (``deepvre.cli``, the Jupyter side)
does not import: setup.cfg's ``deepvre.commands`` entry points attach them to it.
"""

import os
import sys

import click


@click.group()
def hub():
    """Run and check the deepvre JupyterHub."""


@hub.command()
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False), default=None,
              help="Settings YAML (default: $DEEPVRE_SETTINGS, else hub/settings.yaml in a checkout, "
                   "/etc/deepvre/settings.yaml installed).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the database and secrets (default: hub.state_dir, else var/ in a checkout; installed: "
                   "/var/lib/deepvre as root, ~/.local/state/deepvre otherwise).")
@click.option("--port", type=int, default=None, help="Public port (overrides hub.port).")
@click.option("--ip", default=None, help="Public address (overrides hub.ip).")
def up(settings_file, state_dir, port, ip):
    """Start the hub in the foreground; Ctrl-C stops the hub, the proxy and the servers.

    The first start creates the state folder and the admin account, whose generated password
    is printed once. Later starts resume with every user, file and setting.
    """
    from deepvre.site.settings import SettingsError

    from .launcher import up as start

    try:
        start(settings_file, state_dir, port=port, ip=ip)
    except SettingsError as err:
        click.echo(f"deepvre: {err}", err=True)
        sys.exit(2)


@hub.command("check")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False), default=None,
              help="Settings YAML (default: $DEEPVRE_SETTINGS, else hub/settings.yaml in a checkout, "
                   "/etc/deepvre/settings.yaml installed).")
@click.option("--explain", is_flag=True,
              help="Also list every DEEPVRE_* environment variable: what it is, who sets and reads it, "
                   "and its value here (secrets hidden).")
def check(settings_file, explain):
    """Validate the settings file; every error names its key."""
    from deepvre.site.settings import SettingsError, load_settings

    if explain:
        from deepvre.site.environment import variables

        for name, help_text, value in variables():
            click.echo(f"{name} = {value}\n    {help_text}")

    try:
        settings = load_settings(settings_file)
    except SettingsError as err:
        click.echo(f"deepvre: {err}", err=True)
        sys.exit(2)
    click.echo(f"settings OK: mode {settings['mode']}, {len(settings.get('profiles') or [])} profiles")



@click.group()
def deploy():
    """Render deployment files (Kubernetes: Zero to JupyterHub values and manifests)."""


@deploy.command("kubernetes")
@click.option("--render", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write values.yaml, manifests.yaml and helm-command.txt into.")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Site settings YAML (default: hub/settings.yaml).")
@click.option("--force", is_flag=True, help="Overwrite files already in the output folder.")
def kubernetes(out, settings_file, force):
    """Write the z2jh Helm values and the extra manifests for `helm upgrade --install`."""
    from . import kubernetes as k8s

    settings_file = settings_file or "hub/settings.yaml"
    if not os.path.isfile(settings_file):
        raise click.UsageError(f"--settings: {settings_file} does not exist")
    settings = _load_settings(settings_file)
    try:
        values = k8s.z2jh_values(settings)
        objects = k8s.manifests(settings)
        ns = k8s.kubernetes_settings(settings)
    except k8s.RenderError as err:
        raise click.ClickException(f"{settings_file}: {err}") from None

    files = {
        "values.yaml": _dump(values, f"Zero to JupyterHub {k8s.CHART_VERSION} values rendered by deepvre"),
        "manifests.yaml": "---\n".join(_dump(o) for o in objects),
        "helm-command.txt": helm_command(ns["release"], ns["namespace"], k8s.CHART_VERSION) + "\n",
    }
    os.makedirs(out, exist_ok=True)
    existing = [name for name in files if os.path.exists(os.path.join(out, name))]
    if existing and not force:
        raise click.ClickException(f"{out}: would overwrite {', '.join(existing)} (use --force)")
    for name, text in files.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)
    click.echo(f"wrote {', '.join(files)} to {out}")
    click.echo(files["helm-command.txt"].strip())


def helm_command(release, namespace, chart_version):
    """The commands that apply the rendered files (also in hub/kubernetes/README.md)."""
    return (
        "helm repo add jupyterhub https://hub.jupyter.org/helm-chart/ && helm repo update\n"
        f"kubectl create namespace {namespace} --dry-run=client -o yaml | kubectl apply -f -\n"
        "kubectl apply -f manifests.yaml\n"
        f"helm upgrade --cleanup-on-fail --install {release} jupyterhub/jupyterhub "
        f"--namespace {namespace} --version={chart_version} --values values.yaml"
    )


def _load_settings(path):
    from deepvre.site.settings import load_settings

    return load_settings(path)


def _dump(data, title=None):
    import yaml

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    head = f"# {title}\n" if title else ""
    return head + yaml.dump(data, Dumper=NoAliases, sort_keys=False, default_flow_style=False)
