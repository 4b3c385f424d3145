"""Hostile review of Kubernetes mode's one namespace per user (c60c005), offline.

Each test is an attack a hub user (bob, or mallory) found through what deepvre lets them do: Dask
resources in their own namespace (the operator turns them into Deployments, Services and pods)
and their choice of username. They were xfail(strict=True) while the holes were open; each now
holds (docs/security.md, "Kubernetes: one namespace per user", lists them). Helpers come from
tests/kubernetes/fake_api.py (the real KubeSpawner, the hub's hooks, the operator's builders),
tests/kubernetes/cluster_rules.py and tests/security/test_kubernetes_admission.py (the policy
evaluated with cel-python).
"""

import copy
import ipaddress

import pytest

from deepvre_hub import user_namespaces
from tests.kubernetes.cel import denials
from tests.kubernetes.cluster_rules import Pod, _direction_allows, reaches
from tests.kubernetes.conftest import NAMESPACE
from tests.kubernetes.fake_api import OPERATOR_NS, FakeCluster, operator_pods, start
from tests.security.test_kubernetes_admission import crd_pruned, dask_cluster, dask_job, policy


def admitted(obj):
    """What the API server keeps of ``obj`` passes the admission policy."""
    return crd_pruned(obj) == [] and denials(policy(), obj) == []


def _cluster_in(namespace, name="bob-dask", labels=None):
    spec = dask_cluster()
    spec["metadata"].update(name=name, namespace=namespace)
    spec["metadata"].pop("ownerReferences", None)
    if labels:
        spec["metadata"]["labels"] = dict(labels)
    return spec


# ---------------------------------------------------------------- the operator


PWNED = []


def _pwned(where):
    PWNED.append(where)
    return 0


class _Payload:
    """What a hostile scheduler answers: unpickling it calls ``_pwned`` in the reader's process."""

    def __reduce__(self):
        return (_pwned, ("dask-kubernetes operator",))


async def test_the_operator_unpickles_what_a_schedulers_rpc_answers(monkeypatch):
    """Why the operator may not reach the users' Dask RPC port (CRITICAL before): the
    dask-kubernetes operator (rights on pods, deployments and services in every namespace) falls
    back to the Dask RPC when a scheduler's HTTP API answers an error, and distributed unpickles
    any '__Pickled__' frame the peer sends, so a user's own scheduler image runs code in the
    operator. This shows the upstream behaviour; the next test shows the operator cannot get there."""
    from aiohttp import web
    from dask_kubernetes.operator.controller import controller as op
    from distributed.core import Server
    from distributed.protocol.serialize import ToPickle

    async def adaptive_target(*args, **kwargs):  # bob's "scheduler": any image and command he likes
        return ToPickle(_Payload())

    async def no_http_api(request):  # makes the operator fall back to the RPC
        return web.Response(status=404)

    scheduler = Server({"adaptive_target": adaptive_target})
    await scheduler.listen("tcp://127.0.0.1:0")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", no_http_api)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    http_port = runner.addresses[0][1]

    async def scheduler_address(name, namespace, port_name="tcp-comm", allow_external=False):
        # what the operator resolves from bob's scheduler Service (bob-dask-scheduler.<bob's ns>)
        return f"http://127.0.0.1:{http_port}" if port_name == "http-dashboard" else scheduler.address

    monkeypatch.setattr(op, "get_scheduler_address", scheduler_address)
    PWNED.clear()
    try:
        # what a DaskAutoscaler in bob's namespace makes the operator call every few seconds
        await op.get_desired_workers("bob-dask-scheduler", f"{NAMESPACE}-u-bob")
    finally:
        await scheduler.close()
        await runner.cleanup()
    assert PWNED == ["dask-kubernetes operator"], "the operator no longer unpickles RPC answers: revisit operator_policy"


async def test_the_operator_reaches_users_schedulers_by_http_only(k8s_settings, two_users):
    """The operator's NetworkPolicy (manifests.yaml) lets it reach a user's scheduler on its HTTP
    API (8787, JSON) and not on the Dask RPC (8786), and deepvre's schedulers serve that API, so
    the operator has no reason to fall back."""
    from deepvre.pipelines.clusters import kubernetes_cluster_spec
    from deepvre_hub import kubernetes as k8s

    cluster, pods = two_users
    alice_ns = pods["alice"]["metadata"]["namespace"]
    spec = kubernetes_cluster_spec({"kubernetes": {"name": "alice-prep"}}, environ={"DEEPVRE_NAMESPACE": alice_ns})
    scheduler, _ = operator_pods(spec, alice_ns)
    operator = Pod(OPERATOR_NS, {"app.kubernetes.io/name": "dask-kubernetes-operator"})
    policies = [*cluster.objects.values(), *(o for o in k8s.manifests(k8s_settings) if o["kind"] == "NetworkPolicy")]
    assert reaches(policies, cluster.namespaces, operator, scheduler, 8787)
    assert not reaches(policies, cluster.namespaces, operator, scheduler, 8786)
    env = {e["name"]: e["value"] for e in spec["spec"]["scheduler"]["spec"]["containers"][0]["env"]}
    assert "distributed.http.scheduler.api" in env["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"]


