"""``deepvre run`` (execute a notebook headless with papermill) and ``deepvre runs list|show|cancel``."""

import json
import os

import click

from . import main, site_settings

BACKENDS = ("local", "slurm")


def _runs_dir_option(f):
    return click.option(
        "--runs-dir", type=click.Path(file_okay=False), default=None,
        help="Folder of run folders (default: $DEEPVRE_RUNS_DIR or ~/runs).",
    )(f)


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def _load_profile(slug, path, site):
    """The hardware profile ``slug`` from the loaded site settings ``site`` (read from ``path``)."""
    from deepvre.site.profiles import find_profile

    if site is None:
        raise click.UsageError("--profile needs --settings FILE (or $DEEPVRE_SETTINGS)")
    profiles = site.get("profiles") or []
    profile = find_profile(profiles, slug)
    if profile is None:
        known = ", ".join(p["slug"] for p in profiles) or "none"
        raise click.UsageError(f"no profile {slug!r} in {path} (profiles: {known})")
    return profile


def _progress(status):
    p = status.get("progress") or {}
    return f"{p.get('done', 0)}/{p.get('total') if p.get('total') is not None else '?'}"


def _summary(run):
    status = run.status
    line = f"{run.id}  {status.get('state')}  cells {_progress(status)}  {run.path}"
    if status.get("error"):
        line += f"\n  error (cell {status.get('error_cell')}): {status['error']}"
    return line


@main.command("run")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("-p", "--parameter", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Set a parameter; the value is parsed by the notebook's declared type.")
@click.option("--sweep", "sweeps", multiple=True, metavar="NAME=V1,V2,...",
              help="Run every combination of these values (repeatable).")
@click.option("--detach", is_flag=True, help="Return at once; the run goes on in the background.")
@click.option("--backend", type=click.Choice(BACKENDS), default="local", show_default=True)
@click.option("--profile", default=None, help="Hardware profile slug (Slurm terms) from --settings.")
@click.option("--settings", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Settings YAML holding the profiles and the slurm: section (default: $DEEPVRE_SETTINGS).")
@click.option("--allow-unknown", is_flag=True, help="Pass parameters the notebook does not declare.")
@click.option("--kernel", "kernel_name", default=None, help="Kernel name (default: the notebook's).")
@_runs_dir_option
@_json_option
def run_command(notebook, params, sweeps, detach, backend, profile, settings, allow_unknown,
                kernel_name, runs_dir, as_json):
    """Execute NOTEBOOK headless with papermill into RUNS_DIR/ID.

    \b
    Examples:
      deepvre run train.ipynb -p epochs 3 -p learning_rate 0.001
      deepvre run train.ipynb --sweep learning_rate=0.01,0.001 --sweep epochs=1,2
      deepvre run train.ipynb --detach --backend slurm --profile gpu-1 --settings hub/settings.yaml
    """
    from .. import runs
    from ..runs import parameters as notebook_parameters
    from ..runs.sweep import combinations, metrics_table, parse_sweep, record

    given = {}
    for name, value in params:
        if name in given:
            raise click.UsageError(f"parameter {name!r} given twice")
        given[name] = value
    try:
        axes = parse_sweep(sweeps)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    clash = sorted(set(axes) & set(given))
    if clash:
        raise click.UsageError(f"{', '.join(clash)} both set with -p and swept")
    # the settings file is loaded once; its profile and slurm: section go to the runner as arguments
    path, site = site_settings(settings) if profile or backend == "slurm" else (None, None)
    profile_data = _load_profile(profile, path, site) if profile else None
    slurm = (site or {}).get("slurm")

    # the notebook is read once; every combination is checked before any run starts
    declared = notebook_parameters.inspect(notebook)
    try:
        combos = combinations(declared, given, axes, allow_unknown)
    except notebook_parameters.ParameterError as err:
        hint = " (use --allow-unknown to pass them anyway)" if getattr(err, "unknown", None) else ""
        raise click.UsageError(f"{err}{hint}") from None
    # on Slurm a sweep is submitted at once and waited for together; locally it runs one by one
    together = detach or backend == "slurm"
    sweep = record(notebook, axes) if axes else None  # groups the runs on the runs page
    done = []
    for parameters in combos:
        try:
            run = runs.start(notebook, parameters, backend=backend, detach=together,
                             runs_dir=runs_dir, profile=profile_data, slurm=slurm,
                             allow_unknown=allow_unknown, kernel_name=kernel_name, declared=declared,
                             sweep=sweep)
        except RuntimeError as err:
            raise click.ClickException(str(err)) from None
        done.append(run)
        if not as_json and not together:
            click.echo(_summary(run))
    for run in done:
        if together and not detach:
            runs.wait(run)
        if not as_json and together:
            click.echo(_summary(run))

    if as_json:
        click.echo(json.dumps([r.to_dict() for r in done], indent=1, default=str))
    elif axes and not detach:
        rows = [{"id": r.id, "state": r.state, "parameters": r.params.get("parameters") or {},
                 "metrics": r.metrics} for r in done]
        click.echo("\n" + metrics_table(rows, list(axes)))
    elif len(done) == 1 and not detach and done[0].metrics:
        click.echo(json.dumps(done[0].metrics, indent=1, default=str))
    if not detach and any(r.state != "done" for r in done):
        raise SystemExit(1)


@main.group("runs")
def runs_group():
    """List, show and cancel batch runs."""


@runs_group.command("list")
@_runs_dir_option
@_json_option
def runs_list(runs_dir, as_json):
    """List runs, oldest first."""
    from .. import runs

    found = runs.list_runs(runs_dir)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in found], indent=1, default=str))
        return
    if not found:
        click.echo("no runs yet: start one with `deepvre run NOTEBOOK`")
    for run in found:
        status = run.status
        notebook = os.path.basename(run.params.get("notebook") or "")
        click.echo(f"{run.id}  {status.get('state'):9}  {_progress(status):>5}  "
                   f"{status.get('backend')}  {notebook}")


def _get(run_id, runs_dir):
    from .. import runs

    try:
        return runs.get(run_id, runs_dir)
    except (LookupError, ValueError) as err:
        raise click.ClickException(str(err)) from None


@runs_group.command("show")
@click.argument("run_id")
@_runs_dir_option
@_json_option
def runs_show(run_id, runs_dir, as_json):
    """Show a run's status, parameters and metrics."""
    run = _get(run_id, runs_dir)
    if as_json:
        click.echo(json.dumps(run.to_dict(), indent=1, default=str))
        return
    click.echo(_summary(run))
    click.echo(f"  parameters: {json.dumps(run.params.get('parameters'))}")
    if run.metrics is not None:
        click.echo(f"  metrics: {json.dumps(run.metrics)}")


@runs_group.command("cancel")
@click.argument("run_id")
@_runs_dir_option
@_json_option
def runs_cancel(run_id, runs_dir, as_json):
    """Stop a queued or running run (its partial output stays)."""
    from .. import runs

    _get(run_id, runs_dir)
    status = runs.cancel(run_id, runs_dir)
    click.echo(json.dumps(status, indent=1) if as_json else f"{run_id}: {status.get('state')}")
