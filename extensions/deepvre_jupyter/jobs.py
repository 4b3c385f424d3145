"""Long-running work the server starts for the panel: preprocessing and model services.

A preprocessing job runs the pipeline in a thread of the server, on the Dask cluster
chosen by the user; its dashboard link is known as soon as the cluster is up. A model
service is a ``deepvre serve`` process (the real DEEPaaS API) on a Unix socket in a folder only
this account can enter, reached through this server (jupyter-server-proxy, behind its login). It
is "starting" until its own API answers, then "ready"; it ends with its server. Inside a hub it is
also offered on the marketplace's try-it page (:class:`TryitOffer`): a TCP listener on this
server's host that takes only a predict-only token, registered with the marketplace once ready.
"""

import asyncio
import collections
import http.client
import ipaddress
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from deepvre.site.environment import SERVE_TRY_TOKEN as TRY_TOKEN_ENV

from . import backends


class PreprocessJobs:
    """Preprocessing jobs of this server, by id, on clusters made with the site's ``dask:`` and
    ``slurm:`` settings sections (``None``: defaults).

    A job is ``starting`` (the cluster is being made), ``running`` (with its dashboard link and
    shards done of planned), then ``done`` (counts per split and the bad records with their
    errors, from the manifest) or ``failed`` (the error); the dashboard link is cleared when its
    cluster is gone."""

    BAD_SHOWN = 50  # bad records a job lists (the manifest has them all)

    def __init__(self, dask=None, slurm=None):
        self.dask, self.slurm = dask, slurm
        self._jobs = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def clusters(self):
        """The cluster kinds offered here (``backends.offered_clusters``)."""
        return backends.offered_clusters(bool(self.slurm))

    def start(self, kind, input, output, cluster="local", params=None):
        if kind not in backends.pipeline_kinds():
            raise ValueError(f"unknown pipeline {kind!r}; known: {', '.join(backends.pipeline_kinds())}")
        fields = {"kind": kind, "input": input, "output": output, "dashboard": "", "summary": None, "splits": {},
                  "bad_records": []}
        return self._launch("preprocess", cluster, fields, params or {})

    def _launch(self, name, cluster, fields, *args):
        """Register a job on ``cluster`` (refused unless this server can start it) with its own
        ``fields``, run ``self._run(job, *args)`` in a thread; the job's view."""
        refusal = backends.cluster_refusal(cluster, bool(self.slurm))
        if refusal:
            raise ValueError(refusal)
        with self._lock:
            job_id = str(next(self._ids))
            job = self._jobs[job_id] = {"id": job_id, "cluster": cluster, "state": "starting", "error": "",
                                        "progress": {"done": 0, "total": None}, **fields,
                                        "started": time.time(), "finished": None}
        threading.Thread(target=self._run, args=(job, *args), daemon=True, name=f"deepvre-{name}-{job_id}").start()
        return self._view(job)

    def _run(self, job, params):
        def progress(done, total):
            job["progress"] = {"done": done, "total": total}

        try:
            with backends.open_cluster(job["cluster"], self.dask, self.slurm) as (client, link):
                job.update(state="running", dashboard=link or "")
                result = backends.preprocess(job["kind"], job["input"], job["output"], params, client, progress)
                job["dashboard"] = ""  # the cluster closes with this block
            manifest = getattr(result, "manifest", {}) or {}
            bad = manifest.get("bad_records") or {"count": 0, "records": []}
            job.update(state="done", splits=manifest.get("splits") or {}, bad_records=bad["records"][:self.BAD_SHOWN],
                       summary={k: manifest.get(k) for k in ("records", "bad_records", "summary") if k in manifest})
        except Exception as err:  # noqa: BLE001  (the panel shows the message)
            job.update(state="failed", error=f"{type(err).__name__}: {err}")
        finally:
            job.update(dashboard="", finished=time.time())

    @staticmethod
    def _view(job):
        view = dict(job)
        view["elapsed"] = round((job["finished"] or time.time()) - job["started"], 1)
        return view

    def get(self, job_id):
        if job_id not in self._jobs:
            raise KeyError(f"no preprocessing job {job_id!r}")
        return self._view(self._jobs[job_id])

    def list(self):
        return [self._view(j) for j in self._jobs.values()]


