"""The listener census (issue 13): every network listener a whole session opens is in the table of
docs/security.md ("Listener census"), and none that the table says authenticates its callers
answers a caller without credentials.

Per mode (local with the hub as root, personal, Slurm), a real hub; two users log in, start their
servers and do a whole session through them: a Dask preprocess (the extension's preprocess API,
whose cluster lives while the job runs, and a cluster a kernel keeps open), a papermill run of
their model's notebook (the runs API), publishing what it trained (the publish API) and serving it
(``POST /deepvre/api/serve``). Meanwhile a sampler lists, every second, the listening TCP sockets
(psutil) and Unix sockets (``ss -lxp``) of the session's processes: the hub's descendants, the
processes of the session's accounts and the ``slurmstepd`` of their jobs (slurmctld, slurmd and
whatever listened before the session are not the session's). Each listener is examined as it
appears (its protocol; a kernel's channel from its connection file; a Dask comm's ``identity``
asked with the owner's certificate; what an HTTP port answers) and classified with the table: a
listener no row matches, one in a mode its row does not list, off the address its row gives, or
run by another account than its row's, fails the test, naming its pid, uid, address and command.
At the end, with the clusters and services still up, every live listener the table marks as
authenticating is probed without credentials by this (root) process and by ``nobody``; an answer
as if authenticated fails the test. Each probe has a control with the owner's credentials, so a
probe that could not get in anyway proves nothing and fails too. Last, the servers stop as a user
stops theirs, and no listener of the session may outlive them.

The Auth column's words and what each probe does: docs/security.md, under the table (``AUTH``).
"""

import asyncio
import base64
import concurrent.futures
import contextlib
import http.server
import io
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests

from tests.extension.conftest import colours_model  # noqa: F401  (session fixture: the tiny Keras model)
from tests.hub.hubprocess import HubProcess, cpu_only, execute, hub_folder, wait_for
from tests.prereqs import REPO, require_program, require_proxy, require_root
from tests.security.conftest import PASSWORD, UNIX_HTTP, new_name, site_account
from tests.security.test_dask import assert_refused
from tests.security.test_dask import probe as dask_probe

pytestmark = [pytest.mark.hub, pytest.mark.root]

DOC = Path(REPO) / "docs" / "security.md"
SECTION = "## Listener census"
PYTHON = sys.executable  # readable by other accounts
MODES = ("local", "personal", "slurm")
# Optional services the census hubs leave off (``mlflow.enabled``: it would add minutes per mode). Their
# listeners are still classified and probed if a session opens them; tests/security/test_mlflow.py
# starts them and probes both (as root and as nobody).
OFF_IN_CENSUS = frozenset({"MLflow service", "MLflow server"})

# The Auth column's vocabulary (docs/security.md says what each means and how the census probes it).
AUTH = {
    "hub-auth": "JupyterHub's login: protected paths answer 401, 403 or a redirect to the login",
    "routed": "configurable-http-proxy's public side: the hub-auth paths through it",
    "proxy-token": "the proxy's REST API: 403 without its token",
    "mutual-tls": "a Dask comm: tests/security/test_dask.py's probe is refused",
    "hmac": "a kernel channel: no reply to unsigned requests, nothing published to a stranger",
    "echo": "a kernel's heartbeat: echoes, nothing else",
    "pipe-secret": "ipykernel's pipe: nothing pushed without the kernel's secret is published",
    "read-only": "no login; loopback; none of the scheduler's acting HTTP API routes",
    "unix-owner": "a Unix socket closed to other accounts",
    "service-token": "a model service's TCP port: 401 without its owner's token or a signed try-it request",
    "mlflow-basic": "MLflow's basic-auth app: 401 without an MLflow account's password",
    "slurm": "Slurm's own checks: nobody cannot signal the job; srun ports ignore unsigned messages",
    "no-listener": "the process listens nowhere",
}
NEEDS_AUTH = {"hub-auth", "routed", "proxy-token", "mutual-tls", "hmac", "pipe-secret", "unix-owner", "slurm",
              "service-token", "mlflow-basic"}


# ------------------------------------------------------------------------------------------ the table


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def census_table(text=None):
    """The rows of the census table: ``{listener: {process, modes, address, runs_as, auth}}``."""
    text = DOC.read_text() if text is None else text
    assert SECTION in text, f"docs/security.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.lower() for c in cells(lines[0])]
    assert header[:1] == ["listener"] and header[-1] == "auth" and len(header) == 6, header
    table = {}
    for line in lines[2:]:
        listener, process, modes, address, runs_as, auth = cells(line)
        found = re.search(r"`([a-z-]+)`", auth)
        assert found and found.group(1) in AUTH, f"row {listener!r}: Auth {auth!r} is not one of {sorted(AUTH)}"
        table[listener] = {
            "process": process, "address": address.replace("`", ""), "runs_as": runs_as, "auth": found.group(1),
            "modes": {m for m in MODES if re.search(rf"\b{m}\b", modes, re.IGNORECASE)},
        }
        assert table[listener]["modes"], f"row {listener!r} names no mode of {MODES}"
    return table


def address_class(address):
    """What a row's Address promises: ``unix``, ``none``, ``any`` (every interface), ``hub.ip`` (the
    settings' public address) or ``loopback``."""
    if address.startswith("unix:"):
        return "unix"
    if address.startswith("none"):
        return "none"
    if "0.0.0.0" in address:
        return "any"
    if "<hub.ip>" in address:
        return "hub.ip"
    assert "127.0.0.1" in address, f"an address the census does not know: {address!r}"
    return "loopback"


# ------------------------------------------------------------------------------------------ listeners


@dataclass
class Listener:
    kind: str  # "tcp" or "unix"
    address: str  # host:port, or the socket's path
    pid: int
    host: str = ""
    port: int = 0
    uid: int = -1
    cmdline: str = ""
    role: str = ""  # what the process is: hub, proxy, market, culler, server, kernel, serve, run, slurmstepd, other
    proto: str = ""  # tcp: zmq, tls, http, silent, closed or other
    facts: dict = field(default_factory=dict)
    channels: dict = field(default_factory=dict)  # a kernel's, from its connection file

    def describe(self):
        try:
            user = pwd.getpwuid(self.uid).pw_name
        except KeyError:
            user = "?"
        facts = dict(self.facts)
        return (f"pid {self.pid} uid {self.uid} ({user}) {self.kind} {self.address} proto={self.proto or '-'} "
                f"{facts} cmdline: {self.cmdline[:240]}")


ROLES = (
    ("culler", r"jupyterhub_idle_culler"),
    ("market", r"-m deepvre\.market(\.app)?(\s|$)"),
    ("mlflow-service", r"-m deepvre_hub\.mlflow_proxy(\s|$)"),
    ("mlflow", r"mlflow\.server\.auth:create_app|-m mlflow server"),
    ("server", r"(jupyterhub|batchspawner)-singleuser"),
    ("hub", r"(/|\s|^)jupyterhub(\s|$)|-m jupyterhub(\s|$)"),
    ("proxy", r"configurable-http-proxy"),
    ("kernel", r"ipykernel_launcher"),
    ("serve", r"deepvre\.serving\.launch|/deepvre serve "),
    ("run", r"deepvre\.runs\.execute"),
)


def role_of(name, cmdline):
    if name.startswith("slurmstepd") or cmdline.startswith("slurmstepd"):
        return "slurmstepd"
    if name == "srun":
        return "srun"
    for role, pattern in ROLES:
        if re.search(pattern, cmdline):
            return role
    return "other"


