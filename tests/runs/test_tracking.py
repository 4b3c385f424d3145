"""``deepvre run`` logs to MLflow (``deepvre.runs.tracking``, issue 19 item 4): a real papermill run into
MLflow's file store (``$DEEPVRE_MLFLOW_TRACKING_URI`` a folder, read back with MLflow's own client), and a
tracking server that cannot be reached: the run still ends done and its log says why nothing was logged.
The hub's service is tested in tests/hub/test_mlflow_service.py."""

import os
import socket

from mlflow.tracking import MlflowClient

from deepvre.runs import tracking
from tests.runs.conftest import read_text


def test_a_run_is_logged_to_a_local_mlflow_folder(cli, runs_dir, notebook, tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    monkeypatch.setenv("DEEPVRE_MLFLOW_TRACKING_URI", str(store))
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    code, out, data = cli("run", notebook("curves"), "-p", "epochs", "3", "--json")
    assert code == 0, out
    (run,) = data
    assert run["status"]["state"] == "done"
    log = read_text(os.path.join(run["path"], "run.log"))
    assert f"deepvre run: logged to MLflow at {store} as run" in log, log
    assert (store / "mlflow.sqlite").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.sqlite")
    experiment = client.get_experiment_by_name("alice/curves")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.run_id == tracking.store.read_json(os.path.join(run["path"], "status.json"))["mlflow_run_id"]
    assert logged.info.status == "FINISHED" and logged.info.run_name == run["id"]
    assert logged.data.params["epochs"] == "3" and logged.data.params["learning_rate"] == "0.01"
    assert [m.value for m in client.get_metric_history(logged.info.run_id, "loss")] == [1.0, 0.5, 1 / 3]
    assert [m.step for m in client.get_metric_history(logged.info.run_id, "loss")] == [1, 2, 3]
    assert logged.data.metrics["test.f1"] == 0.7 and "note" not in logged.data.metrics
    assert logged.data.tags["deepvre.run_id"] == run["id"] and logged.data.tags["deepvre.state"] == "done"
    names = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"output.ipynb", "metrics.json", "progress.json", "params.json", "plots"} <= names
    assert [a.path for a in client.list_artifacts(logged.info.run_id, "plots")] == ["plots/curves.png"]


def test_a_published_model_becomes_tags(tmp_path):
    run = tmp_path / "run-1"
    run.mkdir()
    tracking.store.write_json(str(run / "params.json"), {"notebook": "/x/train.ipynb", "parameters": {"a": 1}})
    tracking.store.write_json(str(run / "status.json"), {"state": "done"})
    tracking.store.write_json(str(run / "published.json"), [
        {"name": "leaf-net", "version": "1.2.0", "notebook_snapshot": {"file": "output.ipynb", "sha256": "ab"}}])
    rec = tracking.record(str(run), "done", user="bob")
    assert rec["experiment"] == "bob/train" and rec["status"] == "FINISHED"
    assert (rec["tags"]["deepvre.model.name"], rec["tags"]["deepvre.model.version"]) == ("leaf-net", "1.2.0")
    assert '"sha256": "ab"' in rec["tags"]["deepvre.model.lineage"]


def test_a_tracking_server_that_is_down_never_fails_the_run(cli, runs_dir, notebook, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DEEPVRE_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    code, out, data = cli("run", notebook("curves"), "--json")
    assert code == 0, out
    (run,) = data
    assert run["status"]["state"] == "done"
    log = read_text(os.path.join(run["path"], "run.log"))
    assert f"not logged to MLflow at http://127.0.0.1:{port}: ConnectionError" in log
    assert "mlflow_run_id" not in run["status"]


def test_nothing_is_logged_without_a_destination(tmp_path):
    assert tracking.destination({}) is None
    assert tracking.log_run(str(tmp_path), "done", environ={}) is None
    assert tracking.destination({"DEEPVRE_MLFLOW_URL": "http://h/services/mlflow/", "DEEPVRE_MLFLOW_TOKEN": "t",
                                 "DEEPVRE_MLFLOW_TRACKING_URI": "/elsewhere"}) == ("http://h/services/mlflow/", "t")
