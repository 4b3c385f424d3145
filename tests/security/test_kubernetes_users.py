"""Kubernetes mode, tried as a second user (offline: no API server here).

Issue 13's critical findings: every user's pod ran as one ServiceAccount that could list every
pod (each carrying its user's hub token in its env) and create or patch anyone's DaskClusters
in one shared namespace. Now each user has a namespace of their own (KubeSpawner's
``enable_user_namespaces``), labelled Pod Security "restricted", where the hub binds the users'
ClusterRole to that namespace's ServiceAccount only. The pods and namespaces come from the real
KubeSpawner configured from the rendered values, the namespace's objects from the hook the chart
runs in the hub, the Dask pods from the operator's own builders; RBAC, NetworkPolicy and Pod
Security are judged by tests/kubernetes/cluster_rules.py (Kubernetes' documented semantics).
"""

import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio.client import V1Namespace, V1ObjectMeta
from kubernetes_asyncio.client.rest import ApiException
from traitlets.config import Config

from deepvre.pipelines import clusters
from deepvre_hub import kubernetes as k8s
from deepvre_hub import user_namespaces
from deepvre_hub.settings import validate_settings
from tests.kubernetes.cluster_rules import Pod, can, reaches, restricted_violations
from tests.kubernetes.conftest import NAMESPACE, SETTINGS_FILE, make_spawner, serialize

K8S_VERSION = "1.32.0"
OPERATOR_NS = "dask-operator"


class FakeCluster:
    """The API calls the hub makes for a user's namespace, answered from memory."""

    def __init__(self):
        self.namespaces = {NAMESPACE: {"kubernetes.io/metadata.name": NAMESPACE},
                           OPERATOR_NS: {"kubernetes.io/metadata.name": OPERATOR_NS}}
        self.objects = {}

    def __call__(self, _api_name):
        return self

    async def create_namespace(self, body):
        body = serialize(body)
        name = body["metadata"]["name"]
        if name in self.namespaces:
            raise ApiException(status=409)
        self.namespaces[name] = {**body["metadata"].get("labels", {}), "kubernetes.io/metadata.name": name}

    async def read_namespace(self, name):
        if name not in self.namespaces:
            raise ApiException(status=404)
        return V1Namespace(metadata=V1ObjectMeta(name=name, labels=self.namespaces[name]))

    def __getattr__(self, method):
        if not method.startswith(("create_namespaced_", "replace_namespaced_")):
            raise AttributeError(method)

        async def call(*args):
            *_, ns, body = args
            key = (body["kind"], ns, body["metadata"]["name"])
            if method.startswith("create") and key in self.objects:
                raise ApiException(status=409)
            self.objects[key] = body
        return call


@pytest.fixture(scope="module")
def settings():
    return validate_settings(yaml.safe_load(SETTINGS_FILE.read_text()), source=SETTINGS_FILE)


@pytest.fixture(scope="module")
def values(settings):
    return k8s.z2jh_values(settings)


def _hub_config(values):
    c = Config()
    for name, code in values["hub"]["extraConfig"].items():
        if name == "deepvre-user-namespaces":
            exec(code, {"c": c})  # what the chart runs in the hub
    return c


async def start(values, cluster, user, monkeypatch):
    """What the hub does for ``user``'s spawn up to the pod: KubeSpawner's namespace, then the
    chart's hook. Returns the pod (JSON) as the API server would get it."""
    monkeypatch.setattr(user_namespaces, "_api", cluster)
    spawner = await make_spawner(values, user=user)
    spawner.api = cluster
    await spawner._ensure_namespace()
    pod = serialize(await _hub_config(values).KubeSpawner.modify_pod_hook(spawner, await spawner.get_pod_manifest()))
    pod["metadata"]["namespace"] = spawner.namespace  # KubeSpawner posts it to that namespace
    return pod


@pytest.fixture
async def two_users(values, monkeypatch, dummy_kubeconfig):
    cluster = FakeCluster()
    pods = {user: await start(values, cluster, user, monkeypatch) for user in ("alice", "bob")}
    return cluster, pods


def _sa(pod):
    return f"{pod['metadata']['namespace']}/{pod['spec']['serviceAccountName']}"