# Which row a listener is, from what the census saw of it. The keys are the table's first column.
RECOGNISE = {
    "hub": lambda ln, c: ln.role == "hub",
    "proxy": lambda ln, c: ln.role == "proxy" and ln.port == c.hub_setting("port"),
    "proxy API": lambda ln, c: ln.role == "proxy" and ln.port == c.hub_setting("proxy_api_port"),
    "marketplace": lambda ln, c: ln.role == "market",
    "MLflow service": lambda ln, c: ln.role == "mlflow-service",
    "MLflow server": lambda ln, c: ln.role == "mlflow",
    "idle culler": lambda ln, c: ln.role == "culler",
    "user server": lambda ln, c: ln.role == "server" and ln.facts.get("jupyter_api"),
    "user server (Slurm)": lambda ln, c: ln.role == "server" and ln.facts.get("jupyter_api"),
    "kernel shell, control, stdin": lambda ln, c: ln.role == "kernel"
    and ln.facts.get("channel") in ("shell", "control", "stdin"),
    "kernel iopub": lambda ln, c: ln.role == "kernel" and ln.facts.get("channel") == "iopub",
    "kernel heartbeat": lambda ln, c: ln.role == "kernel" and ln.facts.get("channel") == "hb",
    "kernel iopub pipe": lambda ln, c: ln.role == "kernel" and ln.facts.get("channel") == "pipe",
    "Dask scheduler": lambda ln, c: ln.proto == "tls" and ln.facts.get("dask") == "Scheduler",
    "Dask nanny": lambda ln, c: ln.proto == "tls" and ln.facts.get("dask") == "Nanny",
    "Dask worker": lambda ln, c: ln.proto == "tls" and ln.facts.get("dask") == "Worker",
    "Dask dashboard": lambda ln, c: ln.proto == "http" and ln.facts.get("dask_health")
    and ln.facts.get("dask_scheduler_json"),
    "Dask worker HTTP": lambda ln, c: ln.proto == "http" and ln.facts.get("dask_health")
    and not ln.facts.get("dask_scheduler_json"),
    "model service": lambda ln, c: ln.kind == "unix" and ln.role == "serve"
    and re.search(r"/deepvre-serve-[^/]+/deepaas\.sock$", ln.address),
    "model service try-it port": lambda ln, c: ln.kind == "tcp" and ln.role == "serve" and "--also-tcp" in ln.cmdline,
    "Slurm step daemon": lambda ln, c: ln.kind == "unix" and ln.role == "slurmstepd",
    "srun": lambda ln, c: ln.kind == "tcp" and ln.role == "srun",
}
# Whose account each row's listener runs under: "hub" (the hub's), "user" (the server's account:
# the user's own, or the hub's in personal mode), "service" (its own service account, or the
# hub's: before and after hub.service_accounts), "root".
RUNS_AS = {"hub": "hub", "proxy": "hub", "proxy API": "hub", "marketplace": "service", "idle culler": "service",
           "MLflow service": "service", "MLflow server": "service",
           "Slurm step daemon": "root"}


def kernel_channels(cmdline):
    """``{port or ipc socket path: channel}`` from a kernel's connection file (``-f FILE`` on its
    command line): jupyter_client's ``tcp`` transport names ports, ``ipc`` names ``<ip>-<port>`` paths."""
    found = re.search(r"(?:^|\s)-f\s+(\S+\.json)", cmdline)
    if not found:
        return {}
    try:
        info = json.loads(Path(found.group(1)).read_text())
    except (OSError, ValueError):
        return {}
    channels = {info[f"{ch}_port"]: ch for ch in ("shell", "iopub", "stdin", "control", "hb") if f"{ch}_port" in info}
    if info.get("transport") == "ipc":
        return {f"{info['ip']}-{port}": ch for port, ch in channels.items()}
    return channels


def client_hello():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def first_bytes(host, port, send=None, wait=0.3):
    """What a TCP listener says first: on connecting (``send`` None), or in answer to ``send``;
    ``None`` when it keeps silent for ``wait`` seconds, ``b""`` when it closes the connection."""
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            if send:
                s.sendall(send)
            s.settimeout(wait)
            try:
                return s.recv(16)
            except TimeoutError:
                return None
    except OSError:
        return b""


def fingerprint(host, port):
    """The protocol of a TCP listener: ``zmq`` (it greets first with ZMTP's signature), ``tls``
    (answers a ClientHello with a handshake record), ``http`` (answers a GET), ``silent``,
    ``closed`` (refuses or drops the connection: it may be gone) or ``other``."""
    greeting = first_bytes(host, port)
    if greeting is not None:
        if greeting[:1] == b"\xff" and (len(greeting) < 10 or greeting[9:10] == b"\x7f"):
            return "zmq"
        return "other" if greeting else "closed"
    answer = first_bytes(host, port, client_hello(), wait=1)
    if answer and answer[:1] == b"\x16":
        return "tls"
    if answer and answer.startswith(b"HTTP/"):
        return "http"
    answer = first_bytes(host, port, b"GET / HTTP/1.0\r\nHost: census\r\n\r\n", wait=3)
    if answer and answer.startswith(b"HTTP/"):
        return "http"
    return "silent" if answer is None else "other" if answer else "closed"


def dask_identity(host, port, home):
    """The ``type`` a Dask comm gives for ``identity`` asked with its owner's certificate (the
    files deepvre made under ``home``), or why it gave none."""
    from distributed.comm import connect

    folder = Path(home or "/nonexistent") / ".local/share/deepvre/dask"
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(folder / "ca.pem"))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(folder / "dask.pem"), str(folder / "dask-key.pem"))
    except OSError as err:
        return f"no owner's certificate ({err})"

    async def ask():
        comm = await asyncio.wait_for(connect(f"tls://{host}:{port}", timeout=10, ssl_context=ctx,
                                              require_encryption=True), 15)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await asyncio.wait_for(comm.read(), 10)
        finally:
            comm.abort()

    try:
        return asyncio.run(ask()).get("type")
    except Exception as err:  # noqa: BLE001
        return f"no identity with the owner's certificate ({type(err).__name__}: {str(err)[:100]})"


def http_facts(host, port, prefix):
    """What an HTTP listener answers: a Dask health route, the scheduler's JSON routes, a
    jupyter_server's (public) version route under ``prefix``."""
    facts = {}

    def get(path):
        try:
            return requests.get(f"http://{host}:{port}{path}", timeout=5, allow_redirects=False)
        except requests.RequestException:
            return None

    r = get("/health")
    facts["no_answer"] = r is None  # it closed, or was too busy to answer: tells nothing
    facts["dask_health"] = bool(r is not None and r.status_code == 200 and r.text.strip() == "ok")
    if facts["dask_health"]:
        r = get("/json/identity.json")
        facts["dask_scheduler_json"] = bool(r is not None and r.status_code == 200)
    if prefix:
        r = get(f"{prefix}api")
        try:
            facts["jupyter_api"] = bool(r is not None and r.status_code == 200 and "version" in r.json())
        except ValueError:
            facts["jupyter_api"] = False
    return facts


def identify(listener):
    """What the listener's process is (as root: its environment; a kernel's connection file),
    read at once, while the process lives."""
    try:
        proc = psutil.Process(listener.pid)
        listener.cmdline = " ".join(proc.cmdline())
        listener.uid = proc.uids().real
        listener.facts["ppid"] = proc.ppid()
        name = proc.name()
        env = proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        listener.facts["gone"] = True
        return listener
    listener.role = role_of(name, listener.cmdline)
    listener.facts["home"] = env.get("HOME", "")
    listener.facts["prefix"] = env.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if env.get("SLURM_JOB_ID"):
        listener.facts["job"] = env["SLURM_JOB_ID"]
    if listener.role == "kernel":
        listener.channels = kernel_channels(listener.cmdline)
    return listener


def probe_protocol(listener):
    """What the listener answers (its protocol, a Dask comm's identity, HTTP routes) or, for a Unix
    socket, its and its folder's modes: the slow part, done in the sampler's pool."""
    if listener.facts.get("gone"):
        return listener
    if listener.kind == "tcp":
        listener.proto = fingerprint(listener.host, listener.port)
        if listener.role == "kernel" and listener.proto == "zmq":
            # ipykernel's pipe for forked processes' output is the one ZeroMQ port the file does not name
            listener.facts["channel"] = listener.channels.get(listener.port, "pipe" if listener.channels else "")
        if listener.proto == "tls":
            listener.facts["dask"] = dask_identity(listener.host, listener.port, listener.facts["home"])
        elif listener.proto == "http":
            listener.facts.update(http_facts(listener.host, listener.port, listener.facts["prefix"]))
    else:
        if listener.role == "kernel":
            listener.facts["channel"] = listener.channels.get(listener.address, "")
        with contextlib.suppress(OSError):
            st, folder = os.stat(listener.address), os.stat(os.path.dirname(listener.address))
            listener.facts.update(socket_mode=oct(stat.S_IMODE(st.st_mode)), socket_uid=st.st_uid,
                                  folder_mode=oct(stat.S_IMODE(folder.st_mode)), folder_uid=folder.st_uid)
    return listener


def examine(listener):
    """Fill in what the census needs to classify ``listener``."""
    return probe_protocol(identify(listener))


