"""Run a use-case notebook in smoke mode with its own throw-away marketplace (shared by the notebook tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.prereqs import REPO, require


def require_files(find, reason):
    """``find()`` locates shipped data and raises FileNotFoundError without it: skip by hand, fail in CI."""
    try:
        find()
        have = True
    except FileNotFoundError:
        have = False
    require(have, reason)


def notebook_path(folder, name):
    return os.path.join(REPO, "notebooks", folder, f"{name}.ipynb")


def execute_smoke(notebook, root):
    """papermill ``notebook`` into ``root`` (smoke, output ``root/out``, publishing to the market
    ``root/market``: smoke runs publish only when asked); returns ``root``."""
    import papermill

    executed = root / os.path.basename(notebook)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPVRE_MARKET_DIR", str(root / "market"))
        mp.delenv("DEEPVRE_MARKET_URL", raising=False)
        papermill.execute_notebook(notebook, str(executed), cwd=str(root), progress_bar=False,
                                   parameters={"smoke": True, "output_dir": "out", "publish": True,
                                               "executed_notebook": str(executed)})
    return root


def local_market(root):
    """The catalog the smoke run published to."""
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import LocalMarket

    return LocalMarket(Catalog(database_url=f"sqlite:///{root / 'market' / 'catalog.sqlite'}",
                               store_url=str(root / "market" / "artifacts")))


class SmokeRun(NamedTuple):
    """A notebook executed once in smoke mode (:func:`run_smoke`)."""

    root: Path  # the run's folder: the executed notebook, market/
    out: Path  # the notebook's output_dir
    notebook: dict  # the executed notebook, as its JSON

    def metrics(self):
        """``out/metrics.json``, checked as every smoke run's: from smoke mode, numbers in it, each
        value a finite number (``report.problems``, the text keys aside)."""
        from deepvre.training import report

        metrics = json.loads((self.out / "metrics.json").read_text())
        assert report.problems(metrics) == [] and metrics["mode"] == "smoke", metrics
        assert any(isinstance(v, (int, float)) for v in report.flatten(metrics).values()), metrics
        return metrics

    def market(self):
        return local_market(self.root)

    def published(self, base):
        """The catalog entry of the model the notebook published (``out/published.json``: its name
        and version), fine-tuned from ``base`` (:func:`fine_tuned`)."""
        published = json.loads((self.out / "published.json").read_text())
        return fine_tuned(self.market(), published["name"], base, published["version"])


def run_smoke(tmp_path_factory, folder, name=None):
    """Execute ``notebooks/folder/name.ipynb`` (``name``: ``folder``) in smoke mode in a new
    temporary folder, with its own throw-away marketplace."""
    name = name or folder
    root = execute_smoke(notebook_path(folder, name), tmp_path_factory.mktemp(f"{name}-nb"))
    return SmokeRun(root, root / "out", json.loads((root / f"{name}.ipynb").read_text()))


def fine_tuned(market, name, base, version=None):
    """``name``'s catalog entry (``version``: the latest), checked for the lineage every use case's
    fine-tuned model records: its base model ``base`` 1.0.0, and its data's manifest."""
    entry = market.show(name, version)
    section = entry["metadata"]["deepvre"]
    assert section["base_model"] == {"name": base, "version": "1.0.0"}, section["base_model"]
    assert section["data"]["manifest.json"], section["data"]
    return entry


def pull_model(market, name, version, folder):
    """Pull ``name`` ``version`` into ``folder`` and load its ``model.keras`` as users do
    (``modelfile.load``: safe_mode, a Lambda layer raises)."""
    from deepvre.market import modelfile

    market.pull(name, version, folder)
    return modelfile.load(str(folder / "model.keras"))


PARAMETERS = ("data_dir", "base_model", "fine_tune_layers", "epochs", "batch_size", "learning_rate",
              "seed", "output_dir", "smoke")


def png_outputs(notebook):
    """How many images the executed notebook (a dict) shows."""
    return sum("image/png" in o.get("data", {}) for c in notebook["cells"] for o in c.get("outputs", []))


DEEPVRE = os.path.join(os.path.dirname(sys.executable), "deepvre")  # the real console script


def verify_published(smoke_run, runs_dir):
    """``deepvre market verify`` of the version ``smoke_run`` published (its own marketplace): the
    lineage re-run in ``runs_dir`` must be verified within the notebook's declared tolerances, and
    ``deepvre market show`` must show the signed record's badge. Returns the answer."""
    published = json.loads((smoke_run.out / "published.json").read_text())
    ref = f"{published['name']}:{published['version']}"
    env = dict(os.environ, DEEPVRE_MARKET_DIR=str(smoke_run.root / "market"))
    env.pop("DEEPVRE_MARKET_URL", None)
    out = subprocess.run([DEEPVRE, "market", "verify", ref, "--runs-dir", str(runs_dir), "--json"], env=env,
                         capture_output=True, text=True, check=False, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    done = json.loads(out.stdout)
    assert done["result"] == "verified", done
    assert done["metrics"] and all(row["tolerance"] == 0.05 for row in done["metrics"].values()), done["metrics"]
    assert done["record"]["valid"] and done["record"]["result"] == "verified"
    shown = subprocess.run([DEEPVRE, "market", "show", ref], env=env, capture_output=True, text=True, check=True,
                           timeout=120)
    assert "verification: verified by" in shown.stdout, shown.stdout
    return done