def serve_command(model, version, socket, base_path=None, uploads=None, deepvre=None):
    """The command line that serves ``model`` (at ``version``) with DEEPaaS on the Unix ``socket``.

    ``base_path`` is the URL prefix DEEPaaS serves under (its API, Swagger page and spec).
    """
    deepvre = deepvre or os.path.join(os.path.dirname(sys.executable), "deepvre")
    ref = f"{model}:{version}" if version else model
    command = [deepvre, "serve", ref, "--socket", str(socket), "--exit-with-parent"]  # dies with its server
    command += ["--uploads", str(uploads)] if uploads else []
    return command + ["--base-path", base_path] if base_path else command


def tryit_command(model, version, socket, base_path, uploads, ip, port_file, folder, python=None):
    """``(command, environment)`` serving ``model`` like :func:`serve_command`, plus a TCP listener on
    ``ip`` (a free port, written to ``port_file``) for the marketplace's try-it page: the launcher
    (:mod:`deepvre.serving.launch`) directly, as ``deepvre serve`` runs it, since that CLI listens
    on one or the other. The environment lacks the try token (:meth:`ModelServices.start` adds it)."""
    from deepvre.cli.serve import deepaas_command, entry_point_dir, serve_environment

    ref = f"{model}:{version}" if version else model
    command = deepaas_command(model, base_path=base_path, python=python or sys.executable, socket=socket,
                              uploads=uploads, exit_with_parent=True)
    command += ["--also-tcp", "--ip", ip, "--port", "0", "--port-file", str(port_file)]
    return command, serve_environment(ref, entry_point_dir(model, os.path.join(folder, "entry")))


def tryit_host(server_url, resolve=None):
    """The address this server's services offer try-it on: the host of ``$JUPYTERHUB_SERVICE_URL``
    (loopback on a local hub), this host's own address where that is a wildcard (a pod: its IP,
    which the hub routes to and the marketplace reaches)."""
    host = urllib.parse.urlsplit(server_url or "").hostname or "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (resolve or socket.gethostbyname)(host)
    if ip.is_unspecified:
        return (resolve or socket.gethostbyname)(socket.gethostname())
    return str(ip)


class TryitOffer:
    """This server's side of try-it: offers services to the hub's marketplace (``POST api/tryit``, with
    the server's marketplace token, so the marketplace knows whose they are) and withdraws them."""

    def __init__(self, market_url, market_token, host):
        from deepvre.market.client import HTTPMarket

        self.market = HTTPMarket(market_url, market_token, timeout=30)
        self.host = host

    @classmethod
    def from_environment(cls, environ=None):
        """The offer of a server in a hub (a marketplace URL and token, and a hub token), else None."""
        from deepvre.site.environment import Environment

        environ = os.environ if environ is None else environ
        env = Environment(environ)
        if not (env.market_url and env.market_token and environ.get("JUPYTERHUB_API_TOKEN")):
            return None
        return cls(env.market_url, env.market_token, tryit_host(environ.get("JUPYTERHUB_SERVICE_URL")))

    def page(self, model, version):
        """The try-it page's URL path (through the hub's proxy, as the browser reaches the marketplace)."""
        prefix = urllib.parse.urlsplit(self.market.url).path
        return f"{prefix}try/{urllib.parse.quote(model, safe='')}/{urllib.parse.quote(version, safe='')}"

    def register(self, model, version, port, base_path, token):
        address = f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"
        self.market._request("POST", "api/tryit", json={"name": model, "version": version, "address": address,
                                                        "base_path": base_path, "try_token": token})

    def withdraw(self, model, version, timeout=5):
        """Withdraw the offer (short: a stopping server waits for it); a 404 (none) is fine."""
        path = f"api/tryit/{urllib.parse.quote(model, safe='')}/{urllib.parse.quote(version, safe='')}"
        resp = self.market.session.delete(self.market.url + path, timeout=timeout)
        if resp.status_code not in (204, 404):
            raise RuntimeError(f"the marketplace answered {resp.status_code}: {resp.text[:300]}")


SERVICES_PATH = "deepvre/services"  # {base_url}deepvre/services/<id>/...: ServiceProxy in handlers.py


