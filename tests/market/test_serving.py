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


def start_serve(model, env, log_path, args=(), token=TOKEN, timeout=180):
    """``deepvre serve MODEL --port P ARGS`` with ``env``: ``(process, URL, log)`` once its API
    answers a request with ``token`` (also used by benchmarks/serving.py)."""
    import time

    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([str(DEEPVRE), "serve", model, "--port", str(port), *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("deepvre serve exited:\n" + Path(log_path).read_text()[-3000:])
        try:
            if requests.get(f"{url}/v2/models/", headers={"Authorization": f"token {token}"}, timeout=5).status_code == 200:
                return proc, url, log
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"deepvre serve did not answer in {timeout} s:\n" + Path(log_path).read_text()[-3000:])
        time.sleep(0.5)


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
    proc, url, log = start_serve("tiny-colours", env, root / "deepaas.log", ["--artifact-dir", str(root / "art")])
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


def predict(served, timeout=120, **kw):
    return requests.post(f"{served['url']}/v2/models/tiny-colours/predict/", headers={"accept": "application/json", **AUTH},
                         timeout=timeout, **kw)


def local_top(model, x, k):
    """The top ``k`` (label, probability) of each sample, computed in this process."""
    from deepvre.serving.preprocessing import top_labels

    from .conftest import LABELS

    return [[(p["label"], p["probability"]) for p in top_labels(row, LABELS, k)] for row in model.predict(x, verbose=0)]


def answered(body):
    return [[(p["label"], p["probability"]) for p in sample] for sample in body["predictions"]]


def assert_same_top(got, want):
    assert [[label for label, _ in s] for s in got] == [[label for label, _ in s] for s in want]
    np.testing.assert_allclose([[p for _, p in s] for s in got], [[p for _, p in s] for s in want], rtol=1e-5, atol=1e-6)


def test_predictions_equal_in_process(served, tiny_model_dir):
    from deepvre.market import modelfile
    from deepvre.serving import preprocessing

    model = modelfile.load(tiny_model_dir / "model.keras")
    spec = preprocessing.read_spec(tiny_model_dir / "preprocessing.json")
    images, truth = colour_images(3, seed=7)
    for pixels, _label in zip(images, truth):
        data = png_bytes(pixels)
        r = predict(served, files={"data": ("x.png", data, "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert "probabilities" not in body  # the top labels only, not the whole vector
        assert_same_top(answered(body), local_top(model, preprocessing.image_array(data, spec), 5))
    # an array works too, with a top_k
    x = (images[:2] / 255.0).tolist()
    r = predict(served, data={"array": json.dumps(x), "top_k": "2"})
    assert r.status_code == 200, r.text
    assert_same_top(answered(r.json()), local_top(model, np.asarray(x, "float32"), 2))
    assert [len(s) for s in r.json()["predictions"]] == [2, 2]


BAD_INPUTS = [
    # (what, request keywords, words the reason must hold)
    ("corrupt image", {"files": {"data": ("x.png", b"\x89PNG\r\n\x1a\n not really", "image/png")}}, ["not an image"]),
    ("empty file", {"files": {"data": ("x.png", b"", "image/png")}}, ["empty"]),
    ("no input at all", {"data": {"top_k": "3"}}, ["`data`", "`array`"]),
    ("wrong field name", {"files": {"image": ("x.png", b"abc", "image/png")}}, ["`data`", "`array`"]),
    ("data as a text field", {"data": {"data": "abc"}}, ["file upload"]),
    ("array not JSON", {"data": {"array": "[[1, 2"}}, ["not JSON"]),
    ("array of the wrong shape", {"data": {"array": json.dumps([[1.0, 2.0, 3.0]])}}, ["shape [1, 3]", "[8, 8, 3]"]),
    ("array of strings", {"data": {"array": json.dumps([[["a", "b", "c"]] * 8] * 8)}}, ["float32"]),
    ("ragged array", {"data": {"array": json.dumps([[1.0], [1.0, 2.0]])}}, ["rectangular"]),
    ("array with NaN", {"data": {"array": json.dumps([[[0.5, 0.5, 0.5]] * 8] * 7 + [[[0.5, 0.5, float("nan")]] * 8])}},
     ["NaN"]),
    ("top_k zero", {"data": {"array": json.dumps([[[0.5, 0.5, 0.5]] * 8] * 8), "top_k": "0"}}, ["top_k"]),
    ("top_k too large", {"data": {"array": json.dumps([[[0.5, 0.5, 0.5]] * 8] * 8), "top_k": "1000"}}, ["top_k"]),
    ("top_k not a number", {"data": {"array": json.dumps([[[0.5, 0.5, 0.5]] * 8] * 8), "top_k": "many"}}, ["top_k"]),
]


@pytest.mark.parametrize("what,request_kw,reason", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_a_400_with_the_reason(served, what, request_kw, reason):
    """As DEEPaaS's own OpenAPI spec documents (400, ``{"message": ...}``), never a bare 500; the
    service keeps serving after it."""
    r = predict(served, **request_kw)
    assert r.status_code == 400, (what, r.status_code, r.text)
    message = r.json()["message"]
    assert all(word in message for word in reason), (what, message)
    spec = requests.get(f"{served['url']}/swagger.json", headers=AUTH, timeout=30).json()
    documented = spec["paths"]["/v2/models/tiny-colours/predict/"]["post"]["responses"]
    assert "400" in documented
    ok = predict(served, data={"array": json.dumps([[[0.9, 0.0, 0.0]] * 8] * 8)})
    assert ok.status_code == 200 and ok.json()["predictions"][0][0]["label"] == "red", ok.text


def test_concurrent_requests_each_get_their_own_answer(served, tiny_model_dir):
    """16 requests at once (images, arrays, bad input mixed) against the threaded predictions:
    each answer is the one for its own input."""
    from concurrent.futures import ThreadPoolExecutor

    from deepvre.market import modelfile
    from deepvre.serving import preprocessing

    model = modelfile.load(tiny_model_dir / "model.keras")
    spec = preprocessing.read_spec(tiny_model_dir / "preprocessing.json")
    images, _ = colour_images(16, seed=11)
    jobs = []
    for i, pixels in enumerate(images):
        if i % 4 == 3:
            jobs.append(({"files": {"data": ("x.png", b"junk", "image/png")}}, None))
        elif i % 2:
            x = (pixels / 255.0)[None]
            jobs.append(({"data": {"array": json.dumps(x.tolist()), "top_k": "2"}}, local_top(model, x, 2)))
        else:
            data = png_bytes(pixels)
            jobs.append(({"files": {"data": ("x.png", data, "image/png")}, "data": {"top_k": "1"}},
                         local_top(model, preprocessing.image_array(data, spec), 1)))
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda job: predict(served, **job[0]), jobs))
    for (_kw, want), r in zip(jobs, answers):
        if want is None:
            assert r.status_code == 400 and "not an image" in r.json()["message"], r.text
        else:
            assert r.status_code == 200, r.text
            assert_same_top(answered(r.json()), want)


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
