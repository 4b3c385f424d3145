"""``deepvre results``: fresh runs through ``deepvre run``, an empty catalog, and sections of the page
built from the notebooks' own metrics (issue 16, item 5).

The command runs against a throw-away git checkout whose "biology" notebook is a small one that
reports fixed per-seed numbers through the real harness (``evaluation.comparison``) and says what
catalog it saw; the real notebooks' blocks are checked by their own smoke tests
(``tests/notebooks``).
"""

import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

from deepvre.science import results_page

DEEPVRE = os.path.join(os.path.dirname(sys.executable), "deepvre")
PARAMETERS = 'smoke = False\noutput_dir = "out"\n'
REPORT = '''
import json, os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from deepvre.science import evaluation
from deepvre.training import report

market = os.environ.get("DEEPVRE_MARKET_DIR", "")
block = evaluation.comparison("test accuracy", {
    "fine-tuned": [0.91, 0.93, 0.92], "scratch": [0.70, 0.74, 0.72], "colour statistics": [0.95, 0.96, 0.97]},
    transfer="fine-tuned", note="a small notebook for the command's test")
os.makedirs(output_dir, exist_ok=True)
plt.plot([1, 2, 3]); plt.savefig(os.path.join(output_dir, "arms.png"))
second = evaluation.comparison("test rmse", {"transfer": [0.30, 0.31, 0.32], "scratch": [0.50, 0.51, 0.52]}, higher_is_better=False)
report.write_metrics(output_dir, {"mode": "smoke" if smoke else "full", "results": block, "results_second": second,
                                  "catalog_entries": len(os.listdir(market)) if os.path.isdir(market) else -1,
                                  "hub_catalog": int(bool(os.environ.get("DEEPVRE_MARKET_URL")))})
'''
BROKEN = 'import os, json\nos.makedirs(output_dir, exist_ok=True)\njson.dump({"accuracy": 1.0}, open(os.path.join(output_dir, "metrics.json"), "w"))\n'


def checkout(root, body):
    """A git checkout at ``root`` whose notebooks/biology/biology.ipynb runs ``body``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = root / "notebooks" / "biology"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "biology.ipynb")
    (root / "docs").mkdir()
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notebook"]):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    return subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def results(root, *args, **env):
    environ = {**os.environ, "DEEPVRE_MARKET_URL": "http://127.0.0.1:9/services/marketplace/", **env}
    return subprocess.run([DEEPVRE, "results", "biology", "--repo", str(root), "--runs-dir", str(root / "runs"),
                           *args], capture_output=True, text=True, timeout=600, env=environ)


def test_a_section_from_a_fresh_run_with_its_run_id_commit_and_figures(tmp_path):
    commit = checkout(tmp_path, REPORT)
    kept = "# Results\n\nProse a person wrote.\n\n<!-- results:security (written by `deepvre results security`) -->\nold\n<!-- /results:security -->\n"
    (tmp_path / "docs" / "results.md").write_text(kept)
    done = results(tmp_path, "--smoke")
    assert done.returncode == 0, done.stderr + done.stdout
    page = (tmp_path / "docs" / "results.md").read_text()
    # the run is a real `deepvre run` folder whose metrics the table repeats
    run_id = re.search(r"Run `([^`]+)` of commit `([^`]+)`", page)
    assert run_id and run_id.group(2) == commit
    metrics = json.loads((tmp_path / "runs" / run_id.group(1) / "metrics.json").read_text())
    assert metrics["catalog_entries"] == 0 and metrics["hub_catalog"] == 0  # an empty catalog of its own
    assert "| fine-tuned (transfer) | 0.920 ± 0.025 | 0.895 to 0.945 | 3 | 0.910 0.930 0.920 |" in page
    assert metrics["results"]["claim"]["sentence"] in page and "does not demonstrably help" in page
    assert "Smoke mode" in page and "deepvre results biology --smoke" in page
    # a second task's block: its own table and verdict, after the first
    assert page.index("### test accuracy") < page.index("### test rmse") < page.index("| transfer (transfer) | 0.310")
    assert metrics["results_second"]["claim"]["sentence"] in page and "Transfer helps" in page
    assert (tmp_path / "docs" / "results" / "biology" / "arms.png").stat().st_size > 1000
    assert "![arms](results/biology/arms.png)" in page
    # the rest of the page stays, and biology comes before security
    assert page.startswith("# Results\n\nProse a person wrote.\n") and "\nold\n" in page
    assert page.index("results:biology") < page.index("results:security")

    again = results(tmp_path)  # full mode replaces the section, once
    assert again.returncode == 0, again.stderr
    page = (tmp_path / "docs" / "results.md").read_text()
    assert page.count("<!-- results:biology") == 1 and "Smoke mode" not in page


def test_a_notebook_without_a_results_block_fails_and_leaves_the_page(tmp_path):
    checkout(tmp_path, BROKEN)
    (tmp_path / "docs" / "results.md").write_text("# Results\n")
    done = results(tmp_path)
    assert done.returncode != 0
    assert "no 'results' block" in done.stderr and "no section written for: biology" in done.stderr
    assert (tmp_path / "docs" / "results.md").read_text() == "# Results\n"


def test_outside_a_git_checkout_it_refuses(tmp_path):
    done = subprocess.run([DEEPVRE, "results", "biology", "--repo", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "not a git checkout" in done.stderr


def test_splice_replaces_and_inserts_in_order():
    run = {"id": "r1", "commit": "abc", "date": "2026-11-30", "wall_s": 61, "load": (1.0, 2.0, 3.0), "command": "c"}
    block = {"metric": "rmse", "higher_is_better": False, "transfer": "t", "scratch": "s", "note": "",
             "arms": [{"label": a, "mean": m, "low": m - 0.1, "high": m + 0.1, "half_width": 0.1, "sd": 0.1, "n": 5,
                       "per_seed": [m] * 5} for a, m in (("t", 0.3), ("s", 0.5))],
             "claim": {"helps": False, "best_baseline": None, "sentence": "Transfer does not demonstrably help."}}
    lattice = results_page.section("lattice-qcd", block, run)
    assert "1 min 01 s" in lattice and "rmse (lower is better)" in lattice
    page = results_page.splice("", "lattice-qcd", lattice)
    page = results_page.splice(page, "biology", results_page.section("biology", block, run))
    assert page.index("results:biology") < page.index("results:lattice-qcd")
    replaced = results_page.splice(page, "lattice-qcd", lattice.replace("r1", "r2"))
    assert replaced.count("results:lattice-qcd (") == 1 and "`r2`" in replaced and "`r1`" in replaced
    with pytest.raises(results_page.ResultsError, match="no 'results' block"):
        results_page.check_block("lattice-qcd", {"rmse": 0.3})