def tcp_listening():
    """Every listening TCP socket of the machine: ``[(pid, host, port)]``."""
    found = []
    for conn in psutil.net_connections("inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid:
            found.append((conn.pid, conn.laddr.ip, conn.laddr.port))
    return found


def unix_listening():
    """Every listening Unix socket of the machine (``ss -Hlxp``): ``[(pid, path)]``."""
    out = subprocess.run(["ss", "-Hlxp"], capture_output=True, text=True, timeout=30, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[1] != "LISTEN":
            continue
        path = parts[4]
        if path in ("*", ""):
            continue
        for pid in re.findall(r"pid=(\d+)", line):
            found.append((int(pid), path))
    return found


# ------------------------------------------------------------------------------------------ the census


@dataclass
class Context:
    """What the census of one mode knows: the mode, the hub (settings, process, account), the
    session's accounts, and the processes that listened before the session."""

    mode: str
    hub: object
    hub_uid: int
    users: list = field(default_factory=list)  # User
    baseline: set = field(default_factory=set)  # (pid, create time) of processes that listened before
    proxy_token: str = ""

    @property
    def settings(self):
        return self.hub.settings

    def user_uids(self):
        return {self.hub_uid} if self.mode == "personal" else {u.uid for u in self.users if u.uid is not None}

    def hub_setting(self, key):
        """``hub.<key>`` of the hub's settings (HubProcess sets the ports; ``hub.ip`` defaults to
        127.0.0.1, deepvre's default)."""
        return self.settings["hub"].get(key, "127.0.0.1" if key == "ip" else None)


def process_key(proc):
    try:
        return proc.pid, proc.create_time()
    except psutil.Error:
        return proc.pid, None


def baseline():
    """The processes listening now (before the session)."""
    keys = set()
    for pid in {pid for pid, *_ in tcp_listening()} | {pid for pid, _ in unix_listening()}:
        with contextlib.suppress(psutil.Error):
            keys.add(process_key(psutil.Process(pid)))
    return keys


def one_per_socket(found):
    """One listener per socket: a child that inherited a listening socket (multiprocessing's
    resource tracker, a forked worker) holds the same one as its parent, which opened it: the
    holder kept is the one none of the others descends from."""
    by_address = {}
    for ln in found:
        by_address.setdefault((ln.kind, ln.address), []).append(ln)
    kept = []
    for holders in by_address.values():
        pids = {ln.pid for ln in holders}
        first = holders[0]
        for ln in holders:
            with contextlib.suppress(psutil.Error):
                if not {p.pid for p in psutil.Process(ln.pid).parents()} & pids:
                    first = ln
                    break
        first.facts["holders"] = sorted(pids) if len(pids) > 1 else None
        if not first.facts["holders"]:
            del first.facts["holders"]
        if first.kind == "tcp" and first.host in ("0.0.0.0", "::"):
            first.host = "127.0.0.1" if first.host == "0.0.0.0" else "::1"
            first.facts["bound"] = "every interface"
        kept.append(first)
    return kept


class Census:
    """Samples the session's listeners every second in a thread, examining each as it appears."""

    def __init__(self, ctx, interval=1.0):
        self.ctx, self.interval = ctx, interval
        self.seen = {}  # (pid, kind, address) -> Listener
        self.roles_seen = {}  # pid -> (role, cmdline, uid) of every session process seen
        self.errors = []
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(8)
        self._pending = []
        self._thread = threading.Thread(target=self._run, name="listener-census", daemon=True)

    def session_processes(self):
        """``{pid: psutil.Process}``: the hub's descendants, the processes of the session's
        accounts, and the slurmstepd above them; none that listened before the session unless
        it is the hub's."""
        procs = {}
        with contextlib.suppress(psutil.Error):
            hub = psutil.Process(self.ctx.hub.process.pid)
            for proc in [hub, *hub.children(recursive=True)]:
                procs[proc.pid] = proc
        hub_tree = set(procs)
        uids = self.ctx.user_uids()
        for proc in psutil.process_iter(["uids"]):
            if proc.info["uids"] is None or proc.info["uids"].real not in uids or proc.pid in procs:
                continue
            procs[proc.pid] = proc
            with contextlib.suppress(psutil.Error):
                for parent in proc.parents():
                    if parent.name().startswith("slurmstepd"):
                        procs[parent.pid] = parent
        return {pid: p for pid, p in procs.items() if pid in hub_tree or process_key(p) not in self.ctx.baseline}

    def sample(self):
        """Examine listeners that appeared since the last sample; return the live ones' keys."""
        procs = self.session_processes()
        for pid, proc in procs.items():
            if pid not in self.roles_seen:
                with contextlib.suppress(psutil.Error):
                    cmdline = " ".join(proc.cmdline())
                    self.roles_seen[pid] = (role_of(proc.name(), cmdline), cmdline, proc.uids().real)
        live = [Listener("tcp", f"{host}:{port}", pid, host=host, port=port)
                for pid, host, port in tcp_listening() if pid in procs]
        live += [Listener("unix", path, pid) for pid, path in unix_listening() if pid in procs]
        live = one_per_socket(live)
        keys = [(ln.pid, ln.kind, ln.address) for ln in live]
        for key, ln in zip(keys, live):
            if key not in self.seen:  # who it is now; what it answers in the pool, not to miss the next sample
                self.seen[key] = identify(ln)
                self._pending.append(self._pool.submit(probe_protocol, ln))
        return set(keys)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as err:  # noqa: BLE001  (reported at the end)
                self.errors.append(repr(err))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(60)
        self._pool.shutdown(wait=False)

    def final(self):
        """Stop sampling; the listeners alive now (every examination done)."""
        self._stop.set()
        self._thread.join(60)
        keys = self.sample()
        concurrent.futures.wait(self._pending, timeout=120)
        for future in self._pending:
            if future.done() and future.exception():
                self.errors.append(repr(future.exception()))
        return [self.seen[k] for k in keys]


def bound_host(listener):
    """The address a TCP listener is bound to, as the kernel has it (0.0.0.0 or :: for every interface)."""
    if listener.facts.get("bound") == "every interface":
        return "0.0.0.0"
    return listener.host


def classify(listener, table, ctx):
    """``(row name or None, [problems])`` for one listener."""
    where = listener.describe()
    candidates = [name for name, row in table.items() if RECOGNISE.get(name, lambda *a: False)(listener, ctx)]
    if not candidates:
        return None, [f"no row of the census table (docs/security.md) matches this listener: {where}"]
    in_mode = [name for name in candidates if ctx.mode in table[name]["modes"]]
    if not in_mode:
        return candidates[0], [f"row {candidates[0]!r} does not list mode {ctx.mode}, but it listens there: {where}"]
    if len(in_mode) > 1:
        return in_mode[0], [f"rows {in_mode} all match in mode {ctx.mode}: {where}"]
    name, row, problems = in_mode[0], table[in_mode[0]], []
    kind = address_class(row["address"])
    host = bound_host(listener)
    if kind == "none":
        problems.append(f"{name!r} opens no listener by the table, but listens: {where}")
    elif kind == "unix":
        if listener.kind != "unix":
            problems.append(f"{name!r} is a Unix socket by the table, but listens on TCP: {where}")
    elif listener.kind != "tcp":
        problems.append(f"{name!r} listens on TCP by the table, but this is a Unix socket: {where}")
    elif kind == "loopback" and host not in ("127.0.0.1", "::1"):
        problems.append(f"{name!r} is loopback-only by the table, but bound to {host}: {where}")
    elif kind == "hub.ip" and host != ctx.hub_setting("ip"):
        problems.append(f"{name!r} listens on hub.ip ({ctx.hub_setting('ip')}) by the table, not {host}: {where}")
    for setting in ("hub_port", "proxy_api_port", "port"):
        if f"<hub.{setting}>" in row["address"] and listener.port != ctx.hub_setting(setting):
            problems.append(f"{name!r} listens on hub.{setting} ({ctx.hub_setting(setting)}) by the table: {where}")
    expected = RUNS_AS.get(name, "user")
    if expected == "hub" and listener.uid != ctx.hub_uid:
        problems.append(f"{name!r} runs as the hub's account (uid {ctx.hub_uid}) by the table: {where}")
    elif expected == "user" and listener.uid not in ctx.user_uids():
        problems.append(f"{name!r} runs as the server's account {sorted(ctx.user_uids())} by the table: {where}")
    elif expected == "root" and listener.uid != 0:
        problems.append(f"{name!r} runs as root by the table: {where}")
    elif expected == "service":
        accounts = {ctx.hub_uid}
        with contextlib.suppress(KeyError):
            accounts.add(pwd.getpwnam(row["runs_as"].split()[0]).pw_uid)
        if listener.uid not in accounts:
            problems.append(f"{name!r} runs as {row['runs_as']!r} by the table: {where}")
    return name, problems


# ------------------------------------------------------------------------------------------ probes

PROBE = UNIX_HTTP + r'''
import json, sys, time, uuid

targets = json.loads(sys.argv[1])
forged = "token " + uuid.uuid4().hex * 2
out = []

def http_verdict(status, location):
    if 200 <= status < 300:
        return "ACCEPTED"
    if 300 <= status < 400 and not any(w in (location or "") for w in ("login", "oauth2/authorize")):
        return f"ACCEPTED (a redirect to {location}, not to a login)"
    return "refused"

zmq_targets = []
for t in targets:
    if t["kind"] == "http":
        for method, path in t["requests"]:
            for headers in ({}, {"Authorization": forged}):
                what = f"{method} {path}" + (" (forged token)" if headers else "")
                try:
                    conn = UnixConnection(t["unix"]) if t.get("unix") else http.client.HTTPConnection(
                        t["host"], t["port"], timeout=20)
                    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
                    conn.request(method, path, body=body, headers={**headers, "Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    out.append([t["id"], what, r.status, http_verdict(r.status, r.getheader("Location"))])
                    conn.close()
                except Exception as err:
                    out.append([t["id"], what, None, f"refused: {type(err).__name__}: {err}"])
    elif t["kind"] == "raw":  # a Slurm message header and garbage, with no munge credential
        try:
            with socket.create_connection((t["host"], t["port"]), timeout=5) as raw:
                raw.sendall(b"\x00\x00\x00\x20" + uuid.uuid4().bytes * 2)
                raw.settimeout(1.5)
                try:
                    answer = raw.recv(64)
                except (TimeoutError, ConnectionError):
                    answer = b""
            out.append([t["id"], "a message without credential", None,
                        f"ACCEPTED: answered {answer!r}" if answer else "refused (no answer)"])
        except OSError as err:
            out.append([t["id"], "a message without credential", None, f"refused: {type(err).__name__}"])
    elif t["kind"] == "zmq":
        zmq_targets.append(t)

if zmq_targets:
    import os, zmq
    ctx = zmq.Context()
    poller, sockets, pushers = zmq.Poller(), {}, []
    injected = "census-injected-" + uuid.uuid4().hex
    for t in zmq_targets:
        kind = {"iopub": zmq.SUB, "hb": zmq.REQ, "pipe": zmq.PUSH}.get(t["channel"], zmq.DEALER)
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDTIMEO, 2000)
        s.connect(t["endpoint"])
        if t["channel"] == "pipe":
            pushers.append(s)
            continue
        try:
            if t["channel"] == "iopub":
                s.setsockopt(zmq.SUBSCRIBE, b"")
            elif t["channel"] == "hb":
                s.send(b"census-ping")
            else:  # an unsigned request, as someone without the connection file's key sends it
                header = {"msg_id": uuid.uuid4().hex, "session": uuid.uuid4().hex, "username": "census",
                          "msg_type": "kernel_info_request" if t["channel"] != "stdin" else "input_reply",
                          "version": "5.3", "date": ""}
                s.send_multipart([b"<IDS|MSG>", b"", json.dumps(header).encode(), b"{}", b"{}", b"{}"])
        except zmq.ZMQError:  # no peer took it (an ipc socket the account cannot reach)
            pass
        poller.register(s, zmq.POLLIN)
        sockets[s] = t
    time.sleep(1)  # the subscriptions reach the kernels
    for s in pushers:  # a forked process's output, without the kernel's secret 16 bytes
        try:
            s.send_multipart([os.urandom(16), injected.encode()])
        except zmq.ZMQError:
            pass
    print("ready", flush=True)
    got = {id(t): [] for t in zmq_targets}
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        for s, _ in poller.poll(200):
            got[id(sockets[s])].append([f.decode(errors="replace")[:200] for f in s.recv_multipart()])
    published = [m for t in zmq_targets if t["channel"] == "iopub" for m in got[id(t)]]
    for t in zmq_targets:
        msgs = got[id(t)]
        if t["channel"] == "hb":
            verdict = "echo" if all(m == ["census-ping"] for m in msgs) else f"ACCEPTED: {msgs[:2]}"
        elif t["channel"] == "pipe":
            # taken, it would be published as it came (the kernel's "Bad pipe message" warning, on
            # its stderr stream, quotes it: that is not it)
            seen = [m for m in published if m[:1] == [injected]]
            verdict = f"ACCEPTED: published on iopub: {seen[:1]}" if seen else "refused (not published)"
        elif msgs:
            read = [m for m in msgs if any(t["marker"] in f for f in m)]
            verdict = (f"ACCEPTED: {len(msgs)} messages" + (f", the owner's code and output among them: {read[0][-1]}"
                                                            if read else f", e.g. {msgs[0][-1]}"))
        else:
            verdict = "refused (nothing)"
        out.append([t["id"], t["channel"], None, verdict])
    ctx.destroy(0)
else:
    print("ready", flush=True)
print(json.dumps(out))
'''


def run_probes(targets, seconds=4.0, during=None):
    """Run PROBE at once as this process's account (root) and as ``nobody``, each against its
    ``targets[who]``; ``during()`` runs once both probes' ZeroMQ sockets are connected. Returns
    ``{who: [[id, what, status, verdict]]}``."""
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    nobody = pwd.getpwnam("nobody")
    procs = {}
    for who, account in (("root", {}), ("nobody", {"user": nobody.pw_uid, "group": nobody.pw_gid,
                                                   "extra_groups": []})):
        procs[who] = subprocess.Popen([PYTHON, "-c", PROBE, json.dumps(targets[who]), str(seconds)], cwd="/",
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True, **account)
    killers = [threading.Timer(240, os.killpg, (proc.pid, 9)) for proc in procs.values()]  # a probe that hangs
    for killer in killers:
        killer.start()
    results = {}
    try:
        ready = [proc.stdout.readline().strip() for proc in procs.values()]
        if ready == ["ready", "ready"] and during is not None:
            during()
        for who, proc in procs.items():
            out = proc.stdout.read()  # (not communicate(): it would skip what readline buffered)
            err = proc.stderr.read()
            proc.wait()
            assert proc.returncode == 0 and out.strip(), f"the probe as {who} failed: {err[-3000:]}"
            results[who] = json.loads(out.strip().splitlines()[-1])
    finally:
        for killer in killers:
            killer.cancel()
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
    return results


def http_requests(name, listener, ctx):
    """The requests a probe sends to an HTTP listener of row ``name``, and a control: ``(requests,
    (path, token) that must answer 2xx)``."""
    users = ctx.users
    first = users[0]
    if name == "hub":
        reqs = [("GET", "/hub/api/user"), ("GET", "/hub/api/users"), ("GET", "/hub/home"), ("GET", "/hub/admin")]
        reqs += [("GET", f"/hub/api/users/{u.name}") for u in users]
        reqs += [("POST", f"/hub/api/users/{u.name}/tokens") for u in users]
        return reqs, ("/hub/api/user", first.token)
    if name == "proxy":
        reqs = [("GET", "/hub/api/user"), ("GET", "/services/marketplace/api/models")]
        for u in users:
            reqs += [("GET", f"/user/{u.name}/api/contents"), ("GET", f"/user/{u.name}/deepvre/api/runs"),
                     ("GET", f"/user/{u.name}/lab"), ("POST", f"/user/{u.name}/api/kernels")]
        return reqs, (f"/user/{first.name}/api/contents", first.token)
    if name == "proxy API":
        return [("GET", "/api/routes"), ("POST", "/api/routes/census-probe")], ("/api/routes", ctx.proxy_token)
    if name == "marketplace":
        p = listener.facts["prefix"] or "/services/marketplace/"
        reqs = [("GET", f"{p}api/models"), ("POST", f"{p}api/models"), ("GET", p)]
        reqs += [("GET", f"{p}api/models/{u.base}") for u in users]
        return reqs, (f"{p}api/models", first.token)
    if name == "MLflow service":
        p = listener.facts["prefix"] or "/services/mlflow/"
        reqs = [("GET", p), ("GET", f"{p}api/2.0/mlflow/experiments/search"), ("POST", f"{p}api/2.0/mlflow/runs/create"),
                ("GET", f"{p}get-artifact?path=x&run_uuid=0")]
        return reqs, (f"{p}api/2.0/mlflow/users/current", first.token)
    if name == "MLflow server":  # the control: the admin account the service made (its folder is root-readable)
        password = (Path(ctx.hub.state_dir) / "mlflow" / "admin_password").read_text().strip()
        reqs = [("GET", "/"), ("GET", "/api/2.0/mlflow/experiments/search?max_results=1"),
                ("POST", "/api/2.0/mlflow/experiments/create"), ("GET", "/get-artifact?path=x&run_uuid=0"),
                ("GET", "/api/2.0/mlflow/users/current")]
        return reqs, ("/api/2.0/mlflow/users/current", "Basic " + base64.b64encode(f"deepvre-admin:{password}".encode()).decode())
    if name.startswith("user server"):
        p = listener.facts["prefix"]
        owner = next(u for u in users if p == f"/user/{u.name}/")
        reqs = [("GET", f"{p}{path}") for path in (
            "api/contents", "api/kernels", "api/sessions", "api/terminals", "lab", "deepvre/api/models",
            "deepvre/api/runs", "deepvre/api/serve", "deepvre/api/preprocess", "deepvre/services/1/v2/models/",
            f"proxy/{ctx.hub_setting('hub_port')}/hub/api/")]
        reqs += [("POST", f"{p}{path}") for path in ("api/kernels", "deepvre/api/serve", "deepvre/api/runs",
                                                     "deepvre/services/1/v2/models/x/predict/")]
        return reqs, (f"{p}api/contents", owner.token)
    if name in ("Dask dashboard", "Dask worker HTTP"):
        reqs = [("GET", "/api/v1"), ("GET", "/api/v1/get_workers"), ("GET", "/api/v1/check_idle"),
                ("POST", "/api/v1/retire_workers"), ("POST", "/api/v1/adaptive_target")]
        return reqs, ("/health", None)
    raise AssertionError(f"no HTTP probe for {name!r}")


def probe_all(live, table, ctx):
    """Probe every live listener the table marks as authenticating, without credentials, as root and
    as ``nobody``; the problems found."""
    problems = []
    classified = [(classify(ln, table, ctx)[0], ln) for ln in live]
    classified = [(name, ln) for name, ln in classified if name]
    http_targets, zmq_targets, unix_targets, ids, probed = [], [], [], {}, set()
    marker = f"census-{secrets.token_hex(4)}"
    for i, (name, ln) in enumerate(classified):
        auth = table[name]["auth"]
        ids[i] = (name, ln)
        probed.add(i)
        if ln.kind == "tcp" and auth in ("hub-auth", "routed", "proxy-token", "read-only", "mlflow-basic"):
            reqs, (path, token) = http_requests(name, ln, ctx)
            http_targets.append({"id": i, "kind": "http", "host": ln.host, "port": ln.port, "requests": reqs})
            # the control: the same listener with the owner's credentials
            headers = {"Authorization": token if token.startswith("Basic ") else f"token {token}"} if token else {}
            try:
                r = requests.get(f"http://{ln.host}:{ln.port}{path}", headers=headers, timeout=30, allow_redirects=False)
                if not 200 <= r.status_code < 300:
                    problems.append(f"control: {name!r} answered {r.status_code} to GET {path} with the owner's "
                                    f"credentials, so its probe proves nothing: {ln.describe()}")
            except requests.RequestException as err:
                problems.append(f"control: {name!r} did not answer GET {path}: {err}: {ln.describe()}")
        elif auth in ("hmac", "echo", "pipe-secret"):
            endpoint = f"tcp://{ln.host}:{ln.port}" if ln.kind == "tcp" else f"ipc://{ln.address}"
            target = {"id": i, "kind": "zmq", "endpoint": endpoint, "channel": ln.facts["channel"], "marker": marker}
            if ln.kind == "unix":  # jupyter_client's ipc transport: the runtime folder keeps others out
                problems += unix_owner_problems(name, ln)
                unix_targets.append(target)
            else:
                zmq_targets.append(target)
        elif auth == "service-token" and ln.kind == "tcp":  # the owner's tokens are the server's secrets
            base, model = serve_base(ln), re.search(r"--model-name\s+(\S+)", ln.cmdline).group(1)
            http_targets.append({"id": i, "kind": "http", "host": ln.host, "port": ln.port, "requests": [
                ("GET", "/"), ("GET", f"{base}/v2/models/"), ("GET", f"{base}/v2/models/{model}/"),
                ("POST", f"{base}/v2/models/{model}/predict/"), ("GET", f"{base}/v2/models/{model}/train/"),
                ("POST", f"{base}/v2/models/{model}/train/")]})
        elif auth == "unix-owner":
            problems += unix_owner_problems(name, ln)
            unix_targets.append({"id": i, "kind": "http", "unix": ln.address,
                                 "requests": [("GET", "/"), ("GET", f"{serve_base(ln)}/v2/models/")]})
        elif auth == "slurm":
            problems += slurm_problems(name, ln)
            if ln.kind == "tcp":  # srun's ports: a message without a munge credential gets no answer
                http_targets.append({"id": i, "kind": "raw", "host": ln.host, "port": ln.port})
        elif auth != "mutual-tls":  # (the Dask comms: dask_groups below)
            probed.discard(i)

    for job, (name, ln) in slurm_jobs(classified, table).items():
        problems += nobody_signals(job, name, ln)

    # kernels the session's users hold: the owner runs code in them while the probes listen
    kernels = [u.kernel for u in ctx.users if u.kernel is not None]
    outputs = []

    def owner_runs_code():
        for kernel in kernels:
            outputs.append(kernel.run(f"print({marker!r})"))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        dask = [pool.submit(probe_dask, group, user) for group in dask_groups(classified, table)
                for user in (None, "nobody")]
        # root may connect to any Unix socket: for root, unix_owner_problems checks the modes instead
        results = run_probes({"root": http_targets + zmq_targets,
                              "nobody": http_targets + zmq_targets + unix_targets},
                             during=owner_runs_code if zmq_targets or unix_targets else None)
        for future in dask:
            problems += future.result()
    if zmq_targets or unix_targets:
        assert len(outputs) == len(kernels) and all(marker in o for o in outputs), outputs  # the control
    for who, rows in results.items():
        for ident, what, status, verdict in rows:
            if verdict.startswith("ACCEPTED"):
                name, ln = ids[ident]
                problems.append(f"{name!r} ({table[name]['auth']}) answered {who} without credentials: {what} -> "
                                f"{status} {verdict}: {ln.describe()}")
    unprobed = [f"{name!r} ({table[name]['auth']}): {ln.describe()}" for i, (name, ln) in ids.items()
                if table[name]["auth"] in NEEDS_AUTH and i not in probed]
    assert not unprobed, "listeners that need authentication but were not probed: " + "; ".join(unprobed)
    answered = {ident for rows in results.values() for ident, *_ in rows}
    missing = {t["id"] for t in http_targets + zmq_targets + unix_targets} - answered
    assert not missing, f"no probe result for {[ids[i][0] for i in missing]}"
    return problems


def serve_base(listener):
    found = re.search(r"--base-path\s+(\S+)", listener.cmdline)
    return found.group(1).rstrip("/") if found else ""


def unix_owner_problems(name, ln):
    """Root may connect to any socket: for root the census checks the modes instead. Connecting
    needs write permission on the socket and search permission on its folder."""
    facts = ln.facts
    if "socket_mode" not in facts:
        return [f"{name!r}: its socket could not be examined: {ln.describe()}"]
    closed_socket = int(facts["socket_mode"], 8) & 0o022 == 0 and facts["socket_uid"] == ln.uid
    closed_folder = int(facts["folder_mode"], 8) & 0o011 == 0 and facts["folder_uid"] == ln.uid
    if closed_socket or closed_folder:
        return []
    return [f"{name!r} (unix-owner): neither the socket nor its folder is closed to other accounts: {ln.describe()}"]


def slurm_jobs(live, table):
    """``{job id: a listener of it}`` for the live listeners of the ``slurm`` rows."""
    jobs = {}
    for name, ln in live:
        if table[name]["auth"] != "slurm":
            continue
        found = re.search(r"_(\d+)\.\d+$", ln.address) if ln.kind == "unix" else None
        job = found.group(1) if found else ln.facts.get("job", "")
        if job:
            jobs.setdefault(job, (name, ln))
    return jobs


def slurm_problems(name, ln):
    """A ``slurm`` listener: slurmstepd's sockets are root's; srun runs as the job's owner."""
    if ln.role == "slurmstepd" and ln.uid != 0:
        return [f"{name!r} (slurm): slurmstepd does not run as root: {ln.describe()}"]
    if ln.role == "srun" and not ln.facts.get("job"):
        return [f"{name!r} (slurm): no SLURM_JOB_ID in its environment: {ln.describe()}"]
    return []


def nobody_signals(job, name, ln):
    """``nobody`` tries to signal the job through Slurm (scancel): it must be denied, and say so."""
    entry = pwd.getpwnam("nobody")
    done = subprocess.run(["scancel", "--signal=CONT", job], env={"PATH": os.environ["PATH"],
                          "SLURM_CONF": os.environ.get("SLURM_CONF", "")}, capture_output=True, text=True, timeout=60,
                          user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd="/", check=False)
    if done.returncode == 0:
        return [f"{name!r} (slurm): nobody signalled job {job}: {ln.describe()}"]
    if "denied" not in done.stderr.lower():
        return [f"{name!r} (slurm): nobody's scancel of job {job} failed for another reason than a denial, so it "
                f"proves nothing: {done.stderr.strip()}"]
    return []


def dask_groups(classified, table):
    """The live Dask comms, one target dict per owner (by HOME): ``(targets, control files)``."""
    groups = {}
    for name, ln in classified:
        if table[name]["auth"] != "mutual-tls":
            continue
        targets = groups.setdefault(ln.facts["home"], {})
        role = {"Scheduler": "scheduler", "Nanny": "nanny", "Worker": "worker"}[ln.facts["dask"]]
        key = role if role not in targets else f"{role}{len(targets)}"
        targets[key] = f"tls://{ln.host}:{ln.port}"
    out = []
    for home, targets in groups.items():
        folder = Path(home) / ".local/share/deepvre/dask"
        out.append((targets, {"cert": str(folder / "dask.pem"), "key": str(folder / "dask-key.pem")}))
    return out


def probe_dask(group, user):
    """tests/security/test_dask.py's probe: as root with the owner's certificate as the control, and
    as ``user`` (no control: the owner's key is not theirs to read)."""
    targets, control = group
    results = dask_probe(targets, control=None if user else control, user=user)
    try:
        assert_refused(results)
    except AssertionError as err:
        return [f"Dask comms {targets} (mutual-tls) let {user or 'root'} in: {err}"]
    if not user and len([k for k in results if k.startswith("control")]) != len(targets):
        return [f"Dask comms {targets}: the control did not run: {results}"]
    return []


def inconclusive(ln):
    """Whether the examination of a listener that is gone now told nothing (it was closing)."""
    return (ln.facts.get("gone") or ln.proto in ("closed", "silent")
            or (ln.proto == "http" and ln.facts.get("no_answer"))
            or (ln.proto == "tls" and ln.facts.get("dask") not in ("Scheduler", "Nanny", "Worker")))


def forked_holder(listener, rows_seen):
    """Whether ``listener`` is its parent's listening socket, seen in a child (a run worker the
    server started) in the instant between fork and exec, when the child still holds every fd
    of its parent and the sample missed the parent: the same socket is a classified listener of
    the child's parent process."""
    parent = listener.facts.get("ppid")
    return any(ln.pid == parent and (ln.kind, ln.port if ln.kind == "tcp" else ln.address)
               == (listener.kind, listener.port if listener.kind == "tcp" else listener.address)
               for listeners in rows_seen.values() for ln in listeners)


def census_problems(census, live, table, ctx):
    """Every problem of a finished census: classification of every listener seen, rows of the mode
    never seen, probes of the live ones. A listener that was gone before it could be examined
    (it closed the connection, or its process ended, and no later sample saw it) is counted
    apart (``census.unexamined``)."""
    problems = [f"the sampler failed: {e}" for e in census.errors]
    live_keys = {(ln.pid, ln.kind, ln.address) for ln in live}
    again = [ln for ln in live if inconclusive(ln)]  # examined while it was starting (or busy): once more, now
    for ln in again:
        ln.facts.pop("gone", None)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(examine, again))
    rows_seen, unmatched = {}, []
    census.unexamined, census.forked = [], []
    for key, ln in census.seen.items():
        if key not in live_keys and inconclusive(ln):
            census.unexamined.append(ln)
            continue
        name, found = classify(ln, table, ctx)
        if name is None and found:
            unmatched.append((ln, found))
            continue
        problems += found
        if name:
            rows_seen.setdefault(name, []).append(ln)
    for ln, found in unmatched:
        if forked_holder(ln, rows_seen):
            census.forked.append(ln)  # the parent's socket, seen in a child between fork and exec
        else:
            problems += found
    for name, row in table.items():
        if name in OFF_IN_CENSUS:
            continue
        if ctx.mode in row["modes"] and row["auth"] != "no-listener" and name not in rows_seen:
            problems.append(f"row {name!r} lists mode {ctx.mode}, but the session opened no such listener")
    probed = probe_all(live, table, ctx)
    return problems + probed, rows_seen


def report(ctx, census, rows_seen, seconds):
    print(f"\n--- listener census, {ctx.mode} mode ({seconds:.0f} s): {len(census.seen)} listeners seen")
    for name, listeners in sorted(rows_seen.items()):
        print(f"  {name}: {len(listeners)}: " + ", ".join(f"{ln.address} (pid {ln.pid}, uid {ln.uid})"
                                                         for ln in listeners))
    roles = sorted({role for role, *_ in census.roles_seen.values()})
    print(f"  session processes' roles: {roles}")
    forked = getattr(census, "forked", [])
    print(f"  a parent's socket seen in its child between fork and exec: {len(forked)}: "
          + ", ".join(f"{ln.address} (pid {ln.pid}, parent {ln.facts.get('ppid')})" for ln in forked))
    gone = getattr(census, "unexamined", [])
    print(f"  gone before they could be examined (a preprocess job's cluster): {len(gone)}: "
          + ", ".join(f"{ln.address} (pid {ln.pid}: {ln.cmdline[:60]})" for ln in gone))


# ------------------------------------------------------------------------------------------ a session


@dataclass
class User:
    name: str
    token: str
    uid: int = None
    base: str = ""
    kernel: object = None
    service: dict = None


class Kernel:
    """A kernel of a user's server that stays up (``run_code`` of tests/hub/hubprocess.py starts
    and deletes one per call): code runs in it through the websocket, with the user's token."""

    def __init__(self, server_url, token):
        self.url, self.token = server_url, token
        r = requests.post(f"{server_url}api/kernels", json={}, headers={"Authorization": f"token {token}"},
                          timeout=120)
        r.raise_for_status()
        self.id = r.json()["id"]
        self.lock = threading.Lock()

    def run(self, code, timeout=180):
        with self.lock:
            return execute(self.url, self.token, self.id, code, timeout, stdout_only=True)


# A Dask cluster the way deepvre opens one, kept open in the kernel for the census.
OPEN_CLUSTER = """
from deepvre.pipelines.clusters import open_client
census_cluster = open_client("local", n_workers=1)
census_client, census_link = census_cluster.__enter__()
print(census_client.scheduler.address, census_link)
"""


def extension(hub, user, method, path, **kw):
    return requests.request(method, f"{hub.server_url(user.name)}deepvre/api/{path}",
                            headers={"Authorization": f"token {user.token}"}, timeout=180, **kw)


def upload_images(hub, user):
    """Two classes of tiny JPEGs in the user's workspace (``photos/``), through the contents API."""
    from PIL import Image

    headers, server = {"Authorization": f"token {user.token}"}, hub.server_url(user.name)
    for folder in ("photos", "photos/red", "photos/blue"):
        requests.put(f"{server}api/contents/{folder}", json={"type": "directory"}, headers=headers,
                     timeout=60).raise_for_status()
    for label, colour in (("red", (200, 10, 10)), ("blue", (10, 10, 200))):
        for i in range(2):
            data = io.BytesIO()
            Image.new("RGB", (40, 32), colour).save(data, "JPEG")
            requests.put(f"{server}api/contents/photos/{label}/{i}.jpg", headers=headers, timeout=60, json={
                "type": "file", "format": "base64", "content": base64.b64encode(data.getvalue()).decode(),
            }).raise_for_status()


def whole_session(hub, users, colours_model, timeout=240):  # noqa: F811
    """Spawn, Dask preprocess, papermill run, publish and serve, for every user, as the Models panel
    does; the kernel's cluster and the services stay up."""
    from deepvre.market.client import HTTPMarket

    started = time.monotonic()
    for user in users:
        r = hub.spawn(user.token, user.name, wait=False)
        assert r.status_code in (201, 202), (user.name, r.status_code, r.text)
    for user in users:
        hub.wait_ready(user.token, user.name, timeout=timeout)
        if user.uid is None:  # the account the hub made for the server: the census follows its processes
            user.uid = pwd.getpwnam(user.name).pw_uid
    print(f"servers ready after {time.monotonic() - started:.0f} s")
    folder, doc = colours_model
    jobs = {}

    def start(user):  # the users' sessions run side by side, each in the panel's order
        user.base = f"census-{secrets.token_hex(3)}"
        HTTPMarket(f"{hub.url}/services/marketplace/", user.token).publish(
            {**doc, "deepvre": {**doc["deepvre"], "name": user.base}}, {p.name: p for p in folder.iterdir()},
            visibility="private")
        r = extension(hub, user, "POST", "runs", json={"model": user.base, "parameters": {"epochs": 1}})
        assert r.status_code == 201, (user.name, r.text)
        jobs[user.name, "run"] = r.json()["id"]
        upload_images(hub, user)
        r = extension(hub, user, "POST", "preprocess", json={"kind": "images", "input": "photos", "params": {"size": 16}})
        assert r.status_code == 201, (user.name, r.text)
        jobs[user.name, "preprocess"] = r.json()["id"]
        user.kernel = Kernel(hub.server_url(user.name), user.token)
        address, _link = user.kernel.run(OPEN_CLUSTER).split()[:2]
        assert address.startswith("tls://127.0.0.1:"), address

    with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
        for future in [pool.submit(start, user) for user in users]:
            future.result()

    def finished():
        states = {}
        for user in users:
            for kind in ("run", "preprocess"):
                path = f"runs/{jobs[user.name, kind]}" if kind == "run" else f"preprocess/{jobs[user.name, kind]}"
                r = extension(hub, user, "GET", path)
                assert r.status_code == 200, (user.name, kind, r.status_code, r.text[:2000])
                states[user.name, kind] = r.json()
        return all(s["state"] in ("done", "failed") for s in states.values()) and states

    print(f"jobs started after {time.monotonic() - started:.0f} s")
    states = wait_for(finished, timeout, "the runs and preprocessing jobs", interval=1)
    print(f"jobs done after {time.monotonic() - started:.0f} s")
    failed = {k: s for k, s in states.items() if s["state"] != "done"}
    assert not failed, json.dumps({f"{k[0]} {k[1]}": s for k, s in failed.items()}, indent=1, default=str)[:4000]
    for user in users:
        r = extension(hub, user, "POST", f"runs/{jobs[user.name, 'run']}/publish", json={"name": f"{user.base}-ft"})
        assert r.status_code == 201, (user.name, r.text)
        r = extension(hub, user, "POST", "serve", json={"model": f"{user.base}-ft", "wait": False})
        assert r.status_code == 201 and r.json()["state"] == "starting", (user.name, r.text)
        user.service = r.json()
    for user in users:
        wait_for(lambda u=user: service_answers(hub, u), 180, f"{user.name}'s model service through the server",
                 interval=1)
    print(f"services up after {time.monotonic() - started:.0f} s")


def service_answers(hub, user):
    """Whether ``user``'s model service answers through their server; fails when it exited."""
    r = requests.get(f"{hub.url}{user.service['url']}models/", headers={"Authorization": f"token {user.token}"},
                     timeout=30)
    if r.status_code == 200:
        return True
    listing = extension(hub, user, "GET", "serve")
    if listing.status_code != 200:
        return False
    mine = [svc for svc in listing.json()["services"] if svc["ref"] == user.service["ref"]]
    assert mine, f"{user.name}'s model service is not listed: {listing.text[:1000]}"
    assert mine[0]["state"] in ("starting", "ready"), f"{user.name}'s model service {mine[0]['state']}:\n{mine[0]['error'][-1500:]}"
    return False


def stop_servers(hub, users):
    """Stop the users' servers through the hub, as a user's "Stop My Server" does (the hub may be
    shared): the kernels' clusters and the model services are not stopped first."""
    for user in users:
        with contextlib.suppress(Exception):
            if hub.server_model(user.token, user.name):
                hub.stop_server(user.token, user.name)


SERVICE_ROLES = ("hub", "proxy", "market", "culler")  # the hub's own processes: they outlive the servers


def slurm_step_daemon(pid):
    """Whether ``pid`` is Slurm's ``slurmstepd`` (root's, not a user's process)."""
    try:
        proc = psutil.Process(pid)
        return proc.name() == "slurmstepd" and proc.uids().real == 0
    except psutil.Error:
        return False


def leftovers(census, timeout=20):
    """Listeners of the session's processes (not the hub's own) still open ``timeout`` seconds
    after the servers stopped: ``[Listener]``; the processes holding them are then ended (they
    are the session's: its accounts may be deleted next, and their uids given to others). A leak
    stays for good; a server on Slurm that is still stopping (scancel's SIGTERM reaches the job
    step, which stops its kernels, their clusters and its model services) takes seconds on a
    loaded machine: 10 s was once too few in CI."""
    pids = {pid for pid, (role, *_) in census.roles_seen.items() if role not in SERVICE_ROLES}

    def still():
        found = [Listener("tcp", f"{host}:{port}", pid, host=host, port=port)
                 for pid, host, port in tcp_listening() if pid in pids]
        found += [Listener("unix", path, pid) for pid, path in unix_listening() if pid in pids]
        return one_per_socket(found)

    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not still(), timeout, "the session's listeners to close", interval=1)
    # Slurm's own step daemon (root) ends a step after the step's processes are gone, within Slurm's
    # KillWait (30 s by default): when it is all that is left, it gets that long too
    if still() and all(slurm_step_daemon(ln.pid) for ln in still()):
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not still(), 40, "Slurm's step daemons to end", interval=1)
    left = [examine(ln) for ln in still()]
    for pid in {ln.pid for ln in left}:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            group = [proc, *proc.children(recursive=True)]
            for p in group:
                p.terminate()
            for p in psutil.wait_procs(group, timeout=10)[1]:
                p.kill()
    for ln in left:  # a model service's folder (socket, uploads): its server would have removed it
        if ln.kind == "unix" and re.search(r"/deepvre-serve-[^/]+/deepaas\.sock$", ln.address):
            shutil.rmtree(os.path.dirname(ln.address), ignore_errors=True)
    return left


