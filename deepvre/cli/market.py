"""``deepvre market list|search|show|pull|publish|validate|import|verify``: the marketplace from a shell.

Every command takes ``--json`` for scripts. Inside a hub (``$DEEPVRE_MARKET_URL`` and
``$DEEPVRE_MARKET_TOKEN``) it talks to the marketplace service, else to the local catalog.
"""

import json
import sys

import click

from . import main


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def _client():
    from deepvre.market.client import connect

    return connect()


def _fail(err, as_json):
    """Print a catalog error readably (or as JSON) and exit non-zero."""
    errors = getattr(err, "errors", None) or [str(err)]
    if as_json:
        click.echo(json.dumps({"error": type(err).__name__, "errors": errors}))
    else:
        click.echo(f"error: {type(err).__name__}", err=True)
        for line in errors:
            click.echo(f"  - {line}", err=True)
    sys.exit(1)


def _run(as_json, func, render):
    from deepvre.errors import Unavailable
    from deepvre.market import metadata
    from deepvre.market.catalog import Conflict, Forbidden, NotFound
    from deepvre.market.store import IntegrityError, UploadTooLarge

    try:
        result = func()
    except (metadata.MetadataError, NotFound, Forbidden, Conflict, UploadTooLarge, IntegrityError,
            PermissionError, FileExistsError, ValueError, Unavailable, _Damaged) as err:
        _fail(err, as_json)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        render(result)


def _table(entries):
    if not entries:
        click.echo("no models")
        return
    for e in entries:
        flags = " (deprecated)" if e.get("deprecated") else ""
        click.echo(f"{e['name']}:{e['version']:<10} {e['visibility']:<8} {e['owner']:<12} {e['title']}{flags}")


def _filter_options(f):
    for name, text in (("use-case", "use case"), ("task", "AI4OS task"), ("library", "library"),
                       ("category", "AI4OS category"), ("visibility", "public, group or private")):
        f = click.option(f"--{name}", default=None, help=f"Only this {text}.")(f)
    f = click.option("--sort", default=None, help="relevance, name, title, updated or created; '-' reverses.")(f)
    return click.option("--limit", default=50, show_default=True)(f)


@main.group()
def market():
    """The model marketplace: find, inspect, pull and publish models."""


@market.command(name="list")
@_filter_options
@_json_option
def list_(as_json, sort, limit, **filters):
    """List the models you can see."""
    filters = {k: v for k, v in filters.items() if v}
    _run(as_json, lambda: _client().search("", sort=sort, limit=limit, **filters), _table)


@market.command()
@click.argument("query")
@_filter_options
@_json_option
def search(query, as_json, sort, limit, **filters):
    """Full-text search over titles, summaries, descriptions and tags."""
    filters = {k: v for k, v in filters.items() if v}
    _run(as_json, lambda: _client().search(query, sort=sort, limit=limit, **filters), _table)


def _render_entry(e):
    click.echo(f"{e['name']}:{e['version']}  {e['title']}")
    click.echo(f"  {e['summary']}")
    click.echo(f"  owner {e['owner']}, {e['visibility']}" + (" (deprecated)" if e.get("deprecated") else ""))
    section = e["metadata"].get("deepvre", {})
    click.echo(f"  input {section.get('input', {}).get('shape')} {section.get('input', {}).get('dtype')}; use case {section.get('use_case')}")
    if section.get("metrics"):
        click.echo("  metrics " + ", ".join(f"{k}={v}" for k, v in section["metrics"].items()))
    click.echo("  versions " + ", ".join(v["version"] for v in e["versions"]))
    for name, info in e["files"].items():
        click.echo(f"  {name:<22} {info['size']:>12} bytes  sha256 {info['sha256'][:16]}...")
    if "verifications" in e:
        click.echo("  " + _badge(e["verifications"]))


def _badge(found):
    """``verified by ana at ...`` from the records (:func:`deepvre.market.verifications.badge`)."""
    from deepvre.market.verifications import badge

    result = badge(found)
    if result == "unverified":
        return "verification: unverified (`deepvre market verify NAME:VERSION` re-runs it)"
    last = [r for r in found if r.get("valid")][-1]
    return f"verification: {result} by {last['verifier']} at {last['time']}: {last.get('reason', '')}"


