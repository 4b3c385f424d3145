"""A real two-node Slurm cluster on one machine, each node in its own network namespace.

    cluster = start_two_nodes()          # root; `head` (controller + a compute node) and `node2`
    cluster.run(cluster.head, ["sbatch", "-p", cluster.far, "--wrap", "hostname"], env=cluster.env)
    with netns(cluster.head.ns):         # this thread's sockets now live on `head`'s network
        requests.get(f"http://{cluster.head.address}:8000/hub/api/")
    stop_two_nodes(cluster)              # stops the daemons, deletes both namespaces and their files

Layout (addresses from the documentation range 192.0.2.0/24, reachable only between the two):

- ``head`` (``HEAD_ADDRESS``): a network namespace of its own with slurmctld and a slurmd; the
  tests run the hub, the proxy and the marketplace there;
- ``node2`` (``NODE2_ADDRESS``): a second namespace with the second slurmd, joined to ``head`` by
  a veth pair (a link between the machine's own namespace and a new one did not pass traffic here);
- partitions ``debug`` (both nodes, default) and ``far`` (``node2`` only: a job there is on the
  other node for sure).

Each daemon and each command run "on" a node (:meth:`Node.command`) is entered into the node's
network namespace (``nsenter --net``) with a mount and UTS namespace of its own, in which the
node's host name is set and ``/etc/netns/NS/hosts`` (``head``/``node2`` -> their addresses) is
bound over ``/etc/hosts``; ``/sys`` stays the machine's (``ip netns exec`` remounts it, and slurmd
then finds no cgroup tree). The file system is shared, as a cluster's home and software folders
are. The cluster has its own munged (socket in its folder, ``AuthInfo=socket=``), so other test
sessions that stop the machine's munged do not break it.

The test process itself stays in the machine's namespace, which cannot reach the nodes over TCP:
:func:`netns` moves the calling thread's network (``setns``) for HTTP from a test.
"""

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from tests.prereqs import require_program, require_root
from tests.slurmd import PLUGINS, stop_daemons

HEAD_ADDRESS = "192.0.2.11"
NODE2_ADDRESS = "192.0.2.12"
PARTITION = "debug"
FAR = "far"  # node2 only
CTLD_PORT = 6817  # fixed: nothing else listens in these namespaces
SLURMD_PORT = 6818

CONF = """\
ClusterName=deepvre2
SlurmctldHost=head({head})
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={base}/munge/munge.socket
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool/%n
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd-%n.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd-%n.log
{plugins}NodeName=head NodeAddr={head} CPUs={cpus} RealMemory=2000 State=UNKNOWN
NodeName=node2 NodeAddr={node2} CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName={partition} Nodes=head,node2 Default=YES MaxTime=INFINITE State=UP
PartitionName={far} Nodes=node2 MaxTime=INFINITE State=UP
"""

# as a cluster's /etc/hosts: each node's own name is its address, not loopback (a Dask worker on a
# node without a default route falls back to its host name for the address it gives the scheduler)
HOSTS = "127.0.0.1 localhost\n{head} head\n{node2} node2\n"

# the node's host name and /etc/hosts, then the command (run under `unshare --mount --uts`)
_ENTER = 'mount --bind "$1" /etc/hosts && hostname "$2" && shift 2 && exec "$@"'


@dataclass
class Node:
    name: str
    ns: str
    address: str

    def command(self, argv):
        """``argv`` run on this node: its network, its host name, its /etc/hosts."""
        return ["nsenter", f"--net=/run/netns/{self.ns}", "unshare", "--mount", "--uts",
                "sh", "-c", _ENTER, "node", f"/etc/netns/{self.ns}/hosts", self.name, *argv]


