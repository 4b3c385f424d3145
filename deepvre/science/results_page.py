"""docs/results.md from the use-case notebooks' own metrics (issue 16): pure builders.

Each notebook writes ``metrics.json`` with a ``"results"`` block
(:func:`deepvre.science.evaluation.comparison`). :func:`section` turns one block, with the run that
produced it, into a Markdown section between two markers; :func:`splice` puts it into the page,
replacing the same use case's earlier section and leaving the rest of the page as it is.
``deepvre results`` runs the notebooks and calls both; nothing here reads a file or runs anything.
"""

import re

# (key, title, notebook relative to the checkout), in the page's order
USE_CASES = (
    ("biology", "Biology", "notebooks/biology/biology.ipynb"),
    ("satellite", "Earth observation", "notebooks/satellite/satellite.ipynb"),
    ("lattice-qcd", "Lattice QCD", "notebooks/lattice-qcd/lattice-qcd.ipynb"),
    ("security", "Network security", "notebooks/security/security.ipynb"),
)
KEYS = tuple(key for key, _, _ in USE_CASES)
PAGE_HEAD = (
    "# Results of the use-case notebooks\n\n"
    "Each section below is written by `deepvre results` from a fresh run of the notebook (its run id and\n"
    "the commit are given) against an empty catalog; edits inside a section's markers are lost at the\n"
    "next run. Every arm is the mean over seeds with its 95 % Student-t interval.\n"
)


class ResultsError(ValueError):
    """A notebook's metrics lack a usable ``results`` block."""


def _begin(key):
    return f"<!-- results:{key} (written by `deepvre results {key}`) -->"


def _end(key):
    return f"<!-- /results:{key} -->"


def check_block(key, metrics):
    """The ``results`` block of ``metrics`` (a run's metrics.json), or :class:`ResultsError`."""
    return check_blocks(key, metrics)[0]


def check_blocks(key, metrics):
    """Every comparison block of ``metrics``: ``results`` first, then each ``results_NAME`` (a further
    task of the same notebook), or :class:`ResultsError`."""
    metrics = metrics or {}
    keys = ["results"] + sorted(k for k in metrics if k.startswith("results_"))
    blocks = [metrics.get(k) for k in keys]
    for name, block in zip(keys, blocks):
        if not isinstance(block, dict) or not block.get("arms") or "claim" not in block:
            raise ResultsError(f"{key}: the notebook's metrics.json has no '{name}' block "
                               "(deepvre.science.evaluation.comparison); nothing to report")
    return blocks


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(block, digits=3):
    """The arms as a Markdown table: label, mean ± half-width of the 95 % interval, interval, seeds."""
    metric = block["metric"]
    better = "higher" if block.get("higher_is_better", True) else "lower"
    lines = [f"| arm | {metric} ({better} is better), mean ± 95 % CI | interval | seeds | per seed |",
             "|---|---|---|---|---|"]
    for arm in block["arms"]:
        per_seed = " ".join(f"{v:.{digits}f}" for v in arm["per_seed"])
        role = (" (transfer)" if arm["label"] == block.get("transfer")
                else " (scratch)" if arm["label"] == block.get("scratch") else "")
        lines.append(f"| {_cell(arm['label'])}{role} | {arm['mean']:.{digits}f} ± {arm['half_width']:.{digits}f} "
                     f"| {arm['low']:.{digits}f} to {arm['high']:.{digits}f} | {arm['n']} | {per_seed} |")
    return "\n".join(lines)


def section(key, blocks, run, figures=(), smoke=False):
    """One use case's section: a table and a verdict per block (one block, or a list of them).

    ``run``: ``{"id", "commit", "date", "wall_s", "load", "command"}`` (load: the 1, 5 and 15 minute
    load averages at the start); ``figures``: paths relative to the page.
    """
    title = dict((k, t) for k, t, _ in USE_CASES).get(key, key)
    minutes, seconds = divmod(int(round(run["wall_s"])), 60)
    load = " / ".join(f"{v:.1f}" for v in run["load"])
    out = [_begin(key), f"## {title} ({key})", ""]
    if smoke:
        out += ["**Smoke mode: tiny data and two seeds; these numbers mean nothing.**", ""]
    out += [f"Run `{run['id']}` of commit `{run['commit']}` on {run['date']}, {minutes} min {seconds:02d} s wall "
            f"(load average {load} at the start), reproduced by:", "", f"    {run['command']}", "",
            ]
    blocks = [blocks] if isinstance(blocks, dict) else list(blocks)
    for block in blocks:
        if len(blocks) > 1:
            out += [f"### {block['metric']}", ""]
        out += [table(block), "", f"**Verdict:** {block['claim']['sentence']}", ""]
        if block.get("note"):
            out += [block["note"], ""]
    for path in figures:
        name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("-", " ").replace("_", " ")
        out += [f"![{name}]({path})", ""]
    out.append(_end(key))
    return "\n".join(out) + "\n"


def splice(page, key, text):
    """``page`` with ``key``'s section replaced by ``text`` (or inserted in :data:`USE_CASES` order)."""
    page = page or PAGE_HEAD
    pattern = re.compile(re.escape(_begin(key)) + r".*?" + re.escape(_end(key)) + r"\n?", re.S)
    if pattern.search(page):
        return pattern.sub(lambda _: text, page, count=1)
    later = KEYS[KEYS.index(key) + 1:] if key in KEYS else ()
    for other in later:
        at = page.find(_begin(other))
        if at >= 0:
            return page[:at] + text + "\n" + page[at:]
    return page.rstrip("\n") + "\n\n" + text
