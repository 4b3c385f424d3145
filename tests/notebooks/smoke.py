"""Run a use-case notebook in smoke mode with papermill, against a throw-away local marketplace."""

import json
import os

from tests.prereqs import REPO


def run_smoke(name, tmp_path, **parameters):
    """Execute ``notebooks/<name>/<name>.ipynb`` (smoke) in ``tmp_path``; returns (output dir, notebook)."""
    import papermill

    out = tmp_path / "output"
    executed = tmp_path / f"{name}.ipynb"
    saved = os.environ.get("DEEPVRE_MARKET_DIR")
    os.environ["DEEPVRE_MARKET_DIR"] = str(tmp_path / "market")  # the kernel inherits it
    try:
        papermill.execute_notebook(
            os.path.join(REPO, "notebooks", name, f"{name}.ipynb"), str(executed), cwd=str(tmp_path), progress_bar=False,
            parameters={"smoke": True, "output_dir": str(out), "executed_notebook": str(executed), **parameters},
        )
    finally:
        if saved is None:
            os.environ.pop("DEEPVRE_MARKET_DIR")
        else:
            os.environ["DEEPVRE_MARKET_DIR"] = saved
    return out, json.loads(executed.read_text())


def local_market(tmp_path):
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import LocalMarket

    root = tmp_path / "market"
    return LocalMarket(Catalog(database_url=f"sqlite:///{root / 'catalog.sqlite'}", store_url=str(root / "artifacts")))


def png_outputs(notebook):
    return sum("image/png" in o.get("data", {}) for c in notebook["cells"] for o in c.get("outputs", []))