@market.command()
@click.argument("model")
@_json_option
def show(model, as_json):
    """Show MODEL[:VERSION]: metadata, files, versions."""
    from deepvre.market.client import parse_ref

    name, version = parse_ref(model)

    def do():
        client = _client()
        entry = client.show(name, version)
        return {**entry, "verifications": client.verifications(name, entry["version"])}

    _run(as_json, do, _render_entry)


def _check_trust(entry, yes):
    """A notebook another account published runs as the caller: only with ``--yes``."""
    import getpass
    import os

    from deepvre.errors import Forbidden

    me = os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    if entry.get("owner") == me or yes:
        return
    notebook = ((entry["metadata"].get("deepvre") or {}).get("training") or {}).get("notebook") or ""
    digest = (entry["files"].get(notebook) or {}).get("sha256", "")
    raise Forbidden(f"{entry['name']}:{entry['version']} was published by {entry.get('owner')}: verifying runs its "
                    f"notebook {notebook} (sha256 {digest}) as you, {me}. Read it first (deepvre market pull), then "
                    f"pass --yes")


@market.command()
@click.argument("model")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Where the re-run goes (default: ~/runs).")
@click.option("--kernel", default=None, help="Re-run in this Jupyter kernel (a stated environment; default: this one).")
@click.option("--no-record", is_flag=True, help="Only print the outcome; append no record to the catalog entry.")
@click.option("--yes", is_flag=True, help="Re-run a notebook another account published (it runs as you) without "
              "asking first: read it before (deepvre market pull).")
@_json_option
def verify(model, runs_dir, kernel, no_record, yes, as_json):
    """Re-run MODEL[:VERSION]'s lineage and compare its metrics: verified, drifted or could not run.

    The executed notebook runs again with its parameters and seed (publish off), after its input
    files are checked by sha256; the metrics are compared within the tolerances the notebook
    declares (metadata deepvre.verify.tolerance; undeclared: every number but timings within 1e-6).
    The outcome is appended to the entry as a record the marketplace signs; the version is unchanged.
    Exits 0 when verified, 1 otherwise.
    """
    from deepvre.market.client import parse_ref
    from deepvre.runs import platform, reproduce

    name, version = parse_ref(model)
    results = []

    def do():
        client = _client()
        _check_trust(client.show(name, version), yes)
        outcome = reproduce.reproduce(client, name, version, runs_dir=runs_dir, kernel_name=kernel)
        record = None if no_record else client.add_verification(name, outcome["version"], reproduce.claim(outcome))
        differences = outcome.pop("differences")
        results.append(outcome["result"])
        return {**outcome, "record": record, "same_environment": platform.same(differences),
                "environment_differences": differences}

    def render(r):
        click.echo(f"{r['name']}:{r['version']}: {r['result']}: {r['reason']}")
        for metric, row in r["metrics"].items():
            click.echo(f"  {metric:<32} published {row['published']}  reproduced {row['reproduced']}  "
                       f"tolerance {row['tolerance']:g}")
        d = r["environment_differences"]
        if not r["same_environment"]:
            click.echo(f"  environment: {len(d['packages']['changed'])} packages changed, {len(d['packages']['added'])} "
                       f"added, {len(d['packages']['removed'])} removed" + (f"; python {d['python'][0]} -> "
                       f"{d['python'][1]}" if d["python"] else "") + ("; lock file differs" if d["lock"] else ""))
        for path, what in (r.get("inputs") or {}).items():
            click.echo(f"  {what}: {path}")
        if r["run"]:
            click.echo(f"  re-run: {r['run']}")
        if r["record"]:
            click.echo(f"  recorded by the marketplace (record {r['record']['id']}, signed)")

    _run(as_json, do, render)
    sys.exit(0 if results == ["verified"] else 1)  # drifted or could not run: non-zero for scripts


@market.command()
@click.argument("model")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None, help="Folder (default: ./NAME-VERSION).")
@click.option("--overwrite", is_flag=True, help="Replace existing files that differ.")
@click.option("--verify", type=click.Choice(["blake3", "sha256"]), default="blake3", show_default=True,
              help="Check each file against the BLAKE3 digest recorded at publish (fast; sha256 for "
              "entries without one), or re-hash its full sha256 name.")