def take_census(ctx, colours_model):  # noqa: F811
    """The whole session under the sampler, then the census's problems; then the servers stop, and
    none of the session's listeners may outlive them."""
    started = time.monotonic()
    table = census_table()
    problems, rows_seen, left = ["the session did not finish"], {}, []
    with Census(ctx) as census:
        try:
            whole_session(ctx.hub, ctx.users, colours_model)
            live = census.final()
            probing = time.monotonic()
            problems, rows_seen = census_problems(census, live, table, ctx)
            print(f"classified and probed in {time.monotonic() - probing:.0f} s")
        finally:
            stop_servers(ctx.hub, ctx.users)
            left = leftovers(census)
    report(ctx, census, rows_seen, time.monotonic() - started)
    problems += [f"outlived its server (the test ended it): {ln.describe()}" for ln in left]
    assert not problems, f"{len(problems)} census problems in {ctx.mode} mode:\n" + "\n".join(problems)
    return census, rows_seen


def proxy_token(hub):
    return (hub.state_dir / "proxy_token").read_text().strip()


# ------------------------------------------------------------------------------------------ the tests


def test_every_row_of_the_census_table_is_recognised_and_probed():
    table = census_table()
    assert set(table) == set(RECOGNISE), (
        f"rows without a recogniser: {sorted(set(table) - set(RECOGNISE))}; "
        f"recognisers without a row: {sorted(set(RECOGNISE) - set(table))}")
    for name, row in table.items():
        address_class(row["address"])
        assert row["auth"] in AUTH, name
    assert NEEDS_AUTH <= set(AUTH)
    for auth in AUTH:
        assert f"`{auth}`" in DOC.read_text().split(SECTION, 1)[1], f"the Auth {auth!r} is not explained in the doc"


