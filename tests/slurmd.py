"""A real one-node Slurm cluster on loopback, for tests (dask-jobqueue, batchspawner).

    def test_x(slurm):                      # tests/conftest.py's session fixture: a started Slurm
        subprocess.run(["sbatch", ...], env=slurm.env)   # or rely on os.environ["SLURM_CONF"]

API (kept small on purpose):

* ``start_slurm(base=None) -> Slurm``: write a config under ``base`` (default: a new
  ``/tmp/deepvre-slurm-*`` folder, so parallel sessions never share pid files; free
  loopback ports, state/spool/logs there), start munged if none runs, then slurmctld
  and ``slurmd -N localhost``; wait until the node is idle. Idempotent: if the
  Slurm named by ``base`` (or, without ``base``, by ``$SLURM_CONF``) already answers
  (in any node state), it is reused once idle (and left running), never restarted.
* ``stop_slurm(slurm)``: stop only the processes that ``start_slurm`` started.
* ``Slurm``: ``conf`` (path of slurm.conf), ``partition``, ``env`` (os.environ plus
  ``SLURM_CONF``), ``started`` (the processes it owns), ``base``.
* ``session_slurm()``: the generator behind the session fixture ``slurm`` of tests/conftest.py
  (defined there once: a fixture imported into several modules would be a separate "session"
  instance in each, the later ones restarting daemons over the first one's folder). It also sets
  ``SLURM_CONF`` in ``os.environ`` for the session; needs root, slurmctld, slurmd and munged
  (``tests.prereqs.require``: skip by hand, fail in CI).
"""

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field

from tests.prereqs import require, require_program, require_root

DEFAULT_BASE = "/tmp/deepvre-slurm"
PARTITION = "debug"

# What every test cluster shares (tests/slurmnodes.py too): plugins that need no cgroups or accounting.
PLUGINS = """\
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
"""

CONF = """\
ClusterName=deepvre
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
{plugins}NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName={partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Slurm:
    base: str
    conf: str
    partition: str = PARTITION
    started: list = field(default_factory=list)

    @property
    def env(self):
        return dict(os.environ, SLURM_CONF=self.conf)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_state(env):
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
    return out.stdout.strip() if out.returncode == 0 else ""


def _wait_idle(env, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _node_state(env)
        if state.startswith(("idle", "mix", "alloc")):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"Slurm node not idle after {timeout}s (last state {state!r})")


def _munge_running():
    return os.path.exists("/run/munge/munge.socket.2") and subprocess.run(
        ["munge", "-n"], capture_output=True).returncode == 0


def start_slurm(base=None):
    """Start (or reuse) the one-node Slurm of ``base``; see the module docstring."""
    if base is None and os.environ.get("SLURM_CONF", "").startswith(DEFAULT_BASE):
        base = os.path.dirname(os.environ["SLURM_CONF"])
    if base is None:
        import tempfile

        base = tempfile.mkdtemp(prefix=os.path.basename(DEFAULT_BASE) + "-", dir=os.path.dirname(DEFAULT_BASE))
    conf = os.path.join(base, "slurm.conf")
    slurm = Slurm(base, conf)
    if os.path.exists(conf) and _node_state(slurm.env):
        _wait_idle(slurm.env)  # already running (maybe still completing a job): reuse, do not own
        return slurm
    started = []
    if not _munge_running():
        os.makedirs("/run/munge", exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if not os.path.exists("/etc/munge/munge.key"):
            subprocess.run(["mungekey", "--create"], check=True)
        started.append(subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "--foreground"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        while not _munge_running():
            if time.monotonic() > deadline:
                raise TimeoutError("munged did not start")
            time.sleep(0.2)
    for sub in ("state", "spool"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    with open(conf, "w") as f:
        f.write(CONF.format(base=base, ctld_port=_free_port(), d_port=_free_port(),
                            cpus=os.cpu_count() or 2, partition=PARTITION, plugins=PLUGINS))
    env = slurm.env
    log = open(os.path.join(base, "daemons.out"), "ab")
    started.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", conf], env=env, stdout=log, stderr=log))
    started.append(subprocess.Popen(["slurmd", "-D", "-N", "localhost", "-f", conf], env=env, stdout=log, stderr=log))
    slurm.started = started
    try:
        _wait_idle(env)
    except Exception:
        stop_slurm(slurm)
        raise
    return slurm


def _cancel_jobs(env, timeout=60):
    """Cancel the jobs left on a controller we are about to stop, so no job step outlives slurmd."""
    subprocess.run(["scancel", "--full", "--partition", PARTITION], env=env, capture_output=True, timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True, timeout=30)
        if out.returncode != 0 or not out.stdout.strip():
            return
        time.sleep(0.5)


def stop_slurm(slurm):
    """Stop what ``start_slurm`` started (slurmd, slurmctld, munged), newest first."""
    if slurm.started:
        _cancel_jobs(slurm.env)
    stop_daemons(slurm.started)
    slurm.started = []


def stop_daemons(started):
    """Terminate the processes of ``started``, newest first (killed after 20 s)."""
    for proc in reversed(started):
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def session_slurm():
    """A started one-node Slurm for the whole session (see the module docstring)."""
    require_root()
    for program in ("slurmctld", "slurmd", "munged", "sbatch"):
        require_program(program)
    require(os.path.isdir("/etc/munge") or shutil.which("mungekey"), "needs munge")
    cluster = start_slurm()
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = cluster.conf
    yield cluster
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
    stop_slurm(cluster)
