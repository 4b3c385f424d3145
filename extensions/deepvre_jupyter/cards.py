"""What the panel and the widgets show of a model record and of a run: pure functions."""

import json
import os


def _first(record, *keys, default=None):
    for key in keys:
        cur = record
        for part in key.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur not in (None, "", [], {}):
            return cur
    return default


def _names(value):
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v.get("name", v) if isinstance(v, dict) else v) for v in value]


def model_card(record):
    """A catalog record -> the card: name, title, summary, use case, tags, metrics, version, owner, lineage."""
    return {
        "name": _first(record, "name", "id"),
        "title": _first(record, "title", "metadata.title", "name", default=""),
        "summary": _first(record, "summary", "metadata.summary", default=""),
        "use_case": _first(record, "use_case", "metadata.deepvre.use_case", default=""),
        "tasks": _names(_first(record, "tasks", "metadata.tasks")),
        "categories": _names(_first(record, "categories", "metadata.categories")),
        "tags": _names(_first(record, "tags", "metadata.tags")),
        "metrics": _first(record, "metrics", "metadata.deepvre.metrics", default={}),
        "version": _first(record, "version", "metadata.version", default=""),
        "owner": _first(record, "owner", default=""),
        "lineage": _first(record, "lineage", "base_model", "metadata.deepvre.base_model", default=None),
        "trainable": bool(_first(record, "trainable", "metadata.deepvre.training.notebook", default=False)),
    }


def model_details(record):
    """The card plus the full description (Markdown, rendered safely by the client) and versions."""
    card = model_card(record)
    card["description"] = _first(record, "description", "metadata.description", default="")
    if isinstance(card["description"], list):
        card["description"] = "\n".join(card["description"])
    card["versions"] = _first(record, "versions", default=[card["version"]] if card["version"] else [])
    return card


def _inside(root, full):
    """``full`` relative to ``root`` (API path) when it lies inside it, else None."""
    real_root, full = os.path.realpath(root), os.path.realpath(full)
    if os.path.commonpath([full, real_root]) != real_root:
        return None
    return os.path.relpath(full, real_root).replace(os.sep, "/")


def run_view(run, root):
    """A runner's Run -> what the runs list shows; notebook paths relative to ``root`` when inside it."""
    status = dict(run.status or {})
    progress = status.get("progress") or {}
    output = os.path.join(run.path, "output.ipynb")
    metrics = os.path.join(run.path, "metrics.json")
    notebook = run.params.get("notebook")
    return {
        "id": run.id,
        "state": status.get("state", "unknown"),
        "progress": {"done": progress.get("done", 0), "total": progress.get("total")},
        "started": status.get("started") or status.get("created"),
        "finished": status.get("finished"),
        "error": status.get("error") or "",
        "notebook": _inside(root, notebook) if notebook else None,
        "output": _inside(root, output) if os.path.exists(output) else None,
        "metrics_file": _inside(root, metrics) if os.path.exists(metrics) else None,
        "metrics": run.metrics or {},
        "sweep": (run.params.get("sweep") or {}).get("id"),  # deepvre run --sweep: the runs page's group
        "waiting": waiting_line(status),
    }


def waiting_line(status):
    """Why a queued run waits: its place in the hub's GPU queue (``deepvre.runs.admission``) or
    Slurm's pending reason and estimated start (``deepvre.runs.backends.slurm``); ``""`` otherwise."""
    if status.get("state") != "queued":
        return ""
    return ((status.get("gpu_queue") or {}).get("message") or (status.get("slurm_pending") or {}).get("message")
            or "")