# ---------------------------------------------------------------- the scheduler Service


def _hijack_alices_server_address(obj, service_path):
    """bob's scheduler Service claims alice's pod IP as an externalIP on 8888 (CVE-2020-8554): kube-proxy
    then sends what goes to that address, the proxy's requests to alice's server, to bob's pod."""
    service = obj
    for part in service_path.split("."):
        service = service[part]
    service["externalIPs"] = ["10.244.3.17"]  # alice's pod (a /24 of the pod network works as well)
    service["ports"] = [{"name": "tcp-comm", "port": 8888, "targetPort": 8888, "protocol": "TCP"}]


async def test_a_users_scheduler_service_cannot_take_another_users_server_address(two_users, k8s_values):
    from dask_kubernetes.operator.controller import controller as op

    cluster, pods = two_users
    bob_ns = pods["bob"]["metadata"]["namespace"]
    attack = _cluster_in(bob_ns, labels={"component": "singleuser-server"})
    _hijack_alices_server_address(attack, "spec.scheduler.service")
    job = dask_job()
    _hijack_alices_server_address(job, "spec.cluster.spec.scheduler.service")

    service = op.build_scheduler_service_spec("bob-dask", attack["spec"]["scheduler"]["service"], {}, {})
    assert service["spec"]["externalIPs"] == ["10.244.3.17"]  # what the operator creates, as bob wrote it
    scheduler, _ = operator_pods(attack, bob_ns)
    proxy = Pod(NAMESPACE, {"component": "proxy", "app": "jupyterhub"})
    proxy_policy = {"kind": "NetworkPolicy", "metadata": {"name": "proxy", "namespace": NAMESPACE},
                    "spec": {"podSelector": {"matchLabels": {"component": "proxy"}}, "policyTypes": ["Egress"],
                             "egress": k8s_values["proxy"]["chp"]["networkPolicy"]["egress"]}}
    policies = [*cluster.objects.values(), proxy_policy]
    delivered = reaches(policies, cluster.namespaces, proxy, scheduler, 8888)
    assert not (admitted(attack) and delivered), "bob's Service takes alice's address and the proxy's requests reach him"
    assert not admitted(job), "the same Service through a DaskJob"


@pytest.mark.parametrize("service", [
    {"type": "NodePort"},
    {"type": "LoadBalancer", "loadBalancerSourceRanges": ["0.0.0.0/0"]},
    {"type": "ExternalName", "externalName": "hub.deepvre.svc.cluster.local"},
], ids=["node-port", "load-balancer", "external-name"])
def test_a_users_scheduler_service_stays_a_cluster_ip(service):
    obj = dask_cluster()
    obj["spec"]["scheduler"]["service"].update(service)
    assert not admitted(obj)


# ---------------------------------------------------------------- labels the network policies trust


async def test_a_dask_pod_labelled_as_the_operator_is_not_let_into_another_users_scheduler(two_users):
    cluster, pods = two_users
    alice_ns, bob_ns = (pods[u]["metadata"]["namespace"] for u in ("alice", "bob"))
    alice_scheduler, _ = operator_pods(_cluster_in(alice_ns, "alice-dask"), alice_ns)
    forged = _cluster_in(bob_ns, labels={"app.kubernetes.io/name": "dask-kubernetes-operator"})
    _, bob_worker = operator_pods(forged, bob_ns)
    let_in = _direction_allows(list(cluster.objects.values()), "Ingress", alice_scheduler, bob_worker, 8786,
                               cluster.namespaces)
    assert not (admitted(forged) and let_in), "alice's scheduler takes bob's worker for the operator"


# ---------------------------------------------------------------- scheduling and resources


@pytest.mark.parametrize("attack", [
    {"priorityClassName": "system-node-critical"},
    {"tolerations": [{"operator": "Exists"}],
     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
         {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["control-plane-1"]}]}]}}}},
], ids=["preempt-everyone", "any-node-by-name"])
def test_dask_pods_cannot_preempt_others_or_pick_any_node(attack):
    obj = dask_cluster()
    obj["spec"]["worker"]["spec"].update(copy.deepcopy(attack))
    assert not admitted(obj)


