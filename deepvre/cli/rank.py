"""``deepvre market rank DATA``: which catalog model to start from, scored on your preprocessed data."""

import json
import sys

import click

from . import site_settings
from .market import _fail, _json_option, market


def table(result):
    """The ranking as text lines: rank, model:version, LogME, LEEP, probe accuracy, reading (pure)."""
    def number(value, digits):
        return "-" if value is None else f"{value:.{digits}f}"

    data = result["data"]
    splits = ", ".join(f"{k} {v}" for k, v in sorted(data["splits"].items()))
    lines = [f"{data['path']}: {data['samples']} {data['input_kind']} samples {data['shape']}, "
             f"{data['n_classes']} classes ({splits}); {result['seconds']:.1f} s",
             f"{'rank':>4}  {'model:version':<40} {'LogME':>7} {'LEEP':>7} {'probe':>6}  reading"]
    for row in result["models"]:
        lines.append(f"{row['rank']:>4}  {row['model']:<40} {number(row['logme'], 3):>7} "
                     f"{number(row['leep'], 3):>7} {number(row['probe_accuracy'], 2):>6}  {row['reading']}")
    for skip in result["skipped"]:
        lines.append(f"   -  {skip['model']:<40} skipped: {skip['reason']}")
    lines.append(f"based on: {result['basis']}")
    return lines


def stderr_progress():
    """``progress(stage, done, total)`` printing a line per stage and per tenth of it on stderr."""
    last = {}

    def report(stage, done, total):
        step = max(1, total // 10)
        if last.get("stage") != stage or done == total or done - last.get("done", 0) >= step:
            last.update(stage=stage, done=done)
            click.echo(f"{stage}: {done}/{total}", err=True)

    return report


@market.command()
@click.argument("data", type=click.Path())
@_json_option
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Score at most N catalog models (base models first); the random floor is always added.")
@click.option("--cluster", default=None, metavar="local|ADDRESS|slurm|kubernetes",
              help="Where the features are computed (default: the dask settings' cluster, else local).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Number of Dask workers to start.")
@click.option("--settings", "settings_file", type=click.Path(exists=True), default=None,
              help="Site settings YAML (default: $DEEPVRE_SETTINGS); its dask: and slurm: sections make the cluster.")
def rank(data, as_json, limit, cluster, workers, settings_file):
    """Rank the catalog models you can see on DATA, a `deepvre preprocess` output (LogME, LEEP, linear probe)."""
    import logging

    from deepvre.errors import DeepvreError
    from deepvre.science import ranking

    logging.getLogger("distributed").setLevel(logging.WARNING)
    _, site = site_settings(settings_file)
    site = site or {}
    try:
        result = ranking.rank(data, cluster=cluster, settings=site.get("dask"), slurm=site.get("slurm"),
                              n_workers=workers, limit=limit, progress=stderr_progress())
    except (DeepvreError, ValueError, OSError) as err:
        _fail(err, as_json)
    if as_json:
        click.echo(json.dumps(ranking.as_json(result), indent=2))
    else:
        for line in table(result):
            click.echo(line)
    sys.stdout.flush()