def run_page(run, root, now=None):
    """The run page: the list's view plus parameters, training progress (epoch N of M, curves and the
    estimate of what is left of the current fit), the cell executing, the log's tail, the models
    the run wrote (to publish) and what the notebook published itself."""
    import time

    from deepvre.runs import outputs
    from deepvre.training import progress

    view = run_view(run, root)
    status = dict(run.status or {})
    training = progress.read(run.path)
    running = view["state"] == "running"
    if training:
        training = {**training, "remaining_seconds": progress.remaining_seconds(training) if running else None}
    models = outputs.find_models(run.path)
    for model in models:
        folder = os.path.join(run.path, model["folder"])
        model["path"] = _inside(root, folder)
        model["figures"] = sorted(f for f in os.listdir(folder) if f.endswith(".png"))[:24]
    try:
        with open(os.path.join(run.path, "published.json")) as fh:
            published = json.load(fh)
    except (OSError, ValueError):
        published = []
    log = os.path.join(run.path, "run.log")
    return {
        **view,
        "parameters": run.params.get("parameters") or {},
        "now": time.time() if now is None else now,
        "training": training,
        "executing": outputs.executing_cell(os.path.join(run.path, "input.ipynb"), status.get("executing"))
        if running else None,
        "log_tail": outputs.log_tail(log),
        "log": _inside(root, log) if os.path.exists(log) else None,
        "folder": _inside(root, run.path),
        "models": models,
        "published": published if isinstance(published, list) else [],
    }


def model_page(record, run=None, runs_dir=None, root=None):
    """The model page: the details plus badges, license, citation, files, provenance (lineage as links) and usage.

    ``run``: the entry's ``run.json`` (``{id, path, provenance}``) when it has one; the run links
    to its page when it is in this server's runs folder ``runs_dir`` (not another user's path).
    """
    page = model_details(record)
    meta = record.get("metadata") or {}
    section = meta.get("deepvre") or {}
    training = section.get("training") or {}
    ref = f"{page['name']}:{page['version']}"
    run_id = (run or {}).get("id")
    local_run = bool(run_id and runs_dir and os.path.isfile(os.path.join(runs_dir, str(run_id), "status.json"))
                     and os.path.basename(str(run_id)) == run_id)
    page.update({
        "visibility": record.get("visibility") or section.get("visibility") or "",
        "groups": record.get("groups") or [],
        "published": record.get("published") or record.get("created") or "",
        "published_by": record.get("published_by") or page["owner"],
        "license": meta.get("license") or section.get("license") or "",
        "citation": (meta.get("links") or {}).get("citation") or meta.get("doi") or section.get("citation") or "",
        "links": {k: v for k, v in (meta.get("links") or {}).items() if isinstance(v, str)},
        "files": sorted(({"name": n, "size": (i or {}).get("size"), "sha256": (i or {}).get("sha256")}
                         for n, i in (record.get("files") or {}).items()), key=lambda f: f["name"]),
        "provenance": {  # ``lineage`` stays the card's (the base model)
            "base": section.get("base_model") or None,
            "data": section.get("data") or None,
            "notebook": training.get("notebook") or None,
            "parameters": training.get("parameters") or {},
            "run": {"id": run_id, "local": local_run} if run_id else None,
        },
        "usage": {
            "cli": f"deepvre market pull {ref}",
            "python": ("from deepvre.market.client import connect\n"
                       f"connect().pull({page['name']!r}, {page['version']!r}, {ref.replace(':', '-')!r})"),
        },
    })
    return page


def notebook_figures(data, limit=12, max_bytes=2_000_000, total_bytes=8_000_000):
    """The PNG plots among a notebook's outputs (``data``: the .ipynb bytes): ``[{cell, png}]``,
    base64 as the notebook holds it, at most ``limit``, none bigger than ``max_bytes`` and no more
    than ``total_bytes`` in all (the first ones)."""
    import re

    try:
        cells = json.loads(data).get("cells", [])
    except (ValueError, AttributeError):
        return []
    figures = []
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []) if isinstance(cell, dict) else []:
            png = (output.get("data") or {}).get("image/png") if isinstance(output, dict) else None
            png = "".join(png) if isinstance(png, list) else png
            if isinstance(png, str):
                png = png.replace("\n", "")
                if len(png) <= max_bytes * 4 // 3 and re.fullmatch(r"[A-Za-z0-9+/=]+", png):
                    total_bytes -= len(png) * 3 // 4
                    if total_bytes < 0:
                        return figures
                    figures.append({"cell": index, "png": png})
            if len(figures) >= limit:
                return figures
    return figures
