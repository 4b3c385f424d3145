"""``deepvre results``: run the use-case notebooks afresh and write their sections of docs/results.md."""

import os
import shutil
import subprocess
import tempfile
import time

import click

from . import main

FIGURES = (".png", ".svg")
RANK_VALIDATION = "rank-validation"  # the ranking's validation study (issue 18), not a notebook


def _commit(repo):
    """The checkout's commit, with ``+changes`` when its tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short=12", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"], check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise click.ClickException(f"{repo} is not a git checkout: the results must name their commit") from None
    return head + ("+changes" if dirty else "")


def _output_folder(run):
    from ..runs.execute import output_folder

    params = run.params
    return output_folder(run.path, params.get("parameters") or {}, params.get("defaults")) or run.path


def _copy_figures(run, key, figures_dir, page_dir):
    """Copy the run's figures to ``figures_dir/key``; their paths relative to the page."""
    source, target = _output_folder(run), os.path.join(figures_dir, key)
    found = sorted(f for f in os.listdir(source) if f.endswith(FIGURES)) if os.path.isdir(source) else []
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target, exist_ok=True)
    for name in found:
        shutil.copyfile(os.path.join(source, name), os.path.join(target, name))
    return [os.path.relpath(os.path.join(target, name), page_dir) for name in found]


