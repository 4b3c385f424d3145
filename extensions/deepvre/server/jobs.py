"""Long-running work the server starts for the panel: preprocessing and model services.

A preprocessing job runs the pipeline in a thread of the server, on the Dask cluster
chosen by the user; its dashboard link is known as soon as the cluster is up. A model
service is a ``deepvre serve`` process (the real DEEPaaS API) on a free loopback port.
"""

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

from . import backends


class PreprocessJobs:
    """Preprocessing jobs of this server, by id."""

    def __init__(self):
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
            with backends.open_cluster(job["cluster"]) as (client, link):
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(model, version, port, base_path=None, deepvre=None):
    """The command line that serves ``model`` (at ``version``) with DEEPaaS on loopback ``port``.

    ``base_path`` is the URL prefix DEEPaaS serves under (its API, Swagger page and spec).
    """
    deepvre = deepvre or os.path.join(os.path.dirname(sys.executable), "deepvre")
    ref = f"{model}:{version}" if version else model
    command = [deepvre, "serve", ref, "--ip", "127.0.0.1", "--port", str(port)]
    return command + ["--base-path", base_path] if base_path else command


def proxied_absolute(base_url, port, path=""):
    """The URL of a loopback port through jupyter-server-proxy's ``proxy/absolute``, which keeps
    the whole path: a service started with this prefix as its base path (DEEPaaS ``--base-path``)
    links its own pages (Swagger's ``swagger.json`` and static files) correctly behind the proxy.
    """
    return f"{base_url.rstrip('/')}/proxy/absolute/{port}/{path.lstrip('/')}"


class ModelServices:
    """DEEPaaS services started by this server, by model reference."""

    def __init__(self, log_dir):
        self._services = {}
        self.log_dir = log_dir

    def start(self, model, version, base_url):
        ref = f"{model}:{version or 'latest'}"
        svc = self._services.get(ref)
        if svc and svc["process"].poll() is None:
            return self.view(ref, base_url)
        port = free_port()
        os.makedirs(self.log_dir, exist_ok=True)
        log_path = os.path.join(self.log_dir, f"serve-{port}.log")
        with open(log_path, "wb") as log:
            # DEEPaaS (aiohttp) matches routes against the decoded request path
            base_path = urllib.parse.unquote(proxied_absolute(base_url, port)).rstrip("/")
            proc = subprocess.Popen(serve_command(model, version, port, base_path), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._services[ref] = {"model": model, "version": version, "port": port,
                               "process": proc, "log": log_path}
        return self.view(ref, base_url)

    def stop(self, ref, base_url, timeout=5):
        """Stop the service ``ref`` (``name:version``): SIGTERM to its process group, then SIGKILL.

        The wait is short: DEEPaaS (aiohttp) waits up to a minute for open keep-alive connections
        (e.g. jupyter-server-proxy's) before it exits on SIGTERM.
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
                "url": proxied_absolute(base_url, svc["port"], "v2/"),
                "swagger": proxied_absolute(base_url, svc["port"], "api"),
                "error": error}

    def list(self, base_url):
        return [self.view(ref, base_url) for ref in self._services]

    def stop_all(self):
        for svc in self._services.values():
            if svc["process"].poll() is None:
                svc["process"].terminate()