def fake_context(mode="local"):
    hub = type("FakeHub", (), {"settings": {"hub": {"ip": "127.0.0.1", "port": 1, "hub_port": 2,
                                                    "proxy_api_port": 3}}})()
    return Context(mode, hub, hub_uid=0, users=[User("ana", "t", uid=os.getuid())])


def test_census_reports_a_listener_no_row_matches():
    """A listener of the session that is not in the table fails the census, with its pid,
    uid, address and command line."""
    table = census_table()
    stray = Listener("tcp", "127.0.0.1:4444", 4242, host="127.0.0.1", port=4444, uid=os.getuid(),
                     cmdline="python3 -m http.server 4444", role="other", proto="http",
                     facts={"dask_health": False})
    name, problems = classify(stray, table, fake_context())
    assert name is None and len(problems) == 1, problems
    assert "no row of the census table" in problems[0]
    for part in ("pid 4242", f"uid {os.getuid()}", "127.0.0.1:4444", "python3 -m http.server"):
        assert part in problems[0], problems[0]
    # a known kind in a mode its row does not list, off its address or under another account
    server = Listener("tcp", "0.0.0.0:5555", 4343, host="127.0.0.1", port=5555, uid=os.getuid() + 1,
                      cmdline="python jupyterhub-singleuser", role="server", proto="http",
                      facts={"jupyter_api": True, "bound": "every interface", "prefix": "/user/ana/"})
    name, problems = classify(server, table, fake_context())
    assert name == "user server" and any("loopback-only" in p for p in problems), problems
    assert any("server's account" in p for p in problems), problems
    culler = Listener("tcp", "127.0.0.1:6666", 4444, host="127.0.0.1", port=6666, uid=0,
                      cmdline="python -m jupyterhub_idle_culler", role="culler", proto="http")
    name, problems = classify(culler, table, fake_context())
    assert name == "idle culler" and any("opens no listener" in p for p in problems), problems


