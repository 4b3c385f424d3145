"""The run page's API through the real server extension: progress of a live run (epoch N of M,
per-epoch curves, the estimate, the cell executing, the log's tail), the models it wrote, and
publishing one of them: never a silent guess between several, and the answer says what went where.
"""

import json
import shutil
import time

from .conftest import make_notebook
from .test_backends import own_market  # noqa: F401  (fixture)
from .test_handlers import wait_for

# trains a tiny Keras model with the training helpers' callbacks, as the use-case notebooks do,
# saves it as out/model.keras, then waits for the test's gate file (the run is live meanwhile)
TRAIN_THEN_WAIT = """\
import os, time
import numpy as np
import keras
from deepvre.training import checkpoints

rng = np.random.default_rng(0)
x = rng.random((32, 4)).astype("float32")
y = (x.sum(axis=1) > 2).astype("int64")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=epochs, verbose=0, callbacks=checkpoints.resume_callbacks("out", "tiny"))
model.save("out/model.keras")
print("trained; waiting for the gate", flush=True)
while not os.path.exists(gate):
    time.sleep(0.2)
"""


def test_a_live_run_shows_its_epochs_curves_cell_and_log(api, jp_root_dir):
    gate = jp_root_dir / "gate"
    make_notebook(jp_root_dir / "train.ipynb", parameters=f"epochs = 3\ngate = {str(gate)!r}\n", body=TRAIN_THEN_WAIT)
    status, run = api("POST", "runs", body={"path": "train.ipynb"})
    assert status == 201, run
    try:
        page = wait_for(api, run["id"], ("running",))
        for _ in range(600):
            status, page = api("GET", f"runs/{run['id']}")
            if "waiting for the gate" in page["log_tail"] or page["state"] != "running":
                break
            time.sleep(0.5)
        assert page["state"] == "running", page
        training = page["training"]
        assert (training["fit"], training["epoch"], training["epochs"]) == ("tiny", 3, 3)
        assert [h["epoch"] for h in training["history"]] == [1, 2, 3]
        assert all(isinstance(h["logs"]["loss"], float) for h in training["history"])
        assert training["remaining_seconds"] == 0  # every epoch of the fit is done
        assert page["executing"]["source"].startswith("import os, time")
        assert page["log_tail"].splitlines()[-1] == "trained; waiting for the gate"
        assert page["parameters"] == {} and page["folder"] == f"runs/{run['id']}"
        [model] = page["models"]
        assert model["folder"] == "out" and model["path"] == f"runs/{run['id']}/out"
        assert model["files"] == ["model.keras"] and model["size"] > 0
    finally:
        gate.write_text("go")
    done = wait_for(api, run["id"], ("done", "failed"))
    assert done["state"] == "done", done
    assert done["executing"] is None and done["training"]["remaining_seconds"] is None


def test_publish_asks_which_model_when_a_run_wrote_several(api, own_market, jp_root_dir):  # noqa: F811
    status, data = api("POST", "runs", body={"model": "colours", "parameters": {"epochs": 1}})
    trust = {"owner": data["owner"], "sha256": data["sha256"]}
    status, run = api("POST", "runs", body={"model": "colours", "parameters": {"epochs": 1}, "trust": trust})
    assert status == 201, run
    done = wait_for(api, run["id"], ("done", "failed"), timeout=300)
    assert done["state"] == "done", done
    folder = jp_root_dir / "runs" / run["id"]
    # the run keeps its parameterized copy; none is left in the workspace
    assert (folder / "input.ipynb").exists() and not (jp_root_dir / "fine-tune").exists()
    assert run["id"].startswith("colours-training-")
    # a second model (as a notebook with two output folders writes) and a pulled base model,
    # which is not the run's (it carries the catalog's metadata.json)
    (folder / "second-output").mkdir()
    shutil.copy(folder / "model.keras", folder / "second-output" / "model.keras")
    (folder / "second-output" / "published.json").write_text(json.dumps({"name": "x", "version": "1.0.0"}))
    (folder / "second-output" / "base-model").mkdir()
    shutil.copy(folder / "model.keras", folder / "second-output" / "base-model" / "model.keras")
    (folder / "second-output" / "base-model" / "metadata.json").write_text("{}")

    status, page = api("GET", f"runs/{run['id']}")
    assert [m["folder"] for m in page["models"]] == [".", "second-output"]
    assert page["models"][0]["files"] == ["model.keras", "preprocessing.json", "metrics.json"]
    assert page["models"][1]["published"] == {"name": "x", "version": "1.0.0"}

    status, data = api("POST", f"runs/{run['id']}/publish", body={"name": "colours-two"})
    assert status == 409 and "2 models, in ., second-output: choose one" in data["message"], data
    for bad in ("second-output/base-model", "../..", "elsewhere"):
        status, data = api("POST", f"runs/{run['id']}/publish", body={"name": "colours-two", "folder": bad})
        assert status == 404 and f"no model in {bad!r}" in data["message"], data
    status, data = api("POST", f"runs/{run['id']}/publish", body={"name": "colours-two", "folder": 3})
    assert status == 400 and "folder" in data["message"]
    status, card = api("POST", f"runs/{run['id']}/publish", body={"name": "colours-two", "folder": "second-output"})
    assert status == 201, card
    assert (card["name"], card["version"], card["visibility"]) == ("colours-two", "1.0.0", "private")
    assert card["source"] == f"runs/{run['id']}/second-output/model.keras"
    assert card["market"] == "the local catalog"  # no hub here: DEEPVRE_MARKET_URL unset

    # the model page: badges, files, lineage with the run (in this server's runs: a link), usage
    status, page = api("GET", "models/colours-two")
    assert status == 200, page
    assert (page["owner"], page["visibility"]) == (card["owner"], "private")
    assert page["provenance"]["base"] == {"name": "colours", "version": "1.0.0"}
    assert page["provenance"]["run"] == {"id": run["id"], "local": True}
    assert page["provenance"]["notebook"] == "training.ipynb" and page["provenance"]["parameters"] == {"epochs": 1}
    files = {f["name"]: f for f in page["files"]}
    assert set(files) == {"model.keras", "run.json", "training.ipynb"}
    assert files["model.keras"]["size"] == (folder / "second-output" / "model.keras").stat().st_size
    assert page["usage"]["cli"] == "deepvre market pull colours-two:1.0.0"
    assert "connect().pull('colours-two', '1.0.0', 'colours-two-1.0.0')" in page["usage"]["python"]
    status, figures = api("GET", "models/colours-two/figures")
    assert status == 200 and figures == {"figures": [], "notebook": "training.ipynb"}  # it plots nothing
    # the base model has no run: no run link
    assert api("GET", "models/colours")[1]["provenance"]["run"] is None
