"""Kubernetes mode: one namespace per hub user, and what the hub puts in it.

KubeSpawner (``enable_user_namespaces``) creates ``<hub namespace>-u-<user>`` with the labels
below: Pod Security Admission "restricted" and ``deepvre.org/user-namespace``, which the
admission policy (``admission.py``) and the hub's network policies select on, and the
annotation ``deepvre.org/username`` (the unescaped hub name: two names KubeSpawner slugs alike
never share a namespace). Before it creates the user's pod, the hub applies
``namespace_objects``: the ServiceAccount the pod runs as, its RoleBinding to the ``deepvre-user``
ClusterRole (Dask resources, reading pods and services, in this namespace only), the
NetworkPolicies for the server and Dask pods, and a ResourceQuota with a LimitRange.

So a user's token, pods, PVCs and Dask clusters sit in a namespace no other user has rights in.
"""

from .admission import USER_NAMESPACE_LABEL


def namespace_template(hub_namespace):
    """KubeSpawner's ``user_namespace_template``: ``<hub namespace>-u-<user>`` (the ``-u-`` keeps
    user namespaces apart from the site's own ``<hub namespace>-*`` ones)."""
    return f"{hub_namespace}-u-{{username}}"


# Pod Security Admission, pinned to the chart's minimum Kubernetes version
PSA_LEVEL, PSA_VERSION = "restricted", "v1.32"
USER_SERVICE_ACCOUNT = "deepvre-user"
USER_CLUSTER_ROLE = "deepvre-user"
SERVER_PORT = 8888  # KubeSpawner's default port of the user's server
DASK_PORTS = (8786, 8787)  # the operator's scheduler comm and dashboard
DASK_COMPONENT = "dask.org/component"  # set by the operator on every pod it makes
DASK_OPERATOR_LABELS = {"app.kubernetes.io/name": "dask-kubernetes-operator"}  # its Helm chart's pod labels
SERVER_LABELS = {"component": "singleuser-server"}  # KubeSpawner's, on every user pod
# not "the internet": private, carrier-grade NAT (some pod networks, a cloud's metadata server),
# link-local (metadata servers) and benchmarking ranges
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                  "198.18.0.0/15"]
API_SERVER_PORTS = (443, 6443)  # the Kubernetes API (Service and endpoints), wherever it is
USERNAME_ANNOTATION = "deepvre.org/username"
PART_OF = {"app.kubernetes.io/part-of": "deepvre"}


def namespace_labels():
    """KubeSpawner's ``user_namespace_labels`` (``{username}`` is expanded by KubeSpawner)."""
    labels = {USER_NAMESPACE_LABEL: "true", "hub.jupyter.org/username": "{username}", **PART_OF,
              # the chart's hub policy admits network-access-hub pods of namespaces labelled so
              # (hub.networkPolicy.interNamespaceAccessLabels: accept)
              "hub.jupyter.org/network-access-hub": "true"}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = PSA_LEVEL
        labels[f"pod-security.kubernetes.io/{mode}-version"] = PSA_VERSION
    return labels


def namespace_annotations():
    """KubeSpawner's ``user_namespace_annotations``: whose namespace it is, unescaped."""
    return {USERNAME_ANNOTATION: "{unescaped_username}"}


def user_namespaces_selector():
    return {"matchLabels": {USER_NAMESPACE_LABEL: "true"}}


def _in_namespace(name):
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}  # set by Kubernetes on every namespace


def _meta(name, namespace, component):
    return {"name": name, "namespace": namespace,
            "labels": {**PART_OF, "app.kubernetes.io/component": component}}


def _ports(*ports, protocol="TCP"):
    return [{"port": p, "protocol": protocol} for p in ports]


DNS = {"ports": _ports(53, protocol="UDP") + _ports(53)}


def _internet():
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}]}


def _api_server():
    return {"ports": _ports(*API_SERVER_PORTS)}  # any address: the API is not a pod to select


