"""``deepvre preprocess KIND INPUT OUTPUT``: run a Dask preprocessing pipeline."""

import click

from . import main, site_settings

KINDS_HELP = """\b
Kinds:
  images   class folders, or images + masks/boxes -> resized, normalized patches
  rasters  GeoTIFF/JPEG/PNG scenes -> tiles, labels from a co-registered raster
  flows    Zeek conn.log -> features per time window -> forecasting sequences
  lattice  deepvre/ILDG gauge configurations -> observables + field tensors
"""


class PreprocessCommand(click.Command):
    """Help that also lists the pipelines installed through the ``deepvre.pipelines`` entry points."""

    def format_epilog(self, ctx, formatter):
        from importlib.metadata import entry_points

        from ..pipelines.registry import BUILTIN, ENTRY_POINT_GROUP, describe

        super().format_epilog(ctx, formatter)
        lines = []
        for name, value in sorted({(ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)
                                   if ep.name not in BUILTIN}):
            try:
                about = describe(name).split(":", 1)[-1].strip()
            except Exception as err:  # noqa: BLE001 - a broken plug-in must not break --help
                about = f"({value}: {type(err).__name__})"
            lines.append(f"    {name}  {about}")
        lines.append(f"    (more through the {ENTRY_POINT_GROUP} entry-point group)")
        formatter.write("\n".join(lines) + "\n")


@main.command(cls=PreprocessCommand, epilog=KINDS_HELP)
@click.argument("kind")
@click.argument("input", type=click.Path(exists=True))
@click.argument("output", type=click.Path())
@click.option("--cluster", default=None, metavar="local|ADDRESS|slurm|kubernetes",
              help="Where to run (default: the dask settings' cluster, else local).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A pipeline parameter.")
@click.option("--workers", type=int, default=None, help="Number of workers to start.")
@click.option("--settings", "settings_file", type=click.Path(exists=True), default=None,
              help="Site settings YAML (default: $DEEPVRE_SETTINGS); its dask: section configures the "
                   "cluster, its slurm: section a SLURMCluster's account, qos and gres.")
@click.option("--overwrite", is_flag=True, help="Replace an output folder that holds something else.")
def preprocess(kind, input, output, cluster, params, workers, settings_file, overwrite):
    """Preprocess INPUT into OUTPUT (Zarr shards + manifest.json) with pipeline KIND."""
    import logging

    from ..pipelines import pipeline_names
    from ..pipelines import preprocess as run
    from ..pipelines.manifest import OutputError
    from ..pipelines.params import parse_pairs

    if kind not in pipeline_names():
        raise click.BadParameter(f"{kind!r}; choose from {', '.join(pipeline_names())}", param_hint="KIND")
    import distributed  # noqa: F401 - configures its loggers on import; then quieted below

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)  # cluster chatter; deepvre stays INFO
    _, site = site_settings(settings_file)  # loaded once; its sections go down as arguments
    site = site or {}
    try:
        result = run(kind, input, output, parse_pairs(params), cluster=cluster, overwrite=overwrite,
                     settings=site.get("dask"), slurm=site.get("slurm"), n_workers=workers)
    except (OutputError, ValueError, KeyError) as err:
        raise click.ClickException(str(err)) from None
    m = result.manifest
    splits = ", ".join(f"{s}: {v['n']}" for s, v in m["splits"].items())
    click.echo(f"{output}: {splits}; {result.written} shards written, {result.skipped} verified and kept; "
               f"{m['bad_records']['count']} bad records")
