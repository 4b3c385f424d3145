"""The ``deepvre`` command line: one click group, one module per sub-command.

A sub-command module (``deepvre.cli.market``, ``deepvre.cli.preprocess``, ...)
imports ``main`` from here and attaches its command or group to it. Heavy
libraries are imported inside the commands, so ``deepvre --help`` stays fast.
"""

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deepvre")
def main():
    """deepvre: train, re-train and share deep-learning models for science."""


def site_settings(path=None):
    """``(path, settings)``: the site settings file ``path`` (else ``$DEEPVRE_SETTINGS``), loaded and
    validated once here, so commands hand its sections (``slurm:``, ``dask:``, ``profiles:``) to
    what they call; ``(None, None)`` when neither names a file. An invalid file is a usage error
    naming each key."""
    from deepvre.site.environment import Environment
    from deepvre.site.settings import SettingsError, load_settings

    path = path or Environment().settings
    if not path:
        return None, None
    try:
        return path, load_settings(path)
    except SettingsError as err:
        raise click.UsageError(str(err)) from None


# each sub-command module attaches itself to ``main``
from . import data, market, preprocess, rank, results, run, serve, weights  # noqa: E402, F401


def _attach_installed_commands():
    """The commands other packages offer (``deepvre.commands`` entry points: the hub's ``hub``
    and ``deploy``, from ``deepvre_hub.commands``), without importing them by name here."""
    from importlib.metadata import entry_points

    for point in entry_points(group="deepvre.commands"):
        main.add_command(point.load(), point.name)


_attach_installed_commands()
