"""``deepvre hub``: run the local JupyterHub (``deepvre hub up``) and check its settings."""

import sys

import click

from . import main


@main.group()
def hub():
    """Run and check the deepvre JupyterHub."""


@hub.command()
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False), default=None,
              help="Settings YAML (default: $DEEPVRE_SETTINGS, else hub/settings.yaml in a checkout, /etc/deepvre/settings.yaml installed).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the database and secrets (default: hub.state_dir, else var/ in the checkout, or in the current folder when installed).")
@click.option("--port", type=int, default=None, help="Public port (overrides hub.port).")
@click.option("--ip", default=None, help="Public address (overrides hub.ip).")
def up(settings_file, state_dir, port, ip):
    """Start the hub in the foreground; Ctrl-C stops the hub, the proxy and the servers.

    The first start creates the state folder and the admin account, whose generated password
    is printed once. Later starts resume with every user, file and setting.
    """
    from deepvre.site.settings import SettingsError
    from deepvre_hub.launcher import up as start

    try:
        start(settings_file, state_dir, port=port, ip=ip)
    except SettingsError as err:
        click.echo(f"deepvre: {err}", err=True)
        sys.exit(2)


@hub.command("check")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False), default=None,
              help="Settings YAML (default: $DEEPVRE_SETTINGS, else hub/settings.yaml in a checkout, /etc/deepvre/settings.yaml installed).")
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