def proxied(base_url, service_id, path=""):
    """The URL of a model service through the user's own server (``ServiceProxy``, behind its
    login). The service is started with this prefix as its base path, so it links its own pages
    (Swagger's ``swagger.json`` and static files) correctly."""
    return f"{base_url.rstrip('/')}/{SERVICES_PATH}/{service_id}/{path.lstrip('/')}"


def service_ref(model, version):
    """The key of a service: ``name:version`` (``latest`` when no version was asked)."""
    return f"{model}:{version or 'latest'}"


def api_answers(socket_path, path, timeout=2.0):
    """Whether the DEEPaaS on the Unix socket ``socket_path`` answers ``GET path`` with a 200."""

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(socket_path)

    conn = UnixConnection("localhost", timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def log_tail(path, lines=100):
    """The last ``lines`` lines of the log at ``path`` ("" when there is none)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(collections.deque(f, maxlen=max(0, int(lines))))
    except FileNotFoundError:
        return ""


class ModelServices:
    """DEEPaaS services started by this server, by model reference (``name:version``).

    Each listens on a Unix socket in its own folder (0700, made by ``tempfile.mkdtemp``), so only
    this account reaches it directly; the user reaches it through :func:`proxied`. DEEPaaS's
    uploads go to ``uploads/`` in that folder; the folder is removed when the service stops.

    A service is ``starting`` until its own API (``GET <base path>/v2/models/`` on its socket)
    answers, then ``ready``; ``stopped`` once stopped here, ``exited (code)`` when it ended on its
    own (its log's tail is the error). Serving a reference again returns the live service. Services
    end with their server: :meth:`stop_all` when it stops, and ``--exit-with-parent`` when it is
    killed (its watch sees its parent gone), so a restarted server finds none left to adopt.
    """

    def __init__(self, log_dir, poll_interval=0.5, tryit="environment"):
        # try-it: a TryitOffer, None (off), or "environment" (TryitOffer.from_environment: in a hub)
        self.tryit = TryitOffer.from_environment() if tryit == "environment" else tryit
        self._services = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.log_dir = log_dir
        self.poll_interval = poll_interval

    def start(self, model, version, base_url):
        ref = service_ref(model, version)
        with self._lock:
            svc = self._services.get(ref)
            if svc and svc["process"].poll() is None and not svc.get("stopped"):
                return self.view(ref, base_url)
            service_id = str(next(self._ids))
            folder = tempfile.mkdtemp(prefix="deepvre-serve-")  # 0700
            socket_path = os.path.join(folder, "deepaas.sock")
            os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
            log_path = os.path.join(self.log_dir, f"serve-{service_id}.log")
            try_token = secrets.token_urlsafe(32) if self.tryit else None
            with open(log_path, "wb") as log:
                # DEEPaaS (aiohttp) matches routes against the decoded request path
                base_path = urllib.parse.unquote(proxied(base_url, service_id)).rstrip("/")
                uploads = os.path.join(folder, "uploads")
                env = None
                if try_token:
                    command, env = tryit_command(model, version, socket_path, base_path, uploads, self.tryit.host,
                                                 os.path.join(folder, "port"), folder)
                    env[TRY_TOKEN_ENV] = try_token  # never on the command line
                else:
                    command = serve_command(model, version, socket_path, base_path, uploads)
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
            svc = self._services[ref] = {
                "id": service_id, "model": model, "version": version, "socket": socket_path, "folder": folder,
                "process": proc, "log": log_path, "started": time.time(), "ready": None,
                "try_token": try_token, "try_url": "", "try_error": "",
                "try_base": proxied(base_url, service_id).rstrip("/"),  # as a URL: the marketplace sends it
            }
        threading.Thread(target=self._watch, args=(svc, proxied(base_url, service_id, "v2/models/")), daemon=True,
                         name=f"deepvre-service-{service_id}").start()
        return self.view(ref, base_url)

    def _watch(self, svc, path):
        """Poll the service's own API until it answers (``ready``), or until it ends."""
        while svc["process"].poll() is None and not svc.get("stopped"):
            if api_answers(svc["socket"], path):
                if svc["try_token"]:
                    self._offer(svc)
                svc["ready"] = time.time()
                return
            time.sleep(self.poll_interval)

    def _offer(self, svc):
        """Register a ready service with the marketplace's try-it page (a failure is shown, not fatal)."""
        try:
            with open(os.path.join(svc["folder"], "port")) as f:
                port = int(f.read())
            self.tryit.register(svc["model"], svc["version"], port, svc["try_base"], svc["try_token"])
            svc["try_url"] = self.tryit.page(svc["model"], svc["version"])
        except Exception as err:  # noqa: BLE001  (the served models page shows why)
            svc["try_error"] = f"not offered on the try-it page: {type(err).__name__}: {err}"

    def _withdraw(self, svc):
        if svc.get("try_url"):
            svc["try_url"] = ""
            try:
                self.tryit.withdraw(svc["model"], svc["version"])
            except Exception as err:  # noqa: BLE001  (the service is gone: the page says "not answering")
                svc["try_error"] = f"not withdrawn from the try-it page: {type(err).__name__}: {err}"

    async def wait_ready(self, ref, base_url, timeout=300):
        """The view of ``ref`` once it is no longer ``starting`` (or after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while (view := self.view(ref, base_url))["state"] == "starting" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return view

    def socket(self, service_id):
        """The Unix socket of the running service ``service_id``; KeyError when there is none."""
        for svc in self._services.values():
            if svc["id"] == service_id and svc["process"].poll() is None:
                return svc["socket"]
        raise KeyError(f"no running model service {service_id!r}")

    def _get(self, ref):
        if ref not in self._services:
            raise KeyError(f"no model service {ref!r}")
        return self._services[ref]

    def stop(self, ref, base_url, timeout=5):
        """Stop the service ``ref`` (``name:version``): SIGTERM to its process group, then SIGKILL.

        The wait is short: the launcher gives open keep-alive connections (e.g.
        jupyter-server-proxy's) a few seconds before it exits on SIGTERM. Its folder (socket,
        uploads) goes.
        """
        svc = self._get(ref)
        svc["stopped"] = True
        self._withdraw(svc)
        terminate(svc["process"], timeout)
        shutil.rmtree(svc["folder"], ignore_errors=True)
        return self.view(ref, base_url)

    def state(self, svc):
        code = svc["process"].poll()
        if svc.get("stopped"):
            return "stopped"
        if code is not None:
            return f"exited ({code})"
        return "ready" if svc["ready"] else "starting"

    def view(self, ref, base_url, log_lines=0):
        """What the API shows of ``ref``; with ``log_lines``, the tail of its log too."""
        svc = self._get(ref)
        state = self.state(svc)
        view = {"ref": ref, "id": svc["id"], "model": svc["model"], "version": svc["version"], "state": state,
                "pid": svc["process"].pid, "started": svc["started"], "ready_at": svc["ready"],
                "url": proxied(base_url, svc["id"], "v2/"),
                "swagger": proxied(base_url, svc["id"], "api"),
                "error": log_tail(svc["log"], 40)[-2000:] if state.startswith("exited") else "",
                "try_url": svc["try_url"] if state == "ready" else "", "try_error": svc["try_error"]}
        if log_lines:
            view["log"] = log_tail(svc["log"], log_lines)
        return view

    def list(self, base_url):
        return [self.view(ref, base_url) for ref in list(self._services)]

    def stop_all(self, timeout=2):
        """Stop every service (the server is stopping): SIGTERM to each group, SIGKILL after ``timeout``
        (short: the server's own stop waits for it, and its spawner may give it only seconds)."""
        running = [svc for svc in self._services.values() if svc["process"].poll() is None]
        for svc in self._services.values():
            svc["stopped"] = True
        for svc in running:  # all at once, then each waited for
            _signal_group(svc["process"], signal.SIGTERM)
        for svc in running:
            self._withdraw(svc)
        for svc in self._services.values():
            if svc in running:
                _reap(svc["process"], timeout)
            shutil.rmtree(svc["folder"], ignore_errors=True)


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _reap(proc, timeout):
    """Wait up to ``timeout`` seconds for a signalled ``proc``, then SIGKILL what is left of its group
    (DEEPaaS's pool worker) and reap it."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def terminate(proc, timeout=5):
    """SIGTERM ``proc``'s process group (its own session), SIGKILL it after ``timeout`` seconds.

    Nothing is signalled once ``proc`` has ended and been reaped: its group id may be another's then.
    """
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    _reap(proc, timeout)
