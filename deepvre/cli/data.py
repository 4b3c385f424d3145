"""``deepvre data``: generated data sets (traffic, lattice ensembles) and the offline data that ships."""

import os

import click

from . import main


@main.group()
def data():
    """Generate or locate the data the use-case notebooks start from."""


@data.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--centre", type=click.Choice(["A", "B"], case_sensitive=False), default="A", show_default=True,
              help="Data-centre profile: A (institute, office hours) or B (cloud service, evenings).")
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True, help="Days of traffic.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option("--start", default="2026-01-05", show_default=True, help="First day (UTC, YYYY-MM-DD).")
def traffic(out, centre, days, seed, start):
    """Zeek conn.log files for one data centre, with labelled attacks in OUT/labels.json.

    Example: deepvre data traffic ./logs-a --centre A --days 14 --seed 1
    """
    from ..science import traffic as generator

    try:
        paths, meta = generator.generate_logs(out, centre.upper(), days, seed, start=start)
    except (FileExistsError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{len(paths)} files, {meta['connections']} connections in {out}")
    for attack in meta["attacks"]:
        click.echo(f"  {attack['type']:<13} {attack['start']} .. {attack['end']}")


@data.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", "L", type=int, default=16, show_default=True, help="Lattice size L (even).")
@click.option("--beta", type=float, required=True, help="Inverse coupling, e.g. 2.0.")
@click.option("--configs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--therm", type=click.IntRange(min=0), default=200, show_default=True, help="Thermalization sweeps.")
@click.option("--skip", type=click.IntRange(min=1), default=5, show_default=True, help="Sweeps between configurations.")
@click.option("--update", type=click.Choice(["heatbath", "metropolis"]), default="heatbath", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--group", type=click.Choice(["u1", "su2"], case_sensitive=False), default="u1", show_default=True,
              help="Gauge group: u1 (compact U(1)) or su2 (SU(2), heatbath + overrelaxation).")
@click.option("--format", "fmt", type=click.Choice(["deepvre", "ildg"]), default="deepvre", show_default=True,
              help="File format (ildg: LIME files, SU(2) only).")
def lattice(out, L, beta, configs, therm, skip, update, seed, group, fmt):
    """2D compact U(1) or SU(2) gauge configurations (deepvre gauge format or ILDG) in OUT.

    Example: deepvre data lattice ./u1-b2 --size 16 --beta 2.0 --configs 200
             deepvre data lattice ./su2-b2 --group su2 --beta 2.0 --format ildg
    """
    from ..science import lattice as u1
    from ..science import su2

    try:
        if group.lower() == "su2":
            if update != "heatbath":
                raise ValueError("SU(2) has the heatbath update only (--update heatbath)")
            ensemble, hist = su2.generate(L, beta, configs, seed, n_therm=therm, n_skip=skip)
            paths = su2.save_ensemble(out, ensemble, hist["params"], format=fmt)
            exact = su2.exact_plaquette(beta)
        else:
            if fmt != "deepvre":
                raise ValueError("--format ildg is written for --group su2 only")
            ensemble, hist = u1.generate(L, beta, configs, seed, n_therm=therm, n_skip=skip, update=update)
            paths = u1.save_ensemble(out, ensemble, hist["params"])
            exact = u1.exact_plaquette(beta)
    except (FileExistsError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    mean, err = u1.binned_error(hist["plaquette"], n_bins=min(20, len(hist["plaquette"])))
    click.echo(f"{len(paths)} configurations in {out}; plaquette {mean:.5f} +- {err:.5f} (exact {exact:.5f})")


@data.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def locate(as_json):
    """Where the offline data sets are (or how to install the missing ones). Nothing is downloaded."""
    import json

    from ..science import datasets

    found = datasets.locate()
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    for name, value in found.items():
        click.echo(f"{name}: {value if isinstance(value, str) else os.path.dirname(value[0])}")