def _log_tail(run, lines=15):
    from ..runs import store

    try:
        with open(run.file(store.LOG), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


@main.command("results")
@click.argument("use_cases", nargs=-1, type=click.Choice(["all", "biology", "satellite", "lattice-qcd", "security",
                                                                RANK_VALIDATION]))
@click.option("--smoke", is_flag=True, help="Smoke mode (tiny, two seeds; for checks only: the page says so).")
@click.option("--page", default="docs/results.md", show_default=True, help="The page to write (relative to --repo).")
@click.option("--repo", type=click.Path(file_okay=False, exists=True), default=".", show_default=True,
              help="The checkout whose notebooks run.")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Where the runs go (default: a new folder under the system's temporary folder).")
def results_command(use_cases, smoke, page, repo, runs_dir):
    """Run the use-case notebooks (default: all four, full mode) with `deepvre run` and write
    each one's section of docs/results.md from its metrics: table with 95 % intervals, the
    claim's verdict, run id, commit and figures (saved beside the page, in results/<case>/).

    `deepvre results rank-validation` runs the ranking's validation study instead
    (deepvre.science.rank_study: every candidate base model ranked, then fine-tuned over seeds,
    Spearman's rho with its bootstrap interval); `all` does not include it.

    The runs start from an empty catalog of their own, so no earlier model is reused. A failed
    notebook leaves its section as it was and makes the command fail, after the others ran.
    """
    from .. import runs
    from ..science import results_page
    from ..site import environment

    repo = os.path.abspath(repo)
    if RANK_VALIDATION in use_cases:
        if len(use_cases) > 1:
            raise click.UsageError(f"{RANK_VALIDATION} runs alone (it is not a notebook)")
        return _rank_validation(smoke, os.path.join(repo, page), _commit(repo), runs_dir)
    keys = results_page.KEYS if not use_cases or "all" in use_cases else tuple(
        k for k in results_page.KEYS if k in use_cases)
    commit = _commit(repo)
    page_path = os.path.join(repo, page)
    page_dir = os.path.dirname(page_path)
    runs_dir = os.path.abspath(runs_dir or tempfile.mkdtemp(prefix="deepvre-results-runs-"))
    # an empty catalog of the runs' own, never a hub's: the notebooks publish into it
    os.environ[environment.MARKET_DIR] = tempfile.mkdtemp(prefix="deepvre-results-market-")
    for name in (environment.MARKET_URL, environment.MARKET_TOKEN):
        os.environ.pop(name, None)
    failed = []
    for key in keys:
        notebook = os.path.join(repo, dict((k, nb) for k, _, nb in results_page.USE_CASES)[key])
        click.echo(f"{key}: running {os.path.relpath(notebook, repo)}{' (smoke)' if smoke else ''} in {runs_dir}")
        load, started = os.getloadavg(), time.monotonic()
        run = runs.start(notebook, {"smoke": True} if smoke else {}, runs_dir=runs_dir)
        wall = time.monotonic() - started
        if run.state != "done":
            click.echo(f"{key}: run {run.id} ended {run.state}: {run.status.get('error')}\n{_log_tail(run)}", err=True)
            failed.append(key)
            continue
        try:
            blocks = results_page.check_blocks(key, run.metrics)
        except results_page.ResultsError as err:
            click.echo(str(err), err=True)
            failed.append(key)
            continue
        command = f"deepvre results {key}" + (" --smoke" if smoke else "")
        info = {"id": run.id, "commit": commit, "date": time.strftime("%Y-%m-%d", time.gmtime()),
                "wall_s": wall, "load": load, "command": command}
        figures = _copy_figures(run, key, os.path.join(page_dir, "results"), page_dir)
        text = results_page.section(key, blocks, info, figures, smoke=smoke)
        old = open(page_path).read() if os.path.exists(page_path) else ""
        with open(page_path + ".tmp", "w") as f:
            f.write(results_page.splice(old, key, text))
        os.replace(page_path + ".tmp", page_path)
        for block in blocks:
            click.echo(f"{key}: {block['claim']['sentence']}")
        click.echo(f"{key}: section written to {page_path} ({wall:.0f} s)")
    if failed:
        raise click.ClickException(f"no section written for: {', '.join(failed)}")


def _rank_validation(smoke, page_path, commit, runs_dir):
    """Run the ranking's validation study and write its section, figure and record beside the page."""
    from ..science import rank_study

    folder = os.path.abspath(runs_dir or tempfile.mkdtemp(prefix="deepvre-rank-validation-"))
    study_id = f"{RANK_VALIDATION}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.urandom(3).hex()}"
    folder = os.path.join(folder, study_id)
    click.echo(f"{RANK_VALIDATION}: study {study_id}{' (smoke)' if smoke else ''} in {folder}")
    study = rank_study.run(folder, "tiny" if smoke else "full", in_process=True,
                           log=lambda line: click.echo(f"{RANK_VALIDATION}: {line}"))
    write_rank_validation(study, page_path, study_id, commit, smoke)


def write_rank_validation(study, page_path, study_id, commit, smoke=False):
    """Write the study's record (``study.json``) and figure to ``results/rank-validation/`` beside the
    page, and its section into the page."""
    import json

    from ..science import rank_study, results_page

    study = rank_study.as_json(study)
    page_dir = os.path.dirname(page_path)
    target = os.path.join(page_dir, "results", RANK_VALIDATION)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    study.update(id=study_id, commit=commit)
    with open(os.path.join(target, "study.json"), "w") as f:
        json.dump(study, f, indent=1, sort_keys=True)
    figure = rank_study.figure(study, os.path.join(target, "scores-vs-fine-tuned.png"))
    info = {"id": study_id, "commit": commit, "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "command": f"deepvre results {RANK_VALIDATION}" + (" --smoke" if smoke else ""),
            "record": os.path.relpath(os.path.join(target, "study.json"), page_dir)}
    text = rank_study.section(study, info, [os.path.relpath(figure, page_dir)], smoke=smoke)
    old = open(page_path).read() if os.path.exists(page_path) else ""
    with open(page_path + ".tmp", "w") as f:
        f.write(results_page.splice(old, RANK_VALIDATION, text))
    os.replace(page_path + ".tmp", page_path)
    for key in study["cases"]:
        click.echo(f"{RANK_VALIDATION}: {rank_study.verdict(key, study['cases'][key])}")
    click.echo(f"{RANK_VALIDATION}: section written to {page_path} ({study['wall_s']:.0f} s)")
