"""The real DEEPaaS (``deepaas-run``) serves a catalog model through ``deepvre serve``."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from deepvre.cli.serve import deepaas_command, entry_point_dir, serve_environment
from tests.hub.hubprocess import free_port

from .conftest import artifact_files, colour_images, make_document, stop_process

DEEPVRE = Path(sys.executable).parent / "deepvre"
TOKEN = "test-serve-token"
AUTH = {"Authorization": f"token {TOKEN}"}



def test_deepaas_command_is_pure(tmp_path):
    cmd = deepaas_command("tiny", "127.0.0.1", 5001, "/services/serve-tiny", python="/v/bin/python")
    assert cmd[:3] == ["/v/bin/python", "-m", "deepvre.serving.launch"] and cmd[cmd.index("--model-name") + 1] == "tiny"
    assert cmd[cmd.index("--base-path") + 1] == "/services/serve-tiny" and "--insecure" not in cmd
    sock = deepaas_command("tiny", socket="/s/deepaas.sock", insecure=True, python="/v/bin/python")
    assert "--port" not in sock and "--insecure" not in sock and sock[sock.index("--socket") + 1] == "/s/deepaas.sock"
    env = serve_environment("tiny:1.0.0", tmp_path, "/art", env={"PYTHONPATH": "/x", "DEEPVRE_SERVE_TOKEN": "old"}, token="t")
    assert env["DEEPVRE_SERVE_MODEL"] == "tiny:1.0.0" and env["PYTHONPATH"] == f"{tmp_path}{os.pathsep}/x"
    assert env["DEEPVRE_SERVE_TOKEN"] == "t"
    entry = entry_point_dir("tiny-colours", tmp_path) / "deepvre_serve_tiny_colours-0.dist-info" / "entry_points.txt"
    assert entry.read_text() == "[deepaas.v2.model]\ntiny-colours = deepvre.serving.model\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    """``deepvre serve tiny-colours`` on a local catalog where this account published the tiny model
    (``train`` is for the model's owner); every request carries the service's token."""
    import getpass

    from deepvre.market.catalog import Catalog

    root = tmp_path_factory.mktemp("serve")
    env = dict(os.environ, DEEPVRE_MARKET_DIR=str(root / "market"), DEEPVRE_RUNS_DIR=str(root / "runs"),
               DEEPVRE_SERVE_TOKEN=TOKEN)
    env.pop("DEEPVRE_MARKET_URL", None)
    env.pop("JUPYTERHUB_USER", None)
    catalog = Catalog(database_url=f"sqlite:///{root / 'market' / 'catalog.sqlite'}", store_url=str(root / "market" / "artifacts"))
    catalog.publish(make_document(), artifact_files(tiny_model_dir), getpass.getuser())
    port = free_port()
    log = open(root / "deepaas.log", "w")
    proc = subprocess.Popen([str(DEEPVRE), "serve", "tiny-colours", "--port", str(port), "--artifact-dir", str(root / "art")],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    import time

    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError("deepaas exited:\n" + (root / "deepaas.log").read_text()[-3000:])
        try:
            if requests.get(f"{url}/v2/models/", headers=AUTH, timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("deepaas did not start:\n" + (root / "deepaas.log").read_text()[-3000:])
        time.sleep(0.5)
    yield {"url": url, "root": root}
    stop_process(proc, log)


def png_bytes(pixels):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(buf, format="PNG")
    return buf.getvalue()


def test_models_list_and_metadata(served):
    models = requests.get(f"{served['url']}/v2/models/", headers=AUTH, timeout=30).json()["models"]
    names = [m.get("name") for m in models]
    assert "tiny-colours" in names
    meta = requests.get(f"{served['url']}/v2/models/tiny-colours/", headers=AUTH, timeout=30).json()
    assert meta["version"] == "1.0.0" and meta["metadata"]["deepvre"]["input"]["shape"] == [8, 8, 3]


def test_predictions_equal_in_process(served, tiny_model_dir):
    from deepvre.market import modelfile
    from deepvre.serving import preprocessing

    model = modelfile.load(tiny_model_dir / "model.keras")
    spec = preprocessing.read_spec(tiny_model_dir / "preprocessing.json")
    images, truth = colour_images(3, seed=7)
    for pixels, _label in zip(images, truth):
        data = png_bytes(pixels)
        r = requests.post(f"{served['url']}/v2/models/tiny-colours/predict/", files={"data": ("x.png", data, "image/png")},
                          headers={"accept": "application/json", **AUTH}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        local = model.predict(preprocessing.image_array(data, spec), verbose=0)[0]
        np.testing.assert_allclose(body["probabilities"][0], local, rtol=1e-5, atol=1e-6)
        assert body["predictions"][0][0]["label"] == spec["labels"][int(np.argmax(local))]
    # an array works too
    x = (images[:1] / 255.0).tolist()
    r = requests.post(f"{served['url']}/v2/models/tiny-colours/predict/", data={"array": json.dumps(x)},
                      headers={"accept": "application/json", **AUTH}, timeout=120)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["probabilities"][0], model.predict(np.asarray(x, "float32"), verbose=0)[0], rtol=1e-5, atol=1e-6)


def test_train_reruns_the_training_notebook(served):
    """DEEPaaS ``train`` re-runs the model's training notebook (papermill via deepvre.runs)."""
    import time

    url = f"{served['url']}/v2/models/tiny-colours/train/"
    r = requests.post(url, params={"parameters": json.dumps({"epochs": 3})}, headers={"accept": "application/json", **AUTH}, timeout=60)
    assert r.status_code == 200, r.text
    uuid = r.json()["uuid"]
    deadline = time.monotonic() + 300
    while (status := requests.get(f"{url}{uuid}", headers=AUTH, timeout=30).json())["status"] == "running":
        assert time.monotonic() < deadline, "training did not finish in 300 s"
        time.sleep(1)
    assert status["status"] == "done", status
    result = status["result"]["output"]  # what deepvre.serving.model.train returned
    run = Path(result["path"])
    assert run.parent == served["root"] / "runs" and run.is_dir()
    assert result["status"]["state"] == "done" and result["params"]["parameters"] == {"epochs": 3}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == {"epochs": 3, "final_loss": round(1 / 3, 4)} == result["metrics"]
    assert (run / "out" / "metrics.json").is_file() and Path(result["output"]).is_file()
    # a bad parameter is an error of the training, reported by DEEPaaS
    r = requests.post(url, params={"parameters": json.dumps({"epochs": "many"})}, headers={"accept": "application/json", **AUTH}, timeout=60)
    assert r.status_code == 200, r.text
    bad = r.json()["uuid"]
    while (status := requests.get(f"{url}{bad}", headers=AUTH, timeout=30).json())["status"] == "running":
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(1)
    assert status["status"] == "error" and "epochs" in status["message"]