def test_a_parents_socket_seen_in_a_forked_child_is_the_parents():
    """Between fork and exec a child holds its parent's listening socket; a sample that caught
    only the child must not count it as a new listener, and a child's own socket still counts."""
    server = Listener("tcp", "0.0.0.0:5555", 4343, host="127.0.0.1", port=5555, uid=os.getuid(),
                      cmdline="python jupyterhub-singleuser", role="server", proto="http")
    rows_seen = {"user server": [server]}
    child = Listener("tcp", "0.0.0.0:5555", 4400, host="127.0.0.1", port=5555, uid=os.getuid(),
                     cmdline="python -m deepvre.runs.execute run", role="run", proto="http",
                     facts={"ppid": 4343})
    assert forked_holder(child, rows_seen)
    own = Listener("tcp", "127.0.0.1:7777", 4400, host="127.0.0.1", port=7777, uid=os.getuid(),
                   cmdline="python -m deepvre.runs.execute run", role="run", proto="http", facts={"ppid": 4343})
    stranger = Listener("tcp", "0.0.0.0:5555", 4500, host="127.0.0.1", port=5555, uid=os.getuid(),
                        cmdline="python3 -m http.server", role="other", proto="http", facts={"ppid": 1})
    assert not forked_holder(own, rows_seen) and not forked_holder(stranger, rows_seen)


