"""Long-running work the server starts for the panel: preprocessing and model services.

A preprocessing job runs the pipeline in a thread of the server, on the Dask cluster
chosen by the user; its dashboard link is known as soon as the cluster is up. A model
service is a ``deepvre serve`` process (the real DEEPaaS API) on a Unix socket in a folder only
this account can enter, reached through this server (jupyter-server-proxy, behind its login).
"""

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from . import backends


class PreprocessJobs:
    """Preprocessing jobs of this server, by id, on clusters made with the site's ``dask:`` and
    ``slurm:`` settings sections (``None``: defaults)."""

    def __init__(self, dask=None, slurm=None):
        self.dask, self.slurm = dask, slurm
        self._jobs = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, kind, input, output, cluster="local", params=None):
        if kind not in backends.pipeline_kinds():
            raise ValueError(f"unknown pipeline {kind!r}; known: {', '.join(backends.pipeline_kinds())}")
        with self._lock:
            job_id = str(next(self._ids))
            job = self._jobs[job_id] = {
                "id": job_id, "kind": kind, "input": input, "output": output, "cluster": cluster,
                "state": "starting", "dashboard": "", "error": "", "summary": None,
                "started": time.time(), "finished": None,
            }
        threading.Thread(target=self._run, args=(job, params or {}), daemon=True,
                         name=f"deepvre-preprocess-{job_id}").start()
        return dict(job)

    def _run(self, job, params):
        try:
            with backends.open_cluster(job["cluster"], self.dask, self.slurm) as (client, link):
                job.update(state="running", dashboard=link or "")
                result = backends.preprocess(job["kind"], job["input"], job["output"], params, client)
            manifest = getattr(result, "manifest", {}) or {}
            job.update(state="done", summary={k: manifest.get(k) for k in ("records", "bad_records", "summary")
                                              if k in manifest})
        except Exception as err:  # noqa: BLE001  (the panel shows the message)
            job.update(state="failed", error=f"{type(err).__name__}: {err}")
        finally:
            job["finished"] = time.time()

    def get(self, job_id):
        if job_id not in self._jobs:
            raise KeyError(f"no preprocessing job {job_id!r}")
        return dict(self._jobs[job_id])

    def list(self):
        return [dict(j) for j in self._jobs.values()]


def serve_command(model, version, socket, base_path=None, uploads=None, deepvre=None):
    """The command line that serves ``model`` (at ``version``) with DEEPaaS on the Unix ``socket``.

    ``base_path`` is the URL prefix DEEPaaS serves under (its API, Swagger page and spec).
    """
    deepvre = deepvre or os.path.join(os.path.dirname(sys.executable), "deepvre")
    ref = f"{model}:{version}" if version else model
    command = [deepvre, "serve", ref, "--socket", str(socket), "--exit-with-parent"]  # dies with its server
    command += ["--uploads", str(uploads)] if uploads else []
    return command + ["--base-path", base_path] if base_path else command


SERVICES_PATH = "deepvre/services"  # {base_url}deepvre/services/<id>/...: ServiceProxy in handlers.py


def proxied(base_url, service_id, path=""):
    """The URL of a model service through the user's own server (``ServiceProxy``, behind its
    login). The service is started with this prefix as its base path, so it links its own pages
    (Swagger's ``swagger.json`` and static files) correctly."""
    return f"{base_url.rstrip('/')}/{SERVICES_PATH}/{service_id}/{path.lstrip('/')}"


class ModelServices:
    """DEEPaaS services started by this server, by model reference.

    Each listens on a Unix socket in its own folder (0700, made by ``tempfile.mkdtemp``), so only
    this account reaches it directly; the user reaches it through :func:`proxied`. DEEPaaS's
    uploads go to ``uploads/`` in that folder; the folder is removed when the service stops.
    """

    def __init__(self, log_dir):
        self._services = {}
        self._ids = itertools.count(1)
        self.log_dir = log_dir

    def start(self, model, version, base_url):
        ref = f"{model}:{version or 'latest'}"
        svc = self._services.get(ref)
        if svc and svc["process"].poll() is None:
            return self.view(ref, base_url)
        service_id = str(next(self._ids))
        folder = tempfile.mkdtemp(prefix="deepvre-serve-")  # 0700
        socket_path = os.path.join(folder, "deepaas.sock")
        os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
        log_path = os.path.join(self.log_dir, f"serve-{service_id}.log")
        with open(log_path, "wb") as log:
            # DEEPaaS (aiohttp) matches routes against the decoded request path
            base_path = urllib.parse.unquote(proxied(base_url, service_id)).rstrip("/")
            proc = subprocess.Popen(serve_command(model, version, socket_path, base_path, os.path.join(folder, "uploads")),
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._services[ref] = {"id": service_id, "model": model, "version": version, "socket": socket_path,
                               "folder": folder, "process": proc, "log": log_path}
        return self.view(ref, base_url)

    def socket(self, service_id):
        """The Unix socket of the running service ``service_id``; KeyError when there is none."""
        for svc in self._services.values():
            if svc["id"] == service_id and svc["process"].poll() is None:
                return svc["socket"]
        raise KeyError(f"no running model service {service_id!r}")

    def stop(self, ref, base_url, timeout=5):
        """Stop the service ``ref`` (``name:version``): SIGTERM to its process group, then SIGKILL.

        The wait is short: DEEPaaS (aiohttp) waits up to a minute for open keep-alive connections
        (e.g. jupyter-server-proxy's) before it exits on SIGTERM. Its folder (socket, uploads) goes.
        """
        if ref not in self._services:
            raise KeyError(f"no model service {ref!r}")
        svc = self._services[ref]
        proc = svc["process"]
        if proc.poll() is None:
            svc["stopped"] = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(svc["folder"], ignore_errors=True)
        return self.view(ref, base_url)

    def view(self, ref, base_url):
        svc = self._services[ref]
        code = svc["process"].poll()
        state = "running" if code is None else "stopped" if svc.get("stopped") else f"exited ({code})"
        error = ""
        if code is not None and not svc.get("stopped"):
            with open(svc["log"], errors="replace") as f:
                error = f.read()[-2000:]
        return {"ref": ref, "model": svc["model"], "version": svc["version"], "state": state,
                "url": proxied(base_url, svc["id"], "v2/"),
                "swagger": proxied(base_url, svc["id"], "api"),
                "error": error}

    def list(self, base_url):
        return [self.view(ref, base_url) for ref in self._services]

    def stop_all(self):
        for svc in self._services.values():
            if svc["process"].poll() is None:
                svc["process"].terminate()
            shutil.rmtree(svc["folder"], ignore_errors=True)
