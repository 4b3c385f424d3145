"""Attacks on the Dask clusters deepvre starts: nobody but their owner gets in.

A real cluster is started the way deepvre starts it (``deepvre.pipelines.clusters.open_client``),
then other processes attack every listener it opened (scheduler, workers, nannies):

* an anonymous local process (no certificates): ``distributed.Client``, a plain TCP Dask comm
  that asks for ``identity``, a bare TLS handshake without a client certificate;
* a second OS account (made here with ``useradd``, removed after) with certificates of its own,
  which also tries to read the owner's key files;
* the same attacks on a SLURMCluster whose worker runs as a Slurm job.

The probes (``PROBE``) report ``ACCEPTED`` when a listener let them talk; the same probes run
with the owner's certificate as a control, so a probe that could never succeed is caught.
"""

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

import pytest

from deepvre.pipelines import clusters
from tests.prereqs import require, require_program, require_root

from .conftest import os_account

PYTHON = sys.executable  # /work/main/.venv/bin/python: readable by other accounts

PROBE = r'''
import asyncio, json, os, socket, ssl, sys

targets, files, control = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
from distributed import Client
from distributed.comm import connect
from distributed.security import Security

def hostport(address):
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)

def own_context(own=None):
    """A client context with our own certificate (``own``: files; else a fresh self-signed one)
    that trusts any server, as a real attacker's would."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if own:
        ctx.load_cert_chain(own["cert"], own["key"])
    else:
        sec = Security.temporary()
        d = os.environ.get("TMPDIR", "/tmp")
        import tempfile
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            for name in ("cert", "key"):
                with open(f"{tmp}/{name}", "w") as f:
                    f.write(sec.tls_client_cert if name == "cert" else sec.tls_client_key)
            ctx.load_cert_chain(f"{tmp}/cert", f"{tmp}/key")
    return ctx

async def identity(address, **kw):
    comm = await asyncio.wait_for(connect(address, timeout=5, **kw), 8)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await asyncio.wait_for(comm.read(), 5)
    finally:
        comm.abort()

def tls_handshake(host, port):
    """A bare TLS handshake with no client certificate, then wait for the server's answer."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            s.settimeout(3)
            try:
                data = s.recv(1)
            except TimeoutError:
                return "connection held open"
            if not data:
                raise ConnectionError("closed by the server")
            return data

def client_run(address, **kw):
    async def run():
        async with Client(address, timeout=5, asynchronous=True, **kw) as c:
            return await c.run(os.getuid)
    return asyncio.run(asyncio.wait_for(run(), 20))

def attempt(fn):
    try:
        return "ACCEPTED " + repr(fn())[:80]
    except BaseException as err:
        return f"refused ({type(err).__name__}: {str(err)[:100]})"

out = {}
for role, address in targets.items():
    host, port = hostport(address)
    out[f"{role} tcp identity"] = attempt(lambda: asyncio.run(identity(f"tcp://{host}:{port}")))
    out[f"{role} tls identity, own cert"] = attempt(lambda: asyncio.run(identity(
        f"tls://{host}:{port}", ssl_context=own_context(), require_encryption=True)))
    if control:  # the same probe with the owner's certificate must get in
        out[f"control: {role} tls identity, owner's cert"] = attempt(lambda: asyncio.run(identity(
            f"tls://{host}:{port}", ssl_context=own_context(control), require_encryption=True)))
    out[f"{role} tls handshake, no cert"] = attempt(lambda: tls_handshake(host, port))
    if role == "scheduler":
        for scheme in ("tcp", "tls"):
            out[f"scheduler Client({scheme}://) anonymous"] = attempt(
                lambda: client_run(f"{scheme}://{host}:{port}"))
        out["scheduler Client(tls://) own Security"] = attempt(
            lambda: client_run(f"tls://{host}:{port}", security=Security.temporary()))
for path in files:
    out[f"read {path}"] = attempt(lambda: open(path, "rb").read(1))
print(json.dumps(out))
'''


