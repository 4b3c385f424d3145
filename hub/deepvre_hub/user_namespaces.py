"""Kubernetes mode: one namespace per hub user, and what the hub puts in it.

KubeSpawner (``enable_user_namespaces``) creates ``<hub namespace>-u-<user>`` with the labels
below: Pod Security Admission "restricted" and ``deepvre.org/user-namespace``, which the
admission policy (``admission.py``) and the hub's network policies select on. Before it creates
the user's pod, the hub applies ``namespace_objects``: the ServiceAccount the pod runs as, its
RoleBinding to the ``deepvre-user`` ClusterRole (Dask resources, reading pods and services, in
this namespace only), and the NetworkPolicies for the server and Dask pods.

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
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
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


def server_policy(namespace, hub_namespace, hub_ports):
    """The user's server pods: in from the hub and the proxy only; out to the hub (API and
    services on ``hub_ports``), DNS, the internet (no private ranges, no cloud metadata) and
    the Dask schedulers of their own namespace."""
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
                {"to": [{"podSelector": {"matchExpressions": [
                    {"key": DASK_COMPONENT, "operator": "In", "values": ["scheduler"]}]}}],
                 "ports": _ports(*DASK_PORTS)},
                _internet(),
            ],
        },
    }


def dask_policy(namespace):
    """The Dask pods (scheduler, workers, job runner): in from this namespace's pods and the
    operator only; out to DNS, this namespace and the internet (no cloud metadata)."""
    operator = {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(DASK_OPERATOR_LABELS)}}
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


def namespace_objects(namespace, hub_namespace, hub_ports, dask=True, network_policy=True):
    """Everything the hub applies in a user's namespace before it starts their pod (pure)."""
    objects = [server_policy(namespace, hub_namespace, hub_ports)] if network_policy else []
    if dask:
        meta = _meta(USER_SERVICE_ACCOUNT, namespace, "user-namespace")
        objects = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER_CLUSTER_ROLE},
             "subjects": [{"kind": "ServiceAccount", "name": USER_SERVICE_ACCOUNT, "namespace": namespace}]},
            *objects,
            *([dask_policy(namespace)] if network_policy else []),
        ]
    return objects


# ---------------------------------------------------------------- applying them (in the hub)

_APIS = {  # kind -> (API class, create, replace), all namespaced
    "ServiceAccount": ("CoreV1Api", "create_namespaced_service_account", "replace_namespaced_service_account"),
    "RoleBinding": ("RbacAuthorizationV1Api", "create_namespaced_role_binding", "replace_namespaced_role_binding"),
    "NetworkPolicy": ("NetworkingV1Api", "create_namespaced_network_policy", "replace_namespaced_network_policy"),
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


async def check_namespace(name):
    """Refuse a namespace that lacks deepvre's label (one the hub did not create)."""
    ns = await _api("CoreV1Api").read_namespace(name)
    labels = ns.metadata.labels or {}
    if labels.get(USER_NAMESPACE_LABEL) != "true":
        raise NotOurNamespace(f"namespace {name} exists but was not made by deepvre's hub "
                              f"(no {USER_NAMESPACE_LABEL} label): the user's server is not started in it")


def provision_user_namespaces(c, hub_namespace, hub_ports, dask=True, network_policy=True):
    """Make the hub apply ``namespace_objects`` before it creates a user's pod
    (``KubeSpawner.modify_pod_hook``, after any hook already set). A failure stops the spawn."""
    previous = c.KubeSpawner.modify_pod_hook if "modify_pod_hook" in c.KubeSpawner else None
    if getattr(previous, "deepvre_user_namespaces", False):
        return

    async def modify_pod_hook(spawner, pod):
        import inspect

        if previous is not None:
            pod = previous(spawner, pod)
            pod = await pod if inspect.isawaitable(pod) else pod
        await check_namespace(spawner.namespace)
        await apply_objects(namespace_objects(spawner.namespace, hub_namespace, hub_ports, dask, network_policy))
        return pod

    modify_pod_hook.deepvre_user_namespaces = True
    c.KubeSpawner.modify_pod_hook = modify_pod_hook