def test_kernel_channels_come_from_the_connection_file(tmp_path):
    """A kernel's ports (tcp transport) or socket paths (ipc transport) are named by its
    connection file; the one ZeroMQ port it does not name is ipykernel's pipe."""
    ports = {"shell_port": 5001, "iopub_port": 5002, "stdin_port": 5003, "control_port": 5004, "hb_port": 5005}
    tcp = tmp_path / "kernel-a.json"
    tcp.write_text(json.dumps({"transport": "tcp", "ip": "127.0.0.1", "key": "k", **ports}))
    assert kernel_channels(f"python -m ipykernel_launcher -f {tcp}") == {
        5001: "shell", 5002: "iopub", 5003: "stdin", 5004: "control", 5005: "hb"}
    ipc = tmp_path / "kernel-b.json"
    ipc.write_text(json.dumps({"transport": "ipc", "ip": str(tmp_path / "kernel-b-ipc"), "key": "k",
                               **{name: i for i, name in enumerate(ports, 1)}}))  # ipc "ports": 1 to 5
    assert kernel_channels(f"python -m ipykernel_launcher -f {ipc}")[f"{tmp_path}/kernel-b-ipc-2"] == "iopub"
    assert kernel_channels("python -m ipykernel_launcher") == {}
    table, ctx = census_table(), fake_context()
    for channel, row in (("iopub", "kernel iopub"), ("hb", "kernel heartbeat"), ("control", "kernel shell, control, stdin")):
        ln = Listener("unix", f"{tmp_path}/kernel-b-ipc-2", 1, uid=os.getuid(), role="kernel", facts={"channel": channel})
        assert classify(ln, table, ctx) == (row, []), channel
        # the same channel on jupyter_client's tcp transport: anyone on the machine may subscribe
        ln = Listener("tcp", "127.0.0.1:5002", 1, host="127.0.0.1", port=5002, uid=os.getuid(), role="kernel",
                      proto="zmq", facts={"channel": channel})
        name, problems = classify(ln, table, ctx)
        assert name == row and any("is a Unix socket by the table, but listens on TCP" in p for p in problems)
    pipe = Listener("tcp", "127.0.0.1:5006", 1, host="127.0.0.1", port=5006, uid=os.getuid(), role="kernel",
                    proto="zmq", facts={"channel": "pipe"})
    assert classify(pipe, table, ctx) == ("kernel iopub pipe", [])


