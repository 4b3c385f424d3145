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
    }


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