def probe(targets, files=(), control=None, user=None, timeout=120):
    """Run ``PROBE`` in a new process (as ``user`` if given); its ``{attempt: result}``.
    ``control``: the owner's credential files, for the control attempts."""
    cmd = [PYTHON, "-c", PROBE, json.dumps(targets), json.dumps(list(files)),
           json.dumps({"cert": control["cert"], "key": control["key"]} if control else {})]
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "TMPDIR": "/tmp"}
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.Popen(cmd, env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the probe, whoever it runs as
        out, err = proc.communicate()
        pytest.fail(f"the probe hung: {err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def listeners(client):
    """Every Dask listener of the cluster behind ``client``: scheduler, each worker and nanny."""
    targets = {"scheduler": client.scheduler.address}
    for i, (address, worker) in enumerate(sorted(client.scheduler_info(n_workers=-1)["workers"].items())):
        targets[f"worker{i}"] = address
        if worker.get("nanny"):
            targets[f"nanny{i}"] = worker["nanny"]
    return targets


def listening(port):
    """Local addresses bound to TCP ``port`` (IPv4 and IPv6), from /proc/net/tcp*."""
    found = set()
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/net/{name}") as f:
            for line in list(f)[1:]:
                local, _remote, state = line.split()[1:4]
                if state != "0A":  # LISTEN
                    continue
                address, hexport = local.split(":")
                if int(hexport, 16) != port:
                    continue
                if len(address) == 8:
                    found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add("::" if set(address) == {"0"} else address)
    return found


def assert_refused(results):
    """Every attack refused; every control attempt (the owner's certificate) let in."""
    accepted = {k: v for k, v in results.items() if not k.startswith("control") and not v.startswith("refused")}
    assert not accepted, f"let in: {json.dumps(accepted, indent=1)}"
    control = {k: v for k, v in results.items() if k.startswith("control")}
    assert all(v.startswith("ACCEPTED") for v in control.values()), control


@pytest.fixture(scope="module")
def owner_home():
    """The owner's HOME: a folder other accounts may enter (like a 0755 home), so only the modes
    deepvre gives its credential files protect them."""
    home = tempfile.mkdtemp(prefix="deepvre-dask-owner-", dir="/tmp")
    os.chmod(home, 0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", home)
        yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def local_cluster(owner_home):
    with clusters.open_client("local", n_workers=1) as (client, link):
        yield client, link


def credential_files(home):
    folder = os.path.join(home, ".local/share/deepvre/dask")
    return {"folder": folder, **{k: os.path.join(folder, v) for k, v in
                                 {"ca": "ca.pem", "cert": "dask.pem", "key": "dask-key.pem"}.items()}}


def test_local_cluster_refuses_anonymous_local_process(local_cluster, owner_home):
    client, link = local_cluster
    targets = listeners(client)
    assert len(targets) == 3, targets  # scheduler, worker, nanny
    results = probe(targets, control=credential_files(owner_home))
    assert len([k for k in results if k.startswith("control")]) == 3, results
    assert_refused(results)
    # every listener on loopback only, the dashboard included
    ports = {role: int(address.rsplit(":", 1)[1]) for role, address in targets.items()}
    dashboard = int(link.split(":")[2].split("/")[0])
    worker_http = [w["services"]["dashboard"] for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    for role, port in {**ports, "dashboard": dashboard, **{f"worker http {p}": p for p in worker_http}}.items():
        assert listening(port) == {"127.0.0.1"}, (role, port, listening(port))


def test_local_credentials_are_the_owners_alone(local_cluster, owner_home):
    paths = credential_files(owner_home)
    assert stat.S_IMODE(os.stat(paths["folder"]).st_mode) == 0o700
    for name in ("ca", "cert", "key"):
        st = os.stat(paths[name])
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid(), name
    from cryptography import x509

    with open(paths["cert"], "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(paths["ca"], "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "PRIVATE KEY" not in open(paths["ca"]).read() + open(paths["cert"]).read()  # the CA key is not kept


@pytest.fixture(scope="module")
def other_account():
    """A second OS account (no home), removed afterwards."""
    require_root()
    require_program("useradd")
    require_program("runuser")
    with os_account("dask", home=False) as name:
        yield name


def test_local_cluster_refuses_another_account(local_cluster, owner_home, other_account):
    client, _link = local_cluster
    paths = credential_files(owner_home)
    files = [paths["key"], paths["cert"], paths["ca"]]
    results = probe(listeners(client), files=files, user=other_account)
    assert_refused(results)
    for path in files:  # denied by mode, not because the files are missing
        assert "PermissionError" in results[f"read {path}"], results[f"read {path}"]
        assert os.path.exists(path)


@pytest.mark.slurm
def test_slurm_cluster_refuses_others(slurm, owner_home, other_account, tmp_path, monkeypatch):
    settings = {"workers": 1, "slurm": {"queue": slurm.partition, "cores": 1, "memory": "1GB",
                                        "walltime": "00:10:00", "interface": "lo", "python": PYTHON,
                                        "local_directory": str(tmp_path / "w"),
                                        "log_directory": str(tmp_path / "logs")}}
    monkeypatch.chdir(tmp_path)
    with clusters.open_client("slurm", settings=settings) as (client, link):
        targets = listeners(client)
        assert {role[:6] for role in targets} >= {"schedu", "worker"}, targets
        assert_refused(probe(targets, control=credential_files(owner_home)))
        assert_refused(probe(targets, user=other_account))
        assert all(a.startswith("tls://127.0.0.1:") for a in targets.values()), targets
        # the scheduler and its dashboard on the interface the settings name / loopback, not everywhere
        assert listening(int(targets["scheduler"].rsplit(":", 1)[1])) == {"127.0.0.1"}
        require(bool(link), "the dashboard needs bokeh")
        assert listening(int(link.split(":")[2].split("/")[0])) == {"127.0.0.1"}, link


def test_credentials_never_trusted_when_others_could_have_read_or_made_them(tmp_path):
    from deepvre.pipelines import tls

    folder = tmp_path / "dask"
    first = tls.tls_files(str(folder))
    assert tls.tls_files(str(folder)) == first  # made once
    key = open(first["key"], "rb").read()
    os.chmod(folder, 0o755)  # someone loosened the folder: the key may have leaked
    tls.tls_files(str(folder))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700 and open(first["key"], "rb").read() != key
    key = open(first["key"], "rb").read()
    os.chmod(first["key"], 0o644)
    tls.tls_files(str(folder))
    assert stat.S_IMODE(os.stat(first["key"]).st_mode) == 0o600 and open(first["key"], "rb").read() != key
    os.unlink(first["cert"])  # a link planted in place of a file is replaced, never followed
    os.symlink("/etc/passwd", first["cert"])
    tls.tls_files(str(folder))
    assert not os.path.islink(first["cert"]) and b"CERTIFICATE" in open(first["cert"], "rb").read()
    if os.geteuid() == 0:  # a folder another account owns is refused
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
        with pytest.raises(PermissionError, match="owned by"):
            tls.tls_files(str(theirs))


# Kubernetes (offline): tests/security/test_kubernetes_users.py and test_kubernetes_admission.py.
