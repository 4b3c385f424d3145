"""The ``deepvre`` command line: one click group, one module per sub-command.

A sub-command module (``deepvre.cli.market``, ``deepvre.cli.preprocess``, ...)
imports ``main`` from here and attaches its command or group to it. Heavy
libraries are imported inside the commands, so ``deepvre --help`` stays fast.
"""

import importlib

import click

from .. import __version__

SUBCOMMANDS = ("hub", "market", "serve", "preprocess", "run", "weights", "data", "deploy")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deepvre")
def main():
    """deepvre: train, re-train and share deep-learning models for science."""


for _name in SUBCOMMANDS:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as err:  # a sub-command not written yet
        if err.name != f"{__name__}.{_name}":
            raise
