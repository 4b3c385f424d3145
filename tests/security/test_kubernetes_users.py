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

from deepvre.pipelines import clusters
from deepvre_hub import kubernetes as k8s
from deepvre_hub import user_namespaces
from tests.kubernetes.cluster_rules import Pod, can, reaches, restricted_violations
from tests.kubernetes.conftest import NAMESPACE, SETTINGS_FILE
from tests.kubernetes.fake_api import OPERATOR_NS, FakeCluster, operator_pods, start

K8S_VERSION = "1.32.0"


def _sa(pod):
    return f"{pod['metadata']['namespace']}/{pod['spec']['serviceAccountName']}"


async def test_each_user_gets_a_namespace_of_their_own_under_pod_security_restricted(k8s_values, monkeypatch, dummy_kubeconfig):
    cluster = FakeCluster()
    names = ["alice", "bob", "Bob.Smith@example.org", "alice-u-x", "a" * 70]
    pods = {name: await start(k8s_values, cluster, name, monkeypatch) for name in names}
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


async def test_a_user_cannot_read_anothers_token_or_touch_their_dask_clusters(k8s_settings, two_users):
    cluster, pods = two_users
    objects = k8s.manifests(k8s_settings) + list(cluster.objects.values())
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


async def test_only_the_owner_reaches_their_dask_scheduler(two_users):
    cluster, pods = two_users
    policies = list(cluster.objects.values())
    net = {}
    for user, pod in pods.items():
        ns = pod["metadata"]["namespace"]
        net[f"{user} server"] = Pod(ns, pod["metadata"]["labels"], pod["spec"])
        spec = clusters.kubernetes_cluster_spec({"kubernetes": {"name": f"{user}-prep"}},
                                                environ={"DEEPVRE_NAMESPACE": ns})
        net[f"{user} scheduler"], net[f"{user} worker"] = operator_pods(spec, ns)
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


async def test_a_namespace_the_hub_did_not_make_is_refused(k8s_values, monkeypatch, dummy_kubeconfig):
    """A user named so that their namespace is one that already exists (the site's own) gets
    nothing bound in it, and no server."""
    cluster = FakeCluster()
    cluster.namespaces[f"{NAMESPACE}-u-mallory"] = {"kubernetes.io/metadata.name": f"{NAMESPACE}-u-mallory"}
    with pytest.raises(user_namespaces.NotOurNamespace, match="not made by deepvre"):
        await start(k8s_values, cluster, "mallory", monkeypatch)
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
