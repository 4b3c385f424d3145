"""A Kubernetes API in memory for the hub's user-namespace calls, and the hub's side of a spawn
(KubeSpawner's namespace, then the hook the chart runs), for offline tests."""

from kubernetes_asyncio.client import V1Namespace, V1ObjectMeta
from kubernetes_asyncio.client.rest import ApiException

from deepvre_hub import user_namespaces
from tests.kubernetes.conftest import NAMESPACE, make_spawner, serialize

OPERATOR_NS = "dask-operator"


class FakeCluster:
    """The API calls the hub makes for a user's namespace, answered from memory."""

    def __init__(self):
        self.namespaces = {NAMESPACE: {"kubernetes.io/metadata.name": NAMESPACE},
                           OPERATOR_NS: {"kubernetes.io/metadata.name": OPERATOR_NS}}
        self.annotations = {}
        self.objects = {}

    def __call__(self, _api_name):
        return self

    async def create_namespace(self, body):
        body = serialize(body)
        name = body["metadata"]["name"]
        if name in self.namespaces:
            raise ApiException(status=409)
        self.namespaces[name] = {**body["metadata"].get("labels", {}), "kubernetes.io/metadata.name": name}
        self.annotations[name] = body["metadata"].get("annotations", {})

    async def read_namespace(self, name):
        if name not in self.namespaces:
            raise ApiException(status=404)
        return V1Namespace(metadata=V1ObjectMeta(name=name, labels=self.namespaces[name],
                                                 annotations=self.annotations.get(name)))

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


async def start(values, cluster, user, monkeypatch):
    """What the hub does for ``user``'s spawn up to the pod, with the hooks the chart's
    extraConfig sets (tests/kubernetes/conftest.py): the pre-spawn check, KubeSpawner's
    namespace, then the pod hook. Returns the pod (JSON) as the API server would get it."""
    monkeypatch.setattr(user_namespaces, "_api", cluster)
    spawner = await make_spawner(values, user=user)
    spawner.api = cluster
    await spawner.run_pre_spawn_hook()
    await spawner._ensure_namespace()
    pod = serialize(await spawner.modify_pod_hook(spawner, await spawner.get_pod_manifest()))
    pod["metadata"]["namespace"] = spawner.namespace  # KubeSpawner posts it to that namespace
    return pod


def operator_pods(cluster_spec, namespace):
    """The scheduler and worker pods the dask-kubernetes operator makes from ``cluster_spec``."""
    from dask_kubernetes.operator.controller import controller as op

    from tests.kubernetes.cluster_rules import Pod

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