def server_policy(namespace, hub_namespace, hub_ports, dask=True):
    """The user's server pods: in from the hub and the proxy only; out to the hub (API and
    services on ``hub_ports``), DNS, the internet (no private ranges, no cloud metadata) and,
    with Dask, the Kubernetes API and the Dask schedulers of their own namespace."""
    hub_pods = {"namespaceSelector": _in_namespace(hub_namespace)}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta("deepvre-singleuser", namespace, "user-namespace"),
        "spec": {
            "podSelector": {"matchLabels": dict(SERVER_LABELS)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [
                {**hub_pods, "podSelector": {"matchExpressions": [
                    {"key": "component", "operator": "In", "values": ["hub", "proxy"]}]}},
            ], "ports": _ports(SERVER_PORT)}],
            "egress": [
                {"to": [{**hub_pods, "podSelector": {"matchLabels": {"component": "hub"}}}],
                 "ports": _ports(*hub_ports)},
                {"to": [{"namespaceSelector": {}}], **DNS},  # cluster DNS, wherever it runs
                *([{"to": [{"podSelector": {"matchExpressions": [
                    {"key": DASK_COMPONENT, "operator": "In", "values": ["scheduler"]}]}}],
                    "ports": _ports(*DASK_PORTS)}, _api_server()] if dask else []),
                _internet(),
            ],
        },
    }


def dask_policy(namespace, operator_namespace):
    """The Dask pods (scheduler, workers, job runner): in from this namespace's pods and the
    operator's pods (in its own namespace) only; out to DNS, this namespace and the internet."""
    operator = {"namespaceSelector": _in_namespace(operator_namespace),
                "podSelector": {"matchLabels": dict(DASK_OPERATOR_LABELS)}}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta("deepvre-dask", namespace, "user-namespace"),
        "spec": {
            "podSelector": {"matchExpressions": [{"key": DASK_COMPONENT, "operator": "Exists"}]},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}, operator]}],
            "egress": [{"to": [{"podSelector": {}}]}, {"to": [{"namespaceSelector": {}}], **DNS}, _internet()],
        },
    }


def quota_objects(namespace, quota):
    """The namespace's ResourceQuota (``kubernetes.user_quota``) and the LimitRange that gives
    containers without requests or limits some (a quota on cpu and memory needs them)."""
    hard = {"pods": str(quota["pods"]), "limits.cpu": quota["cpu"], "limits.memory": quota["memory"],
            "requests.nvidia.com/gpu": str(quota["gpus"]), "requests.storage": quota["storage"],
            "persistentvolumeclaims": str(quota["pvcs"]),
            "services.nodeports": "0", "services.loadbalancers": "0"}
    meta = _meta("deepvre-user-quota", namespace, "user-namespace")
    return [
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta, "spec": {"hard": hard}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": meta, "spec": {"limits": [{
            "type": "Container", "default": {"cpu": "1", "memory": "2Gi"},
            "defaultRequest": {"cpu": "100m", "memory": "256Mi"}}]}},
    ]


def namespace_objects(namespace, hub_namespace, hub_ports, dask=True, network_policy=True,
                      operator_namespace="dask-operator", quota=None):
    """Everything the hub applies in a user's namespace before it starts their pod (pure)."""
    objects = [server_policy(namespace, hub_namespace, hub_ports, dask)] if network_policy else []
    if dask:
        meta = _meta(USER_SERVICE_ACCOUNT, namespace, "user-namespace")
        objects = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER_CLUSTER_ROLE},
             "subjects": [{"kind": "ServiceAccount", "name": USER_SERVICE_ACCOUNT, "namespace": namespace}]},
            *objects,
            *([dask_policy(namespace, operator_namespace)] if network_policy else []),
        ]
    if quota:
        objects += quota_objects(namespace, quota)
    return objects


# ---------------------------------------------------------------- applying them (in the hub)

