"""A finished run, logged in MLflow's tracking format (issue 19): called once by the worker.

Where to (:func:`destination`): inside a hub with ``mlflow.enabled``, the hub's MLflow service
(``$DEEPVRE_MLFLOW_URL``, with the server's token for that service alone, ``$DEEPVRE_MLFLOW_TOKEN``),
over MLflow's REST API with ``requests`` (the single-user images do not carry mlflow). Without a
hub, ``$DEEPVRE_MLFLOW_TRACKING_URI``: an MLflow server's URL (REST too) or a local folder (MLflow's
file store, through the ``mlflow`` package). Neither: nothing is logged.

What (:func:`record`): the experiment ``<user>/<notebook name>``, a run named by the run's id with
its parameters, the training curves of ``progress.json`` (one step per epoch), the final metrics
of ``metrics.json``, the executed notebook, the run's records and the plots of its output folder
as artifacts, and the published models (name, version, notebook snapshot) as tags.

A failure to log never fails the run: :func:`log_run` prints the reason to the run's log and returns.
"""

import getpass
import json
import os
import time
from urllib.parse import quote, urlparse

from deepvre.site.environment import Environment
from deepvre.training import progress

from . import store
from .provenance import PROVENANCE, PUBLISHED

RECORDS = (store.OUTPUT, store.METRICS, progress.FILE, "environment.json", PROVENANCE, PUBLISHED, store.PARAMS)
PLOTS = (".png", ".svg", ".jpg", ".jpeg", ".pdf", ".html")
MAX_PLOTS, MAX_ARTIFACT = 50, 50 * 1024 * 1024
STATUS = {"done": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
TIMEOUT = 60


class TrackingError(RuntimeError):
    """The tracking server refused or failed; the message says what and why."""


def destination(environ=None):
    """``(uri, token)`` of where runs go, or ``None``: the hub's service first, then the local setting."""
    env = Environment(environ)
    if env.mlflow_url:
        return env.mlflow_url, env.mlflow_token
    if env.mlflow_tracking_uri:
        return env.mlflow_tracking_uri, None
    return None


class RestTracker:
    """MLflow's REST API over ``requests``: a tracking server, or the hub's service with a token."""

    def __init__(self, url, token=None):
        import requests

        self.base = url.rstrip("/") + "/"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    def _call(self, method, path, **kwargs):
        answer = self.session.request(method, self.base + path, timeout=TIMEOUT, allow_redirects=False, **kwargs)
        if answer.status_code >= 300:
            raise TrackingError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content and "json" in answer.headers.get("Content-Type", "") else {}

    def experiment(self, name):
        answer = self.session.get(self.base + "api/2.0/mlflow/experiments/get-by-name",
                                  params={"experiment_name": name}, timeout=TIMEOUT, allow_redirects=False)
        if answer.status_code == 200:
            return answer.json()["experiment"]["experiment_id"]
        return self._call("POST", "api/2.0/mlflow/experiments/create", json={"name": name})["experiment_id"]

    def create_run(self, experiment_id, name, start_ms, tags):
        body = {"experiment_id": experiment_id, "run_name": name, "start_time": start_ms,
                "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        info = self._call("POST", "api/2.0/mlflow/runs/create", json=body)["run"]["info"]
        return info["run_id"], info.get("artifact_uri", "")

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._call("POST", "api/2.0/mlflow/runs/log-batch", json={
            "run_id": run_id, "metrics": [dict(zip(("key", "value", "timestamp", "step"), m)) for m in metrics],
            "params": [{"key": k, "value": v} for k, v in params], "tags": [{"key": k, "value": v} for k, v in tags]})

    def log_artifact(self, run_id, artifact_uri, path, name):
        parsed = urlparse(artifact_uri)
        if parsed.scheme != "mlflow-artifacts":
            raise TrackingError(f"the server keeps artifacts at {artifact_uri!r}, not behind its own API "
                                "(start it with --serve-artifacts)")
        target = quote(parsed.path.strip("/") + "/" + name)
        with open(path, "rb") as fh:
            self._call("PUT", f"api/2.0/mlflow-artifacts/artifacts/{target}", data=fh)

    def finish(self, run_id, status, end_ms):
        self._call("POST", "api/2.0/mlflow/runs/update", json={"run_id": run_id, "status": status, "end_time": end_ms})


class FolderTracker:
    """MLflow's own client on a local tracking URI: a folder (an SQLite store ``mlflow.sqlite`` in it,
    artifacts under ``artifacts/``; MLflow 3 keeps its file store for old data only) or a URI MLflow
    knows (``sqlite:///...``)."""

    def __init__(self, uri):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise TrackingError(f"logging to {uri!r} needs the mlflow package (pip install mlflow), "
                                "or give an MLflow server's http:// URL") from None
        self.artifacts = None
        if "://" not in uri:
            folder = os.path.abspath(os.path.expanduser(uri))
            os.makedirs(folder, exist_ok=True)
            uri, self.artifacts = f"sqlite:///{folder}/mlflow.sqlite", os.path.join(folder, "artifacts")
        self.client = MlflowClient(tracking_uri=uri)

    def experiment(self, name):
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found else self.client.create_experiment(name, artifact_location=self.artifacts
                                                                             and f"{self.artifacts}/{name}")

    def create_run(self, experiment_id, name, start_ms, tags):
        run = self.client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=name)
        return run.info.run_id, run.info.artifact_uri

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        from mlflow.entities import Metric, Param, RunTag

        self.client.log_batch(run_id, metrics=[Metric(*m) for m in metrics], params=[Param(k, v) for k, v in params],
                              tags=[RunTag(k, v) for k, v in tags])

    def log_artifact(self, run_id, artifact_uri, path, name):
        folder = os.path.dirname(name)
        self.client.log_artifact(run_id, path, folder or None)

    def finish(self, run_id, status, end_ms):
        self.client.set_terminated(run_id, status, end_ms)


def tracker(uri, token=None):
    if urlparse(uri).scheme in ("http", "https"):
        return RestTracker(uri, token)
    return FolderTracker(uri)


def flat_metrics(data, prefix=""):
    """``{dotted key: number}`` of the numbers in ``metrics.json`` (nested objects flattened)."""
    found = {}
    for key, value in (data or {}).items() if isinstance(data, dict) else ():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(flat_metrics(value, name + "."))
        elif not isinstance(value, bool) and progress.as_number(value) is not None:
            found[name] = progress.as_number(value)
    return found


def _ms(value, default):
    """Milliseconds of an ISO time (``store.now()``) or Unix seconds."""
    if isinstance(value, (int, float)):
        return int(value * 1000)
    if isinstance(value, str):
        import datetime

        try:
            return int(datetime.datetime.fromisoformat(value).timestamp() * 1000)
        except ValueError:
            pass
    return default


def record(run_path, state, user=None):
    """What a run gives MLflow: ``{experiment, name, start, end, status, params, metrics, tags, artifacts}``
    (metrics as ``(key, value, timestamp ms, step)``; artifacts as ``(local path, artifact name)``)."""
    read = lambda name, default=None: store.read_json(os.path.join(run_path, name), default)  # noqa: E731
    params, status = read(store.PARAMS, {}) or {}, read(store.STATUS, {}) or {}
    now = int(time.time() * 1000)
    start, end = _ms(status.get("started") or status.get("created"), now), now
    notebook = params.get("notebook") or "notebook.ipynb"
    name = os.path.splitext(os.path.basename(notebook))[0]
    user = user or os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    values = {**(params.get("defaults") or {}), **(params.get("parameters") or {})}
    run_params = [(str(k)[:250], (v if isinstance(v, str) else json.dumps(v))[:6000]) for k, v in values.items()]
    metrics, last_step = [], 0
    for entry in (read(progress.FILE, {}) or {}).get("history") or []:
        step = int(entry.get("epoch") or 0)
        last_step = max(last_step, step)
        stamp = _ms(entry.get("time"), end)
        metrics += [(k, v, stamp, step) for k, v in flat_metrics(entry.get("logs")).items()]
    metrics += [(k, v, end, last_step) for k, v in flat_metrics(read(store.METRICS)).items()]
    tags = {"mlflow.source.name": notebook, "mlflow.user": user, "deepvre.run_id": os.path.basename(run_path),
            "deepvre.state": state, "deepvre.backend": str(params.get("backend") or "")}
    provenance = read(PROVENANCE, {}) or {}
    if (provenance.get("notebook") or {}).get("sha256"):
        tags["deepvre.notebook_sha256"] = provenance["notebook"]["sha256"]
    published = provenance.get("published") or read(PUBLISHED, []) or []
    if published:
        first = published[0]
        tags["deepvre.model.name"], tags["deepvre.model.version"] = str(first.get("name")), str(first.get("version"))
        tags["deepvre.model.lineage"] = json.dumps(published)[:5000]  # every published version, its notebook snapshot
    artifacts = [(os.path.join(run_path, f), f) for f in RECORDS if os.path.isfile(os.path.join(run_path, f))]
    from .execute import output_folder

    folder = output_folder(run_path, params.get("parameters") or {}, params.get("defaults"))
    if folder and os.path.isdir(folder):
        for root, _dirs, files in os.walk(folder):
            for f in sorted(files):
                path = os.path.join(root, f)
                if (f.lower().endswith(PLOTS) and len(artifacts) < len(RECORDS) + MAX_PLOTS
                        and os.path.getsize(path) <= MAX_ARTIFACT and not os.path.islink(path)):
                    artifacts.append((path, "plots/" + os.path.relpath(path, folder)))
    return {"experiment": f"{user}/{name}", "name": os.path.basename(run_path), "start": start, "end": end,
            "status": STATUS.get(state, "FAILED"), "params": run_params, "metrics": metrics, "tags": tags,
            "artifacts": artifacts}


def _chunks(items, size):
    items = list(items)
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def send(rec, client):
    """Log ``rec`` (:func:`record`) through ``client``; return the MLflow run id."""
    experiment_id = client.experiment(rec["experiment"])
    run_id, artifact_uri = client.create_run(experiment_id, rec["name"], rec["start"], rec["tags"])
    for params in _chunks(rec["params"], 100):  # MLflow's limits per batch
        client.log_batch(run_id, params=params)
    for metrics in _chunks(rec["metrics"], 1000):
        client.log_batch(run_id, metrics=metrics)
    for path, name in rec["artifacts"]:
        client.log_artifact(run_id, artifact_uri, path, name)
    client.finish(run_id, rec["status"], rec["end"])
    return run_id


def log_run(run_path, state, environ=None, out=None):
    """The worker's hook: log the run if a destination is set; say what happened on ``out`` (the run's
    log, stderr). Never raises; returns the MLflow run id or None."""
    import sys

    out = out or sys.stderr
    where = destination(environ)
    if where is None:
        return None
    try:
        run_id = send(record(run_path, state), tracker(*where))
    except Exception as err:  # noqa: BLE001  (logging must never fail the run)
        print(f"deepvre run: not logged to MLflow at {where[0]}: {type(err).__name__}: {err}", file=out, flush=True)
        return None
    print(f"deepvre run: logged to MLflow at {where[0]} as run {run_id}", file=out, flush=True)
    store.update_status(run_path, mlflow_run_id=run_id)
    return run_id
