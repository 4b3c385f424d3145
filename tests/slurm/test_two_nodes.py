"""deepvre on a real two-node Slurm cluster (tests/slurmnodes.py): work lands on the second node.

The controller, the first compute node (and, for the hub test, the hub, proxy and marketplace)
live in the network namespace ``head``; the second compute node in ``node2``; only a veth pair
joins them, so nothing here works through loopback. Partition ``far`` holds node2 alone.

On node2: a ``deepvre run --backend slurm`` job, a Dask ``SLURMCluster`` worker preprocessing images
for a scheduler on head, and a user's server of a hub on head (``hub.hub_ip`` = head's address)
that calls the hub API and the marketplace from its kernel, reached by the hub and the proxy. A hub
left on loopback is refused at start-up, naming ``hub.hub_ip``. The test talks HTTP to the hub
from a thread in head's network (``tests.slurmnodes.netns``) and runs commands there with
``Node.command``. About 90 s.
"""

import json
import os
import re
import secrets
import sys
import textwrap
import time

import pytest
import yaml

from tests.hub.hubprocess import HubProcess, run_code, wait_for
from tests.prereqs import require_proxy
from tests.slurmnodes import CTLD_PORT, netns, start_two_nodes, stop_two_nodes

pytestmark = pytest.mark.slurm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEEPVRE = os.path.join(os.path.dirname(sys.executable), "deepvre")
NOTEBOOKS = os.path.join(REPO, "tests", "runs", "notebooks")


@pytest.fixture(scope="module")
def cluster():
    nodes = start_two_nodes()
    yield nodes
    stop_two_nodes(nodes)