class Open(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def test_census_reports_a_listener_that_answers_without_credentials():
    """A listener marked as authenticating that answers anyone (a plain http.server on loopback
    standing for the user's server) is reported, for root and for nobody."""
    require_root()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Open)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        table = census_table()
        ctx = fake_context()
        ctx.users[0].token = "not-checked"
        fake = Listener("tcp", f"127.0.0.1:{port}", os.getpid(), host="127.0.0.1", port=port, uid=os.getuid(),
                        cmdline="python jupyterhub-singleuser", role="server", proto="http",
                        facts={"jupyter_api": True, "prefix": "/user/ana/", "home": "/nonexistent"})
        assert classify(fake, table, ctx)[0] == "user server"
        assert table["user server"]["auth"] == "hub-auth"
        problems = probe_all([fake], table, ctx)
        for who in ("root", "nobody"):
            assert any(f"answered {who} without credentials: GET /user/ana/api/contents -> 200 ACCEPTED" in p
                       for p in problems), problems
        assert all(f"port {port}" in p or f":{port}" in p for p in problems), problems
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def local_hub():
    """A local-mode hub as root, with the idle culler on. Its state lives outside pytest's
    temporary folder (which other pytest sessions make 0700 again while the hub's services,
    under their own accounts, use it)."""
    require_root()
    require_program("ss")
    require_proxy()
    with hub_folder("deepvre-census-") as folder:
        hub = HubProcess(cpu_only(culling={"enabled": True}), folder / "state")
        hub.baseline = baseline()
        with hub.running():
            yield hub


def test_listener_census_local_mode(local_hub, colours_model):  # noqa: F811
    hub = local_hub
    admin = hub.login(hub.admin, hub.admin_password)
    users = []
    for role in ("a", "b"):
        name = new_name(role)
        _session, token = hub.approved_user(admin, name, PASSWORD)
        users.append(User(name, token))
    ctx = Context("local", hub, hub_uid=0, users=users, baseline=hub.baseline)
    ctx.proxy_token = proxy_token(hub)
    census, _rows = take_census(ctx, colours_model)
    culler = [pid for pid, (role, *_) in census.roles_seen.items() if role == "culler"]
    assert culler, "the idle culler never ran (culling.enabled), so the census could not see it"


def personal_user(hub, name):
    """(session, token) of ``name`` on the shared personal hub: signed up and approved once."""
    session = hub.login(name, PASSWORD, check=False)
    if not any(c.name.startswith("jupyterhub-session") for c in session.cookies):
        admin = hub.login(hub.admin, hub.admin_password)
        assert hub.signup(name, PASSWORD).status_code == 200
        hub.authorize(admin, name)
        session = hub.login(name, PASSWORD)
    return session, hub.token(session, name)


def test_listener_census_personal_mode(personal_hub, colours_model):  # noqa: F811
    hub = personal_hub
    require_program("ss")
    before = baseline()
    admin = hub.login(hub.admin, hub.admin_password)
    users = [User(hub.admin, hub.token(admin, hub.admin)), User(hub.person, personal_user(hub, hub.person)[1])]
    hub_uid = pwd.getpwnam(hub.account).pw_uid
    for user in users:
        user.uid = hub_uid
    ctx = Context("personal", hub, hub_uid=hub_uid, users=users, baseline=before)
    ctx.proxy_token = proxy_token(hub)
    take_census(ctx, colours_model)


@pytest.mark.slurm
def test_listener_census_slurm_mode(slurm_hub, colours_model):  # noqa: F811
    hub = slurm_hub
    require_program("ss")
    before = baseline()
    users = []
    for role in ("ca", "cb"):
        name, _session, token = site_account(hub, role)  # the site's account exists before the job
        users.append(User(name, token, uid=pwd.getpwnam(name).pw_uid))
    ctx = Context("slurm", hub, hub_uid=pwd.getpwnam(hub.hub_account).pw_uid, users=users, baseline=before)
    ctx.proxy_token = proxy_token(hub)
    take_census(ctx, colours_model)
