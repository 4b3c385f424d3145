"""``deepvre run`` is the notebooks' first-class path: lineage that names the run, and resume after a kill.

Both tests drive the real console script (a worker process per run, papermill, a kernel) on the
lattice-QCD notebook, the fastest use case, and publish to the session's throw-away catalog
(``$DEEPVRE_MARKET_DIR`` from conftest), which also shows that the notebooks honour it.
"""

import json
import os
import subprocess
import sys
import time

from .smoke import notebook_path

NOTEBOOK = notebook_path("lattice-qcd", "lattice-qcd")
DEEPVRE = [os.path.join(os.path.dirname(sys.executable), "deepvre")]  # the real console script


def deepvre(*args, runs_dir, timeout=900):
    """Run the ``deepvre`` CLI; return its ``--json`` answer (``run``: the one run's dict)."""
    out = subprocess.run([*DEEPVRE, *args, "--runs-dir", str(runs_dir), "--json"], capture_output=True, text=True, check=False,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout)
    return answer[0] if isinstance(answer, list) else answer


def session_market():
    from deepvre.market.catalog import Catalog, default_root
    from deepvre.market.client import LocalMarket

    root = default_root()
    return LocalMarket(Catalog(database_url=f"sqlite:///{root / 'catalog.sqlite'}", store_url=str(root / "artifacts")))


def test_session_catalog_is_not_the_users(private_market):
    from pathlib import Path

    from deepvre.market.catalog import default_root

    assert default_root() == private_market
    assert default_root() != Path.home() / ".local" / "share" / "deepvre" / "market"


def test_deepvre_run_publishes_with_lineage_naming_the_run(tmp_path, private_market):
    from deepvre.checksums import file_sha256

    runs_dir = tmp_path / "runs"
    run_id = deepvre("run", NOTEBOOK, "-p", "smoke", "True", "-p", "publish", "True",
                     "-p", "model_name", "lattice-run-lineage", runs_dir=runs_dir)["id"]
    run_dir = runs_dir / run_id
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "done", status

    # the catalog entry (in the session catalog: the notebook honoured $DEEPVRE_MARKET_DIR) names the run
    market = session_market()
    entry = market.show("lattice-run-lineage")
    assert {"run.json", "output.ipynb", "model.keras", "data-manifest.json"} <= set(entry["files"])
    assert entry["metadata"]["deepvre"]["training"]["notebook"] == "output.ipynb"
    pulled = tmp_path / "pulled"
    market.pull("lattice-run-lineage", entry["version"], pulled)
    named = json.loads((pulled / "run.json").read_text())
    assert named == {"id": run_id, "path": str(run_dir), "provenance": str(run_dir / "provenance.json")}

    # ... and the run's provenance names the FINAL executed notebook and the entries it published
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["run"] == run_id and provenance["state"] == "done"
    assert provenance["notebook"] == {"path": str(run_dir / "output.ipynb"), "sha256": file_sha256(run_dir / "output.ipynb")}
    published = {(p["name"], p["version"]): p for p in provenance["published"]}
    assert ("lattice-run-lineage", entry["version"]) in published
    snapshot = published[("lattice-run-lineage", entry["version"])]["notebook_snapshot"]
    assert snapshot["sha256"] == file_sha256(pulled / "output.ipynb")  # what the catalog holds, byte for byte
    assert not os.path.exists(os.path.expanduser("~/.local/share/deepvre/market/artifacts/lattice-run-lineage"))


def first_epoch_line(notebook, marker):
    """The first ``Epoch N/M`` Keras printed after ``marker`` in the executed notebook's outputs."""
    import re

    import nbformat

    text = "".join(o.get("text", "") for c in nbformat.read(notebook, 4).cells for o in c.get("outputs", []))
    found = re.search(r"Epoch (\d+)/(\d+)", text[text.index(marker):])
    return int(found.group(1)), int(found.group(2))


def test_killed_run_resumes_from_the_last_epoch(tmp_path, private_market):
    """Cancel a detached run mid-training (its kernel is SIGKILLed), run again into the same output folder."""
    from deepvre.training import checkpoints

    runs_dir, out = tmp_path / "runs", tmp_path / "lattice-out"
    # not smoke (it caps the epochs), but smoke-sized lattices; many epochs, so the kill lands mid-training
    params = ["-p", "output_dir", str(out), "-p", "small_size", "8", "-p", "large_size", "16",
              "-p", "betas", "[1.0, 2.0, 3.0]", "-p", "test_betas", "[1.5, 2.5]", "-p", "small_chains", "2",
              "-p", "small_configs", "12", "-p", "chains", "2", "-p", "test_chains", "1", "-p", "large_configs", "6",
              "-p", "seeds", "2", "-p", "learning_rates", "0.003", "-p", "flow_task", "False",
              "-p", "pretrain_epochs", "2", "-p", "epochs", "100", "-p", "base_model", "lattice-resume-base",
              "-p", "model_name", "lattice-resume"]
    first = deepvre("run", NOTEBOOK, *params, "--detach", runs_dir=runs_dir)
    backup = out / "transfer-lr0-s0-backup"  # the first seed's fine-tuning at the (one) learning rate
    deadline = time.monotonic() + 600
    while not checkpoints.interrupted(out, "transfer-lr0-s0"):  # an epoch of the fine-tuning has been checkpointed
        state = json.loads((runs_dir / first["id"] / "status.json").read_text())["state"]
        assert state in ("queued", "running"), (runs_dir / first["id"] / "run.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "fine-tuning never checkpointed an epoch"
        time.sleep(0.2)
    cancelled = deepvre("runs", "cancel", first["id"], runs_dir=runs_dir)
    assert cancelled["state"] == "cancelled", cancelled
    assert not (out / "metrics.json").exists()
    assert checkpoints.interrupted(out, "transfer-lr0-s0"), "the interrupted fit left its checkpoint"

    second = deepvre("run", NOTEBOOK, *params, runs_dir=runs_dir)
    run_dir = runs_dir / second["id"]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "done"
    metrics = json.loads((out / "metrics.json").read_text())
    resumed_at, total = first_epoch_line(run_dir / "output.ipynb", "fine-tuning")
    assert total == 100 and resumed_at > 1, "the second run started the fine-tuning over"
    assert metrics["transfer"]["first_epoch"] == resumed_at
    assert metrics["transfer"]["epochs_run"] == 100 - resumed_at + 1 < 100
    assert metrics["scratch"]["epochs_run"] == 100  # the from-scratch twin had not started: it runs in full
    assert not backup.exists()  # a completed fit removes its backup