def job_fields(cluster, job):
    """``scontrol show job`` of ``job`` as a dict (kept by slurmctld for a while after it ends)."""
    out = cluster.run(cluster.head, ["scontrol", "show", "job", "-o", job], capture_output=True, text=True,
                      check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def test_the_cluster_has_two_nodes_on_their_own_addresses(cluster):
    assert cluster.node_states().keys() == {"head", "node2"}
    out = cluster.run(cluster.head, ["srun", "-p", cluster.far, "sh", "-c", "hostname; hostname -I"],
                      capture_output=True, text=True, check=True).stdout.split()
    assert out == ["node2", cluster.node2.address]
    # from node2, the controller answers at head's address, and nothing at loopback: loopback is the node's own
    probe = ("import socket\n"
             f"for address in ('127.0.0.1', {cluster.head.address!r}):\n"
             "    try:\n"
             f"        socket.create_connection((address, {CTLD_PORT}), 5).close(); print('open')\n"
             "    except OSError:\n"
             "        print('closed')\n")
    out = cluster.run(cluster.head, ["srun", "-p", cluster.far, sys.executable, "-c", probe], capture_output=True,
                      text=True, check=True).stdout.split()
    assert out == ["closed", "open"]


def test_deepvre_run_on_slurm_lands_on_the_second_node(cluster, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"profiles": [
        {"slug": "far", "display_name": "Second node", "cpu": 1, "memory": "200M", "walltime": "00:10:00",
         "partition": cluster.far}]}))
    runs_dir = tmp_path / "runs"
    env = dict(cluster.env, DEEPVRE_RUNS_DIR=str(runs_dir))
    env.pop("DEEPVRE_SETTINGS", None)
    done = cluster.run(cluster.head, [DEEPVRE, "run", os.path.join(NOTEBOOKS, "metrics.ipynb"), "-p", "a", "5",
                                      "--backend", "slurm", "--profile", "far", "--settings", str(settings), "--json"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(done.stdout)[0]
    status = json.loads((runs_dir / run["id"] / "status.json").read_text())
    assert status["state"] == "done" and status["backend"] == "slurm", status
    # the worker writes "done" before its batch job has exited: slurmctld says COMPLETED a moment later
    deadline = time.monotonic() + 60
    job = job_fields(cluster, status["slurm_job_id"])
    while job["JobState"] in ("RUNNING", "COMPLETING") and time.monotonic() < deadline:
        time.sleep(1)
        job = job_fields(cluster, status["slurm_job_id"])
    assert (job["JobState"], job["Partition"], job["NodeList"]) == ("COMPLETED", cluster.far, "node2")
    metrics = json.loads((runs_dir / run["id"] / "metrics.json").read_text())
    assert metrics["score"] == 5 * 2.0 + 2


def test_a_slurm_cluster_worker_on_the_second_node_preprocesses_images(cluster, tmp_path):
    from tests.pipelines.data import class_folders

    images = class_folders(str(tmp_path / "in"), n_per_class=4, corrupt=0)
    out = tmp_path / "out"
    settings = {"workers": 1, "slurm": {"queue": cluster.far, "cores": 1, "memory": "1GB", "walltime": "00:10:00",
                                        "host": cluster.head.address, "python": sys.executable,
                                        "local_directory": str(tmp_path / "w"),
                                        "log_directory": str(tmp_path / "logs")}}
    code = textwrap.dedent(f"""
        import json, socket
        from deepvre.pipelines import clusters
        from deepvre.pipelines.run import preprocess
        with clusters.open_client("slurm", settings={settings!r}) as (client, _):
            hosts = client.run(socket.gethostname)
            result = preprocess("images", {images!r}, {str(out)!r}, {{"size": "8"}}, client=client, progress=False)
        print(json.dumps({{"hosts": hosts, "n": result.manifest["splits"]["train"]["n"]}}))
    """)
    done = cluster.run(cluster.head, [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(answer["hosts"].values()) == ["node2"]
    assert all(address.startswith(f"tls://{cluster.node2.address}:") for address in answer["hosts"])
    assert answer["n"] > 0
    assert (out / "manifest.json").exists()


def test_a_dask_scheduler_on_loopback_is_refused_before_any_job(cluster, tmp_path):
    settings = {"workers": 1, "slurm": {"queue": cluster.far, "host": "127.0.0.1", "python": sys.executable,
                                        "log_directory": str(tmp_path / "logs")}}
    code = ("from deepvre.pipelines import clusters\n"
            f"with clusters.open_client('slurm', settings={settings!r}):\n"
            "    pass\n")
    done = cluster.run(cluster.head, [sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert ("ValueError: dask.slurm.host: the workers would run on Slurm nodes other than this machine (node2), "
            "but the scheduler would listen on loopback (127.0.0.1)") in done.stderr
    assert not (tmp_path / "logs").exists()  # no job was submitted


# ---------------------------------------------------------------- a hub on `head`, a server on node2


def hub_settings(cluster, **hub):
    return {"mode": "slurm", "hub": hub,
            "profiles": [{"slug": "far", "display_name": "Second node", "cpu": 1, "memory": "300M",
                          "walltime": "00:30:00", "partition": cluster.far, "default": True}],
            "slurm": {"poll_interval": 2, "start_timeout": 180}}


def head_hub(cluster, settings, folder):
    """A hub run on `head` (HubProcess keeps a root hub's state in a folder of its own)."""
    return HubProcess(settings, folder / "state", env={"SLURM_CONF": cluster.conf}, prefix=cluster.head.command([]))


@pytest.fixture(scope="module")
def hub(cluster, tmp_path_factory):
    require_proxy()
    process = head_hub(cluster, hub_settings(cluster, hub_ip=cluster.head.address), tmp_path_factory.mktemp("hub2"))
    with netns(cluster.head.ns):  # the test talks to the hub from `head`'s network
        try:
            process.start()
        except BaseException:
            process.teardown()
            raise
    yield process
    with netns(cluster.head.ns):
        process.teardown()


def test_loopback_hub_with_two_nodes_is_refused_at_start_up(cluster, tmp_path):
    process = head_hub(cluster, hub_settings(cluster), tmp_path)
    with netns(cluster.head.ns), pytest.raises(RuntimeError, match="the hub exited with"):
        process.start(timeout=90)
    assert ("deepvre: hub.hub_ip: the users' servers run on Slurm nodes other than this machine (node2), but the "
            "hub API and the marketplace would listen on loopback (127.0.0.1)") in process.log_text()
    process.teardown()


def test_a_server_on_the_second_node_reaches_the_hub_and_the_marketplace(cluster, hub):
    name = f"two{secrets.token_hex(3)}"
    with netns(cluster.head.ns):
        admin = hub.login(hub.admin, hub.admin_password)
        session, token = hub.approved_user(admin, name, "correct-horse-" + secrets.token_hex(4))
        hub.spawn(token, name, profile="far", timeout=240)
        job = cluster.run(cluster.head, ["squeue", "-h", "-u", name, "-o", "%i %T %P %N"], capture_output=True,
                          text=True, check=True).stdout.split()
        assert job[1:] == ["RUNNING", cluster.far, "node2"], job
        model = hub.server_model(token, name)
        assert model["ready"] and model["url"] == f"/user/{name}/"
        # the proxy (on head) reaches the server (on node2), with the browser's cookie after OAuth
        assert session.get(hub.server_url(name), timeout=60).status_code == 200
        # from the kernel on node2: the hub API (as the user) and the marketplace (its client, over HTTP)
        out = run_code(hub.server_url(name), token, (
            "import os, socket, requests\n"
            "from deepvre.market.client import connect\n"
            "api = os.environ['JUPYTERHUB_API_URL']\n"
            "me = requests.get(api + '/user', headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']},\n"
            "                  timeout=30).json()['name']\n"
            "market = connect()\n"
            "print(socket.gethostname(), os.environ['SLURM_JOB_ID'], api, me,\n"
            "      os.environ['DEEPVRE_MARKET_URL'], type(market).__name__, len(market.search()))"
        ))
        host, job_id, api_url, me, market_url, client, _ = out.split()
        address = cluster.head.address
        assert (host, job_id, me, client) == ("node2", job[0], name, "HTTPMarket")
        assert api_url == f"http://{address}:{hub.settings['hub']['hub_port']}/hub/api"
        assert market_url.startswith(f"http://{address}:") and market_url.endswith("/services/marketplace/")
        hub.stop_server(token, name)
        wait_for(lambda: not cluster.run(cluster.head, ["squeue", "-h", "-j", job[0], "-t", "PD,R,CG"],
                                         capture_output=True, text=True).stdout.strip(), 60, f"job {job[0]} to end")
