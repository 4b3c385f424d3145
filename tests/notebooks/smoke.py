"""Run a use-case notebook in smoke mode with its own throw-away marketplace (shared by the notebook tests)."""

import os

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
    """papermill ``notebook`` into ``root`` (smoke, output ``root/out``, market ``root/market``); returns ``root``."""
    import papermill

    executed = root / os.path.basename(notebook)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPVRE_MARKET_DIR", str(root / "market"))
        mp.delenv("DEEPVRE_MARKET_URL", raising=False)
        papermill.execute_notebook(notebook, str(executed), cwd=str(root), progress_bar=False,
                                   parameters={"smoke": True, "output_dir": "out",
                                               "executed_notebook": str(executed)})
    return root


def local_market(root):
    """The catalog the smoke run published to."""
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import LocalMarket

    return LocalMarket(Catalog(database_url=f"sqlite:///{root / 'market' / 'catalog.sqlite'}",
                               store_url=str(root / "market" / "artifacts")))


PARAMETERS = ("data_dir", "base_model", "fine_tune_layers", "epochs", "batch_size", "learning_rate",
              "seed", "output_dir", "smoke")


def png_outputs(notebook):
    """How many images the executed notebook (a dict) shows."""
    return sum("image/png" in o.get("data", {}) for c in notebook["cells"] for o in c.get("outputs", []))