async def test_each_user_gets_a_namespace_of_their_own_under_pod_security_restricted(values, monkeypatch, dummy_kubeconfig):
    cluster = FakeCluster()
    names = ["alice", "bob", "Bob.Smith@example.org", "alice-u-x", "a" * 70]
    pods = {name: await start(values, cluster, name, monkeypatch) for name in names}
    spaces = {pod["metadata"]["namespace"] for pod in pods.values()}
    assert len(spaces) == len(names) and NAMESPACE not in spaces
    assert pods["alice"]["metadata"]["namespace"] == f"{NAMESPACE}-u-alice"
    for name, pod in pods.items():
        ns = pod["metadata"]["namespace"]
        labels = cluster.namespaces[ns]
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": ns, "labels": labels}}, K8S_VERSION, strict=True)
        assert len(ns) <= 63
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["deepvre.org/user-namespace"] == "true"
        assert pod["spec"]["serviceAccountName"] == "deepvre-user"
        # what the hub put there is in that namespace and nowhere else
        assert {key[1] for key in cluster.objects if key[1] != NAMESPACE} >= {ns}
        assert restricted_violations(pod["spec"]) == [], name  # the user's pod passes its namespace's level
    for obj in cluster.objects.values():
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for obj in k8s.manifests(yaml.safe_load(SETTINGS_FILE.read_text())):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


async def test_a_user_cannot_read_anothers_token_or_touch_their_dask_clusters(settings, two_users):
    cluster, pods = two_users
    objects = k8s.manifests(settings) + list(cluster.objects.values())
    alice, bob = pods["alice"], pods["bob"]
    alice_ns, bob_ns = alice["metadata"]["namespace"], bob["metadata"]["namespace"]
    env = {e["name"] for e in alice["spec"]["containers"][0]["env"]}
    assert "JUPYTERHUB_API_TOKEN" in env  # whoever reads alice's pod reads her token

    # each user's pod runs their own Dask clusters in their own namespace
    for pod, ns in ((alice, alice_ns), (bob, bob_ns)):
        for verb in ("create", "patch", "delete"):
            assert can(objects, _sa(pod), verb, "daskclusters", ns, group="kubernetes.dask.org")
        assert can(objects, _sa(pod), "get", "pods", ns)
    # and nothing of anyone else's
    for resource, group in (("pods", ""), ("services", ""), ("daskclusters", "kubernetes.dask.org"),
                            ("daskjobs", "kubernetes.dask.org"), ("daskworkergroups", "kubernetes.dask.org")):
        for verb in ("get", "list", "watch", "create", "patch", "update", "delete"):
            assert not can(objects, _sa(bob), verb, resource, alice_ns, group=group), (verb, resource)
            assert not can(objects, _sa(bob), verb, resource, NAMESPACE, group=group), (verb, resource)
    # nor, even in their own namespace, what would step around the hub and the operator
    for verb, resource in (("get", "secrets"), ("list", "secrets"), ("create", "pods"), ("create", "pods/exec"),
                           ("create", "pods/portforward"), ("create", "pods/attach"), ("create", "rolebindings"),
                           ("patch", "namespaces"), ("create", "persistentvolumeclaims")):
        group = "rbac.authorization.k8s.io" if resource == "rolebindings" else ""
        assert not can(objects, _sa(bob), verb, resource, bob_ns, group=group), (verb, resource)
    # the hub may bind the users' ClusterRole, and no other
    hub = f"{NAMESPACE}/hub"
    assert can(objects, hub, "bind", "clusterroles", alice_ns, group="rbac.authorization.k8s.io", name="deepvre-user")
    assert not can(objects, hub, "bind", "clusterroles", alice_ns, group="rbac.authorization.k8s.io", name="cluster-admin")


def _operator_pods(cluster_spec, namespace):
    """The scheduler and worker pods the dask-kubernetes operator makes from ``cluster_spec``."""
    from dask_kubernetes.operator.controller import controller as op

    class Meta:
        def __init__(self, metadata):
            self.labels = metadata.get("labels", {})

    name, labels = cluster_spec["metadata"]["name"], op._get_labels(Meta(cluster_spec["metadata"]))
    scheduler = op.build_scheduler_deployment_spec(name, cluster_spec["spec"]["scheduler"]["spec"], {}, labels)
    group = op.build_default_worker_group_spec(name, cluster_spec["spec"]["worker"], {}, labels)
    worker = op.build_worker_deployment_spec(group["metadata"]["name"], namespace, name, "x1",
                                             group["spec"]["worker"]["spec"], {}, op._get_labels(Meta(group["metadata"])))
    return [Pod(namespace, d["spec"]["template"]["metadata"]["labels"], d["spec"]["template"]["spec"])
            for d in (scheduler, worker)]