_APIS = {  # kind -> (API class, create, replace), all namespaced
    "ServiceAccount": ("CoreV1Api", "create_namespaced_service_account", "replace_namespaced_service_account"),
    "RoleBinding": ("RbacAuthorizationV1Api", "create_namespaced_role_binding", "replace_namespaced_role_binding"),
    "NetworkPolicy": ("NetworkingV1Api", "create_namespaced_network_policy", "replace_namespaced_network_policy"),
    "ResourceQuota": ("CoreV1Api", "create_namespaced_resource_quota", "replace_namespaced_resource_quota"),
    "LimitRange": ("CoreV1Api", "create_namespaced_limit_range", "replace_namespaced_limit_range"),
}


class NotOurNamespace(RuntimeError):
    """The user's namespace exists but was not made by deepvre's hub: nothing is put in it."""


def _api(name):
    from kubespawner.clients import shared_client

    return shared_client(name)


async def apply_objects(objects):
    """Create each object, or replace the one of that name."""
    from kubernetes_asyncio.client.rest import ApiException

    for body in objects:
        kind, ns, name = body["kind"], body["metadata"]["namespace"], body["metadata"]["name"]
        api_name, create, replace = _APIS[kind]
        api = _api(api_name)
        try:
            await getattr(api, create)(ns, body)
        except ApiException as err:
            if err.status != 409:
                raise
            await getattr(api, replace)(name, ns, body)


async def check_namespace(name, username, missing_ok=False):
    """Refuse a namespace the hub did not make for ``username``: without deepvre's label, or
    with another user's name in its annotation (two names KubeSpawner slugs alike)."""
    from kubernetes_asyncio.client.rest import ApiException

    try:
        ns = await _api("CoreV1Api").read_namespace(name)
    except ApiException as err:
        if err.status == 404 and missing_ok:
            return  # KubeSpawner makes it, labelled and annotated
        raise
    labels, notes = ns.metadata.labels or {}, ns.metadata.annotations or {}
    if labels.get(USER_NAMESPACE_LABEL) != "true":
        raise NotOurNamespace(f"namespace {name} exists but was not made by deepvre's hub "
                              f"(no {USER_NAMESPACE_LABEL} label): the user's server is not started in it")
    if notes.get(USERNAME_ANNOTATION) != username:
        raise NotOurNamespace(f"namespace {name} belongs to another hub user "
                              f"({USERNAME_ANNOTATION}: {notes.get(USERNAME_ANNOTATION)!r}): the server is not started")


def provision_user_namespaces(c, hub_namespace, hub_ports, dask=True, network_policy=True,
                              operator_namespace="dask-operator", quota=None):
    """Make the hub check the user's namespace before anything is made in it
    (``KubeSpawner.pre_spawn_hook``), then check it again and apply ``namespace_objects`` before
    it creates the pod (``modify_pod_hook``), after any hooks already set. A failure stops the spawn."""
    previous = c.KubeSpawner.modify_pod_hook if "modify_pod_hook" in c.KubeSpawner else None
    if getattr(previous, "deepvre_user_namespaces", False):
        return
    previous_pre = c.KubeSpawner.pre_spawn_hook if "pre_spawn_hook" in c.KubeSpawner else None

    from jupyterhub.utils import maybe_future

    async def pre_spawn_hook(spawner):
        if previous_pre is not None:
            await maybe_future(previous_pre(spawner))
        await check_namespace(spawner.namespace, spawner.user.name, missing_ok=True)

    async def modify_pod_hook(spawner, pod):
        if previous is not None:
            pod = await maybe_future(previous(spawner, pod))
        await check_namespace(spawner.namespace, spawner.user.name)
        await apply_objects(namespace_objects(spawner.namespace, hub_namespace, hub_ports, dask, network_policy,
                                              operator_namespace, quota))
        return pod

    modify_pod_hook.deepvre_user_namespaces = True
    c.KubeSpawner.pre_spawn_hook = pre_spawn_hook
    c.KubeSpawner.modify_pod_hook = modify_pod_hook