async def test_a_users_namespace_caps_the_gpus_and_pods_their_dask_clusters_take(two_users):
    """A DaskCluster of 1000 workers with 8 GPUs each is admitted (its pod specs are fine), but the
    namespace's ResourceQuota caps what the operator can make of it."""
    obj = dask_cluster()
    obj["spec"]["worker"]["replicas"] = 1000
    obj["spec"]["worker"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "8"}}
    assert admitted(obj)
    cluster, pods = two_users
    bob_ns = pods["bob"]["metadata"]["namespace"]
    hard = cluster.objects[("ResourceQuota", bob_ns, "deepvre-user-quota")]["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "2"  # the largest profile's
    assert hard["pods"] == "20" and hard["services.loadbalancers"] == "0" and hard["services.nodeports"] == "0"
    assert ("LimitRange", bob_ns, "deepvre-user-quota") in cluster.objects  # quota on cpu/memory needs defaults


def test_dask_pods_cannot_ask_the_gpu_runtime_for_every_gpu():
    obj = dask_cluster()
    obj["spec"]["worker"]["spec"]["containers"][0].setdefault("env", []).append(
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"})
    assert not admitted(obj)


def test_dask_pods_cannot_bind_a_persistent_volume_by_name():
    obj = dask_cluster()
    obj["spec"]["worker"]["spec"]["volumes"] = [{"name": "v", "ephemeral": {"volumeClaimTemplate": {"spec": {
        "volumeName": "pv-shared-project-data", "storageClassName": "", "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}}}}]
    assert not admitted(obj)


# ---------------------------------------------------------------- network egress


def test_internet_egress_leaves_out_metadata_and_carrier_grade_nat():
    for policy_obj in (user_namespaces.server_policy("ns", NAMESPACE, [8081]), user_namespaces.dask_policy("ns", OPERATOR_NS)):
        blocks = [peer["ipBlock"] for rule in policy_obj["spec"]["egress"] for peer in rule.get("to", [])
                  if "ipBlock" in peer]
        for address in ("100.100.100.200", "100.64.0.10"):
            ip = ipaddress.ip_address(address)
            open_to = [b for b in blocks if ip in ipaddress.ip_network(b["cidr"])
                       and not any(ip in ipaddress.ip_network(e) for e in b.get("except", []))]
            assert not open_to, (policy_obj["metadata"]["name"], address)


# ---------------------------------------------------------------- namespaces and usernames


# Two names KubeSpawner's safe slug maps to one namespace: longer than 48 characters, so the slug is
# the first 37 characters plus 8 hex digits of sha256 (32 bits). Found by a birthday search of
# ~73,000 names (3 s); for a given victim's name (an e-mail address, any name with '.', '@', '_',
# '--' or uppercase) a second preimage is 2**32 hashes: minutes on a GPU. NativeAuthenticator
# accepts both names (no length limit, any character but ',', ' ', '/').
VICTIM = "mallory" * 8 + "33481"
ATTACKER = "mallory" * 8 + "73151"


async def test_two_users_never_share_a_namespace(k8s_values, monkeypatch, dummy_kubeconfig):
    cluster = FakeCluster()
    victim = await start(k8s_values, cluster, VICTIM, monkeypatch)
    try:
        attacker = await start(k8s_values, cluster, ATTACKER, monkeypatch)
    except user_namespaces.NotOurNamespace:
        return  # refused: the namespace is the victim's
    assert attacker["metadata"]["namespace"] != victim["metadata"]["namespace"]


async def test_nothing_is_created_in_a_namespace_the_hub_did_not_make(k8s_values, monkeypatch, dummy_kubeconfig):
    import kmock
    from kmock._internal import parsing

    from tests.kubernetes.conftest import make_spawner
    from tests.kubernetes.test_kmock_spawn import RESOURCES

    original = parsing.parse_path

    def parse_path(path):  # as tests/kubernetes/test_kmock_spawn.py's namespaces_resource
        parts = path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
            return parsing.ParsedPath("", "v1", "namespaces", None, parts[3] if len(parts) == 4 else None, None)
        return original(path)

    monkeypatch.setattr(parsing, "parse_path", parse_path)
    foreign = f"{NAMESPACE}-u-mallory"
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
        for resource in RESOURCES:
            emulator.resources[resource] = {}
        emulator.objects["v1/namespaces", None, foreign] = {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": foreign, "labels": {"kubernetes.io/metadata.name": foreign}}}
        spawner = await make_spawner(k8s_values, user="mallory", k8s_api_host=str(server.url).rstrip("/"),
                                     start_timeout=30, http_timeout=30)
        assert spawner.namespace == foreign
        with pytest.raises(user_namespaces.NotOurNamespace):
            await spawner.run_pre_spawn_hook()  # what the hub runs before spawner.start()
            await spawner.start()
        made = [key for key, obj in emulator.objects.items() if key[1] == foreign and not obj.deleted]
    assert made == [], made
