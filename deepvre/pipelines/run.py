"""Run a pipeline's plan on a Dask cluster: one task per shard, written by the workers.

Only small shard records travel back to the client; the arrays go straight from the
worker to the output folder.
"""

import logging
import os
from dataclasses import dataclass, field

from . import manifest as mf
from .registry import get_pipeline

log = logging.getLogger("deepvre.pipelines")


@dataclass
class Shard:
    """One task: ``func(**args)`` returns ``(arrays, counts, bad)`` for one shard.

    ``args`` must be JSON-serializable: it is hashed into the shard's task key.
    """

    split: str
    index: int
    func: object
    args: dict
    cost: int = 1  # relative work (e.g. items): bigger shards start first, so workers finish together


@dataclass
class Plan:
    """What a pipeline will write: shards plus a summary for the manifest."""

    kind: str
    input: str
    params: dict
    shards: list
    summary: dict = field(default_factory=dict)
    chunk: int = 64
    bad: list = field(default_factory=list)  # bad records found while planning
    decode: dict = field(default_factory=dict)  # array -> {"dtype", "divide_by"}: applied by readers


@dataclass
class Result:
    output: str
    manifest: dict
    written: int
    skipped: int
    dashboard: str = ""


def run_shard(shard, output, params, chunk):
    """Worker side: skip a verified shard, else compute and write it. Returns its record."""
    key = mf.task_key(shard.func, shard.args, params)
    record = mf.read_record(output, shard.split, shard.index, key)
    if record is not None:
        return dict(record, skipped=True)
    arrays, counts, bad = shard.func(**shard.args)
    for item in bad:
        logging.getLogger("deepvre.pipelines").warning("bad record %s: %s", item["record"], item["error"])
    record = mf.write_shard(output, shard.split, shard.index, key, arrays, counts, bad, chunk=chunk)
    return dict(record, skipped=False)


def wait_with_progress(futures, desc):
    """Wait for ``futures`` with a progress bar: an ipywidgets bar in a Jupyter kernel, text in a terminal.

    The bar is driven from this thread as shards complete (``tqdm.auto`` picks the kind), so
    it moves while a notebook cell blocks here; distributed's own widget is updated by the
    kernel's event loop, which a blocking call starves.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    with tqdm(total=len(futures), desc=desc, unit="shard") as bar:
        for _future in as_completed(futures):
            bar.update()


def report_progress(futures, report):
    """Call ``report(done, total)`` now and each time one of ``futures`` completes."""
    from distributed import as_completed

    report(0, len(futures))
    for done, _future in enumerate(as_completed(futures), 1):
        report(done, len(futures))


def execute(plan, output, client, progress=True):
    """Run ``plan`` with ``client``; write the manifest; return a Result.

    ``progress``: True, a bar (:func:`wait_with_progress`); a callable, called with
    ``(shards done, shards planned)`` as shards complete (the panel's job page); False, nothing."""
    futures = [
        client.submit(run_shard, s, output, plan.params, plan.chunk, pure=False, retries=1, priority=s.cost,
                      key=f"deepvre-{plan.kind}-{s.split}-{s.index:05d}-{os.urandom(4).hex()}")
        for s in plan.shards
    ]
    if callable(progress):
        report_progress(futures, progress)
    elif progress and futures:
        wait_with_progress(futures, plan.kind)
    records = client.gather(futures)
    skipped = sum(r.pop("skipped") for r in records)
    for r in [{"bad": plan.bad}] + records:
        for item in r["bad"]:
            log.warning("bad record %s: %s", item["record"], item["error"])
    mf.remove_stale(output, {(r["split"], f"shard-{r['index']:05d}") for r in records})
    manifest = mf.build_manifest(plan.kind, plan.input, plan.params, plan.summary, records, plan.bad, plan.decode)
    mf.write_manifest(output, manifest)
    log.info("%s: %d shards written, %d verified and skipped, %d bad records",
             plan.kind, len(records) - skipped, skipped, manifest["bad_records"]["count"])
    return Result(output, manifest, len(records) - skipped, skipped)


def preprocess(kind, input, output, params=None, cluster="local", client=None,
               overwrite=False, settings=None, progress=True, n_workers=None, slurm=None):
    """Run pipeline ``kind`` from ``input`` to ``output``: the one entry point.

    ``cluster`` is ``local``, a scheduler address, ``slurm`` or ``kubernetes``
    (see ``deepvre.pipelines.clusters``); pass ``client`` to reuse an open one. ``settings`` and
    ``slurm`` are the settings file's ``dask:`` and ``slurm:`` sections, loaded by the caller.
    ``progress``: see :func:`execute`.
    """
    from .clusters import open_client

    params = dict(params or {})
    plan_fn = get_pipeline(kind)
    if not os.path.exists(input):
        raise FileNotFoundError(f"input {input!r} does not exist")
    mf.prepare_output(output, kind, inputs=[input], overwrite=overwrite)
    if client is not None:
        with client.as_current():
            return execute(plan_fn(input, output, params), output, client, progress=progress)
    with open_client(cluster, settings=settings, n_workers=n_workers, slurm=slurm) as (c, link):
        if link:
            log.info("Dask dashboard: %s", link)
        # planning may itself use the cluster (flows: dask.dataframe parsing)
        result = execute(plan_fn(input, output, params), output, c, progress=progress)
        result.dashboard = link or ""
        return result