@dataclass
class TwoNodes:
    base: str
    conf: str
    head: Node
    node2: Node
    partition: str = PARTITION
    far: str = FAR
    started: list = field(default_factory=list)

    @property
    def env(self):
        return dict(os.environ, SLURM_CONF=self.conf)

    @property
    def nodes(self):
        return [self.head, self.node2]

    def run(self, node, argv, **kwargs):
        """``subprocess.run`` of ``argv`` on ``node`` (SLURM_CONF set unless ``env`` is given)."""
        kwargs.setdefault("env", self.env)
        kwargs.setdefault("timeout", 120)
        return subprocess.run(node.command(argv), **kwargs)

    def popen(self, node, argv, **kwargs):
        kwargs.setdefault("env", self.env)
        return subprocess.Popen(node.command(argv), **kwargs)

    def node_states(self):
        out = self.run(self.head, ["sinfo", "-h", "-N", "-p", self.partition, "-o", "%N %T"],
                       capture_output=True, text=True, timeout=30)
        return dict(line.split() for line in out.stdout.splitlines() if line.strip()) if out.returncode == 0 else {}


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def netns(ns):
    """The calling thread's new sockets (and the processes it starts) in network namespace ``ns``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _make_network(head, node2):
    veth_head, veth_node2 = f"v{head.ns}"[:15], f"v{node2.ns}"[:15]
    _ip("netns", "add", head.ns)
    _ip("netns", "add", node2.ns)
    _ip("link", "add", veth_head, "type", "veth", "peer", "name", veth_node2)
    for node, veth in ((head, veth_head), (node2, veth_node2)):
        _ip("link", "set", veth, "netns", node.ns)
        _ip("-n", node.ns, "addr", "add", f"{node.address}/24", "dev", veth)
        _ip("-n", node.ns, "link", "set", "lo", "up")
        _ip("-n", node.ns, "link", "set", veth, "up")
        os.makedirs(f"/etc/netns/{node.ns}", exist_ok=True)
        with open(f"/etc/netns/{node.ns}/hosts", "w") as f:
            f.write(HOSTS.format(head=head.address, node2=node2.address))


def _remove_network(cluster):
    for node in cluster.nodes:
        subprocess.run(["ip", "netns", "del", node.ns], capture_output=True, timeout=30)  # takes the veth along
        shutil.rmtree(f"/etc/netns/{node.ns}", ignore_errors=True)


def _start_munge(base):
    folder = os.path.join(base, "munge")
    os.makedirs(folder)
    shutil.chown(folder, "munge", "munge")
    if not os.path.exists("/etc/munge/munge.key"):
        subprocess.run(["mungekey", "--create"], check=True)
    socket_path = os.path.join(folder, "munge.socket")
    proc = subprocess.Popen(
        ["runuser", "-u", "munge", "--", "munged", "--foreground", f"--socket={socket_path}",
         f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log", f"--seed-file={folder}/seed",
         "--num-threads=4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while subprocess.run(["munge", "-n", f"--socket={socket_path}"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise TimeoutError("munged of the two-node cluster did not start")
        time.sleep(0.2)
    return proc


def _wait_idle(cluster, timeout=90):
    deadline = time.monotonic() + timeout
    states = {}
    while time.monotonic() < deadline:
        states = cluster.node_states()
        if len(states) == 2 and all(s.startswith(("idle", "mix", "alloc")) for s in states.values()):
            return states
        time.sleep(0.5)
    raise TimeoutError(f"the two Slurm nodes are not idle after {timeout}s (last {states})")


def require_two_nodes():
    """Skip by hand, fail in CI, without root or the programs the cluster needs."""
    require_root()
    for program in ("slurmctld", "slurmd", "munged", "sbatch", "ip", "nsenter", "unshare"):
        require_program(program)


def start_two_nodes():
    """Create both namespaces and start munged, slurmctld and the two slurmd; wait until idle."""
    require_two_nodes()
    tag = secrets.token_hex(2)
    head = Node("head", f"dv{tag}head", HEAD_ADDRESS)
    node2 = Node("node2", f"dv{tag}node2", NODE2_ADDRESS)
    base = tempfile.mkdtemp(prefix="deepvre-slurm2-")
    os.chmod(base, 0o755)  # users' sbatch reads slurm.conf and reaches the munge socket
    cluster = TwoNodes(base, os.path.join(base, "slurm.conf"), head, node2)
    try:
        _make_network(head, node2)
        cluster.started.append(_start_munge(base))
        for sub in ("state", "spool/head", "spool/node2"):
            os.makedirs(os.path.join(base, sub))
        with open(cluster.conf, "w") as f:
            f.write(CONF.format(base=base, head=head.address, node2=node2.address, ctld_port=CTLD_PORT,
                                d_port=SLURMD_PORT, cpus=os.cpu_count() or 2, partition=PARTITION, far=FAR,
                                plugins=PLUGINS))
        with open(os.path.join(base, "daemons.out"), "ab") as log:
            cluster.started.append(cluster.popen(head, ["slurmctld", "-D", "-i", "-f", cluster.conf],
                                                 stdout=log, stderr=log))
            for node in cluster.nodes:
                cluster.started.append(cluster.popen(node, ["slurmd", "-D", "-N", node.name, "-f", cluster.conf],
                                                     stdout=log, stderr=log))
        _wait_idle(cluster)
    except BaseException:
        stop_two_nodes(cluster)
        raise
    return cluster


def stop_two_nodes(cluster):
    """Cancel the jobs, stop the daemons (newest first), delete the namespaces and the folder."""
    if len(cluster.started) > 1:
        jobs = cluster.run(cluster.head, ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
        if jobs.stdout.split():
            cluster.run(cluster.head, ["scancel", "--full", *jobs.stdout.split()], capture_output=True, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = cluster.run(cluster.head, ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
            if out.returncode != 0 or not out.stdout.strip():
                break
            time.sleep(0.5)
    stop_daemons(cluster.started)
    cluster.started = []
    _remove_network(cluster)
    shutil.rmtree(cluster.base, ignore_errors=True)
