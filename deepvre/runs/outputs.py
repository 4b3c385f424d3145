"""What a run left behind, for its page: the models it trained, its log's tail, the cell executing.

A notebook writes its model as ``model.keras`` in its ``output_dir`` inside the run folder (e.g.
``biology-output/``) or in the run folder itself. :func:`find_models` finds every such folder; a
folder holding ``metadata.json`` is a model pulled from the catalog (a base model), not one the
run trained, and checkpoints are ``<fit>.keras`` files, so neither counts.
"""

import json
import os

from deepvre.errors import Conflict, NotFound

MODEL = "model.keras"
BESIDE = ("preprocessing.json", "metrics.json", "data-manifest.json", "published.json")
DEPTH = 3  # folders below the run folder searched


def _published(folder):
    try:
        with open(os.path.join(folder, "published.json")) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data or None


def find_models(run_path, depth=DEPTH):
    """The run's trained models, nearest first: ``[{folder, files, size, modified, published}]``.

    ``folder`` is relative to the run folder (``"."`` for the run folder itself); ``published``
    is what the notebook said it published from there (its ``published.json``), or None.
    Symbolic links are not followed.
    """
    run_path = os.path.realpath(run_path)
    found = []
    for folder, dirs, files in os.walk(run_path):
        rel = os.path.relpath(folder, run_path)
        level = 0 if rel == "." else rel.count(os.sep) + 1
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith("-backup")) if level < depth else []
        if MODEL not in files or "metadata.json" in files or os.path.islink(os.path.join(folder, MODEL)):
            continue
        stat = os.stat(os.path.join(folder, MODEL))
        found.append({
            "folder": rel.replace(os.sep, "/"), "files": [MODEL] + [f for f in BESIDE if f in files],
            "size": stat.st_size, "modified": stat.st_mtime, "published": _published(folder),
        })
    return sorted(found, key=lambda m: (m["folder"].count("/") if m["folder"] != "." else -1, m["folder"]))


def choose_model(run_path, run_id, folder=None):
    """The absolute folder of the model to publish: ``folder`` (one of :func:`find_models`), or the
    only one found. :class:`NotFound` when there is none, :class:`Conflict` (naming them) when
    there are several and ``folder`` does not pick one: never a silent guess."""
    models = find_models(run_path)
    names = [m["folder"] for m in models]
    if not models:
        raise NotFound(f"run {run_id} wrote no {MODEL} (searched its folder and {DEPTH} levels below); "
                       "nothing to publish")
    if folder is None and len(models) > 1:
        raise Conflict(f"run {run_id} wrote {len(models)} models, in {', '.join(names)}: choose one to publish")
    chosen = names[0] if folder is None else folder
    if chosen not in names:
        raise NotFound(f"run {run_id} has no model in {chosen!r}; it has {', '.join(names)}")
    return os.path.normpath(os.path.join(os.path.realpath(run_path), chosen))


def log_tail(path, lines=40, max_bytes=32_768):
    """The last ``lines`` lines of the log file ``path`` (read from its last ``max_bytes``), or ''."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = text.split("\n", 1)[-1]  # the first line read may be cut
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def executing_cell(notebook_path, index):
    """``{index, source}`` of the code cell ``index`` of the notebook (its first lines), or None."""
    if index is None:
        return None
    try:
        with open(notebook_path) as fh:
            cells = json.load(fh).get("cells", [])
        source = cells[index].get("source", "")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    source = "".join(source) if isinstance(source, list) else str(source)
    return {"index": index, "source": "\n".join(source.strip().splitlines()[:6])}