async def test_only_the_owner_reaches_their_dask_scheduler(two_users):
    cluster, pods = two_users
    policies = list(cluster.objects.values())
    net = {}
    for user, pod in pods.items():
        ns = pod["metadata"]["namespace"]
        net[f"{user} server"] = Pod(ns, pod["metadata"]["labels"], pod["spec"])
        spec = clusters.kubernetes_cluster_spec({"kubernetes": {"name": f"{user}-prep"}},
                                                environ={"DEEPVRE_NAMESPACE": ns})
        net[f"{user} scheduler"], net[f"{user} worker"] = _operator_pods(spec, ns)
    net["hub"] = Pod(NAMESPACE, {"component": "hub", "app": "jupyterhub"})
    net["proxy"] = Pod(NAMESPACE, {"component": "proxy", "app": "jupyterhub"})
    net["operator"] = Pod(OPERATOR_NS, {"app.kubernetes.io/name": "dask-kubernetes-operator"})
    spaces = cluster.namespaces

    for target, port in (("alice scheduler", 8786), ("alice scheduler", 8787), ("alice worker", None)):
        for source, expected in (("alice server", True), ("alice worker", True), ("operator", True),
                                 ("bob server", False), ("bob worker", False), ("bob scheduler", False)):
            assert reaches(policies, spaces, net[source], net[target], port) is expected, (source, target, port)
    # users' servers: the proxy and the hub get in, other users do not
    for source, expected in (("proxy", True), ("hub", True), ("bob server", False), ("bob worker", False)):
        assert reaches(policies, spaces, net[source], net["alice server"], 8888) is expected, source
    assert reaches(policies, spaces, net["alice server"], net["hub"], k8s.HUB_API_PORT)
    # the Dask pods of a user pass the namespace's Pod Security level
    for name in ("alice scheduler", "alice worker"):
        assert restricted_violations(net[name].spec) == [], name


def test_pod_security_checklist_catches_a_privileged_pod():
    """The restricted checklist itself: a pod an attacker would want fails it."""
    pod = {"hostPID": True, "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
           "containers": [{"name": "x", "securityContext": {"privileged": True}}]}
    found = restricted_violations(pod)
    assert "hostPID" in found and any("hostPath" in v for v in found) and "x: privileged" in found


async def test_a_namespace_the_hub_did_not_make_is_refused(values, monkeypatch, dummy_kubeconfig):
    """A user named so that their namespace is one that already exists (the site's own) gets
    nothing bound in it, and no server."""
    cluster = FakeCluster()
    cluster.namespaces[f"{NAMESPACE}-u-mallory"] = {"kubernetes.io/metadata.name": f"{NAMESPACE}-u-mallory"}
    with pytest.raises(user_namespaces.NotOurNamespace, match="not made by deepvre"):
        await start(values, cluster, "mallory", monkeypatch)
    assert cluster.objects == {}


def test_the_shared_namespace_of_before_let_any_user_read_every_pod():
    """The attack on the layout this replaced (one namespace, one ServiceAccount for all users,
    bound to the same rules): the evaluator grants it, so the tests above would have failed."""
    before = [
        {"kind": "Role", "metadata": {"name": "deepvre-user", "namespace": NAMESPACE},
         "rules": k8s.user_cluster_role()["rules"]},
        {"kind": "RoleBinding", "metadata": {"name": "deepvre-user", "namespace": NAMESPACE},
         "roleRef": {"kind": "Role", "name": "deepvre-user"},
         "subjects": [{"kind": "ServiceAccount", "name": "deepvre-user", "namespace": NAMESPACE}]},
    ]
    everyone = f"{NAMESPACE}/deepvre-user"  # bob's pod and alice's pod alike
    assert can(before, everyone, "list", "pods", NAMESPACE)
    assert can(before, everyone, "patch", "daskclusters", NAMESPACE, group="kubernetes.dask.org")