@_json_option
def pull(model, output, overwrite, verify, as_json):
    """Download MODEL[:VERSION]'s files (each checked; see --verify)."""
    from deepvre.market.client import parse_ref

    name, version = parse_ref(model)

    def do():
        client = _client()
        dest = output or f"{name}-{client.show(name, version)['version']}"
        entry = client.pull(name, version, dest, overwrite, verify)
        return {"name": name, "version": entry["version"], "path": str(dest), "files": entry["files"]}

    _run(as_json, do, lambda r: click.echo(f"pulled {r['name']}:{r['version']} into {r['path']}"))


@market.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--visibility", type=click.Choice(["public", "group", "private"]), default=None)
@click.option("--group", "groups", multiple=True, help="A group that sees a `group` model (repeat).")
@_json_option
def publish(folder, visibility, groups, as_json):
    """Publish FOLDER (metadata.json or .yaml plus model.keras and the other artifact files)."""
    from deepvre.market.client import artifact_folder

    def do():
        document, files = artifact_folder(folder)
        return _client().publish(document, files, visibility, list(groups) if groups else None)

    _run(as_json, do, lambda e: click.echo(f"published {e['name']}:{e['version']} ({e['visibility']})"))


@market.command()
@click.argument("path", type=click.Path(exists=True))
@_json_option
def validate(path, as_json):
    """Check PATH (a metadata file, or an artifact folder) and list every problem."""
    from pathlib import Path

    from deepvre.market import metadata
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import artifact_folder

    def do():
        if Path(path).is_dir():
            document, files = artifact_folder(path)
            problems = Catalog.check(document, {k: str(v) for k, v in files.items()})
        else:
            problems = metadata.errors(metadata.load(path))
        if problems:
            raise metadata.MetadataError(problems)
        return {"path": str(path), "valid": True}

    _run(as_json, do, lambda r: click.echo(f"{r['path']}: valid"))


@market.command()
@click.option("--database-url", default=None, help="The index (default: the local catalog's).")
@click.option("--store-url", default=None, help="The artifact store (default: the local catalog's).")
@_json_option
def fsck(database_url, store_url, as_json):
    """Re-hash every stored artifact with sha256 (its name) and BLAKE3; exit non-zero on damage.

    An admin's check of a catalog's store, run where the index and store are reachable. It also
    lists what interrupted publishes left (not damage: none of it is visible): temporary files
    (the service removes them at its next start) and blobs no version names.
    """
    from deepvre.market.catalog import Catalog

    def do():
        kwargs = {k: v for k, v in (("database_url", database_url), ("store_url", store_url)) if v}
        catalog = Catalog(**kwargs)
        problems = catalog.fsck()
        if problems:
            raise _Damaged(problems)
        return {"ok": True, **catalog.leftovers()}

    def render(r):
        click.echo("every artifact matches its sha256 and BLAKE3 digests")
        if r["temporary"]:
            click.echo(f"{len(r['temporary'])} temporary files of interrupted publishes (removed at the service's "
                       f"next start): {', '.join(r['temporary'])}")
        if r["unreferenced"]:
            click.echo(f"{len(r['unreferenced'])} stored blobs no version names (from interrupted publishes; "
                       "a republish of the same files uses them)")

    _run(as_json, do, render)


class _Damaged(IOError):
    """Damaged artifacts found by fsck, one line each."""

    def __init__(self, problems):
        super().__init__(f"{len(problems)} damaged artifacts")
        self.errors = problems


@market.command(name="import")
@click.argument("v1_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the v2 document here.")
@click.option("--section", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A JSON/YAML file with the deepvre section to add (name, version, input, ...).")
@_json_option
def import_(v1_file, output, section, as_json):
    """Convert DEEP v1 metadata to AI4OS v2 (with ai4-metadata's migrate) and list what is still missing."""
    from pathlib import Path

    from deepvre.market import metadata

    def do():
        document = metadata.migrate_v1(v1_file, metadata.load(section) if section else None)
        if output:
            Path(output).write_text(json.dumps(document, indent=2))
        return {"document": document, "missing": metadata.errors(document), "output": output}

    def render(r):
        if not output:
            click.echo(json.dumps(r["document"], indent=2))
        for line in r["missing"]:
            click.echo(f"still missing: {line}", err=True)

    _run(as_json, do, render)
