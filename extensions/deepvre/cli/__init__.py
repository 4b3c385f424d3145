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


# each sub-command module attaches itself to ``main``
from . import data, deploy, hub, market, preprocess, run, serve, weights  # noqa: E402, F401
