"""Attacks through the Dask resources a user may create in Kubernetes mode: the admission policy
(``deepvre_hub.admission``) denies pod specs that would give the user's Dask pods the node.

A user's pod may create DaskCluster, DaskWorkerGroup and DaskJob resources in the user's own
namespace; the dask-kubernetes operator copies the pod specs inside them into real pods, the
scheduler's ServiceSpec into a Service and their labels onto both. Each attack (a hostPath of /, a
privileged container, the node's namespaces, the hub's ServiceAccount, a preempting priority class,
NVIDIA_VISIBLE_DEVICES, ...) is put in every place the operator's CRDs hold a pod spec, each Service
attack (NodePort, externalIPs, ...) in every scheduler ServiceSpec, each label forgery (a user's
server, the proxy, the operator) in every set of labels the operator copies, and the policy is
evaluated the way the API server evaluates it, offline, with cel-python (``tests/kubernetes/cel.py``). deepvre's own
resources (``kubernetes_cluster_spec``, ``restrict_pod``) are admitted; each validation is shown to
be what denies its attack (without it the attack is admitted).
"""

import copy
import functools
from pathlib import Path

import dask_kubernetes
import kubernetes_validate
import pytest
import yaml
from dask_kubernetes.operator import make_worker_spec

from deepvre.pipelines.clusters import kubernetes_cluster_spec, restrict_pod
from deepvre_hub import admission
from tests.kubernetes.cel import admission_request, denials, evaluate, matches

K8S_VERSION = "1.32.0"  # the pinned z2jh chart's minimum (tests/kubernetes/test_manifests.py)
NAMESPACE = "deepvre-u-alice"
NAMESPACE_LABELS = {"deepvre.org/user-namespace": "true", "kubernetes.io/metadata.name": NAMESPACE}
ENVIRON = {"DEEPVRE_NAMESPACE": NAMESPACE, "DEEPVRE_POD_NAME": "jupyter-alice",
           "DEEPVRE_POD_UID": "6f1c2e1a-0000-4000-8000-000000000001"}
IMAGE = "ghcr.io/dask/dask:2026.8.0-py3.11"
# the operator's CRDs, resolved (PodSpec of Kubernetes 1.21 inlined): what the API server prunes and validates with
CRD_DIR = Path(dask_kubernetes.__file__).parent / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"

# Every place a pod spec sits, by kind (checked against the CRDs below).
POSITIONS = [
    ("DaskCluster", "spec.scheduler.spec"),
    ("DaskCluster", "spec.worker.spec"),
    ("DaskWorkerGroup", "spec.worker.spec"),
    ("DaskJob", "spec.job.spec"),
    ("DaskJob", "spec.cluster.spec.scheduler.spec"),
    ("DaskJob", "spec.cluster.spec.worker.spec"),
]
# Every scheduler ServiceSpec, and every set of labels the operator copies onto pods and Services.
SERVICE_POSITIONS = [
    ("DaskCluster", "spec.scheduler.service"),
    ("DaskJob", "spec.cluster.spec.scheduler.service"),
]
LABEL_POSITIONS = [
    ("DaskCluster", "metadata.labels"),
    ("DaskCluster", "spec.scheduler.metadata.labels"),
    ("DaskCluster", "spec.worker.metadata.labels"),
    ("DaskWorkerGroup", "metadata.labels"),
    ("DaskWorkerGroup", "spec.worker.metadata.labels"),
    ("DaskJob", "metadata.labels"),
    ("DaskJob", "spec.job.metadata.labels"),
    ("DaskJob", "spec.cluster.spec.scheduler.metadata.labels"),
    ("DaskJob", "spec.cluster.spec.worker.metadata.labels"),
]


# ---------------------------------------------------------------- deepvre's own resources


def dask_cluster():
    return kubernetes_cluster_spec(environ=ENVIRON)


def dask_worker_group():
    """An extra worker group of deepvre's cluster, from the operator's own builder, restricted."""
    worker = make_worker_spec(image=IMAGE, n_workers=2, resources={"limits": {"cpu": "2", "memory": "4G"}},
                              env={"EXTRA": "1"})
    restrict_pod(worker["spec"])
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskWorkerGroup",
            "metadata": {"name": "deepvre-dask-highmem", "namespace": NAMESPACE},
            "spec": {"cluster": "deepvre-dask", "worker": worker}}


def dask_job():
    """A DaskJob: a job pod (restricted like deepvre's) and deepvre's cluster."""
    job = restrict_pod({"containers": [{"name": "job", "image": IMAGE, "args": ["python", "-c", "print(1)"]}],
                        "restartPolicy": "OnFailure"})
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
            "metadata": {"name": "deepvre-job", "namespace": NAMESPACE},
            "spec": {"job": {"spec": job}, "cluster": {"spec": dask_cluster()["spec"]}}}


BUILDERS = {"DaskCluster": dask_cluster, "DaskWorkerGroup": dask_worker_group, "DaskJob": dask_job}


@functools.cache
def policy():
    return admission.dask_admission_policy()[0]


def at(obj, path, create=False):
    """``obj``'s value at the dotted ``path`` (made, as empty objects, where missing with ``create``)."""
    for part in path.split("."):
        obj = obj.setdefault(part, {}) if create else obj[part]
    return obj


# ---------------------------------------------------------------- the operator's CRDs


@functools.cache
def crds():
    """{kind: (plural, openAPIV3Schema)} of the CRDs shipped with dask_kubernetes."""
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        (version,) = crd["spec"]["versions"]
        out[crd["spec"]["names"]["kind"]] = (crd["spec"]["names"]["plural"], version["schema"]["openAPIV3Schema"])
    return out


def pod_spec_paths(schema, path=()):
    """Paths of the PodSpec-like objects (a ``containers`` array) in a CRD schema."""
    props = schema.get("properties") or {}
    found = [".".join(path)] if props.get("containers", {}).get("type") == "array" else []
    for name, sub in props.items():
        found += pod_spec_paths(sub, (*path, name))
    return found


def service_spec_paths(schema, path=()):
    """Paths of the ServiceSpec-like objects (``ports`` and ``externalIPs``) in a CRD schema."""
    props = schema.get("properties") or {}
    found = [".".join(path)] if {"ports", "externalIPs"} <= set(props) else []
    for name, sub in props.items():
        found += service_spec_paths(sub, (*path, name))
    return found


def label_paths(schema, path=()):
    """Paths of the ``metadata.labels`` maps in a CRD schema, but a PersistentVolumeClaim template's."""
    props = schema.get("properties") or {}
    found = []
    for name, sub in props.items():
        if name == "labels" and path and path[-1] == "metadata" and "volumeClaimTemplate" not in path:
            found.append(".".join((*path, name)))
        found += label_paths(sub, (*path, name))
    for sub in (schema.get("items"),):  # arrays: volumes[].ephemeral.volumeClaimTemplate.metadata.labels
        if isinstance(sub, dict):
            found += [p for p in label_paths(sub, path) if "volumeClaimTemplate" not in p]
    return found


def pruned_fields(obj, schema, path=""):
    """The fields of ``obj`` that the CRD's structural schema does not know (the API server drops them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(obj, dict):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        out = []
        for key, value in obj.items():
            if props is not None:
                sub = props.get(key)
            else:  # a map: its values' schema, or any value (additionalProperties: true)
                sub = extra if isinstance(extra, dict) else {} if extra is True else None
            if sub is None:
                out.append(f"{path}.{key}")
            else:
                out += pruned_fields(value, sub, f"{path}.{key}")
        return out
    if isinstance(obj, list):
        return [f for i, item in enumerate(obj) for f in pruned_fields(item, schema.get("items", {}), f"{path}[{i}]")]
    return []


def crd_pruned(obj):
    """What the API server would drop from ``obj``'s spec (apiVersion, kind, metadata are its own)."""
    return pruned_fields(obj["spec"], crds()[obj["kind"]][1]["properties"]["spec"], "spec")


def test_the_pruning_check_sees_unknown_fields():
    obj = dask_cluster()
    at(obj, "spec.worker.spec")["hostUsers"] = False  # PodSpec of Kubernetes 1.25+, not in the CRDs' 1.21
    at(obj, "spec.scheduler.spec")["containers"][0]["securityContext"]["noSuchField"] = True
    assert crd_pruned(obj) == ["spec.worker.spec.hostUsers",
                               "spec.scheduler.spec.containers[0].securityContext.noSuchField"]


def test_the_pod_spec_positions_are_the_crds():
    """The CRDs hold pod specs exactly at POSITIONS, which the policy reads, and nowhere else."""
    found = sorted((kind, p) for kind, (_, schema) in crds().items() for p in pod_spec_paths(schema))
    assert found == sorted(POSITIONS)
    assert sorted((kind, p) for kind, paths in admission.POD_SPEC_PATHS.items() for p in paths) == sorted(POSITIONS)


def test_the_service_and_label_positions_are_the_crds():
    """The CRDs hold a scheduler ServiceSpec and labels the operator copies exactly where the
    policy reads them (plus each resource's own metadata.labels, which is not in the CRDs)."""
    services = sorted((kind, p) for kind, (_, schema) in crds().items() for p in service_spec_paths(schema))
    assert services == sorted(SERVICE_POSITIONS)
    assert sorted((k, p) for k, paths in admission.SERVICE_SPEC_PATHS.items() for p in paths) == services
    labels = sorted((kind, p) for kind, (_, schema) in crds().items() for p in label_paths(schema))
    own = [(kind, "metadata.labels") for kind in admission.RESOURCES]
    assert sorted(labels + own) == sorted(LABEL_POSITIONS)
    assert sorted((k, p) for k, paths in admission.LABEL_PATHS.items() for p in paths) == sorted(LABEL_POSITIONS)


def test_the_policy_matches_every_crd_with_a_pod_spec():
    rules = policy()["spec"]["matchConstraints"]["resourceRules"]
    matched = {r for rule in rules for r in rule["resources"]}
    with_pods = {plural for plural, schema in crds().values() if pod_spec_paths(schema)}
    assert matched == with_pods == {plural for kind, (plural, _) in crds().items() if kind != "DaskAutoscaler"}
    for rule in rules:
        assert rule["apiGroups"] == ["kubernetes.dask.org"] and rule["apiVersions"] == ["*"]
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]


def test_the_policy_and_binding_are_valid_kubernetes_objects():
    vap, binding = admission.dask_admission_policy()
    for obj in (vap, binding):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert vap["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"]["policyName"] == vap["metadata"]["name"] == admission.POLICY_NAME
    assert binding["spec"]["validationActions"] == ["Deny"]
    selector = {"matchLabels": {admission.USER_NAMESPACE_LABEL: "true"}}
    assert vap["spec"]["matchConstraints"]["namespaceSelector"] == selector
    assert binding["spec"]["matchResources"]["namespaceSelector"] == selector


@pytest.mark.parametrize("kind", BUILDERS)
def test_the_policy_applies_in_user_namespaces_only(kind):
    obj = BUILDERS[kind]()
    request = admission_request(obj)
    assert matches(policy(), request, NAMESPACE_LABELS)
    assert matches(policy(), admission_request(obj, "UPDATE"), NAMESPACE_LABELS)
    assert not matches(policy(), admission_request(obj, "DELETE"), NAMESPACE_LABELS)
    assert not matches(policy(), request, {"kubernetes.io/metadata.name": "kube-system"})
    autoscaler = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler",
                  "metadata": {"name": "a", "namespace": NAMESPACE}, "spec": {"cluster": "a", "minimum": 1, "maximum": 2}}
    assert not matches(policy(), admission_request(autoscaler), NAMESPACE_LABELS)


# ---------------------------------------------------------------- deepvre's resources are admitted


@pytest.mark.parametrize("kind", BUILDERS)
def test_deepvres_own_resources_are_admitted(kind):
    obj = BUILDERS[kind]()
    assert crd_pruned(obj) == []
    variables, denied = evaluate(policy(), obj)
    assert denied == []
    assert denials(policy(), obj, "UPDATE", old=obj) == []
    # the policy saw every pod spec and scheduler Service of this kind, not none
    assert [str(p["path"]) for p in variables["pods"]] == [p for k, p in POSITIONS if k == kind]
    assert all(len(p["containers"]) >= 1 for p in variables["pods"])
    assert [str(p["path"]) for p in variables["services"]] == [p for k, p in SERVICE_POSITIONS if k == kind]
    assert all(len(p["spec"]["ports"]) == 2 for p in variables["services"])


@pytest.mark.parametrize("kind", BUILDERS)
def test_deepvres_own_resources_are_admitted_with_labels(kind):
    """Labels of its own (a project, the operator's dask.org/ ones) on every labels position."""
    obj = BUILDERS[kind]()
    for k, path in LABEL_POSITIONS:
        if k == kind:
            at(obj, path, create=True).update({"project": "climate", "dask.org/cluster-name": "deepvre-dask",
                                               "app.kubernetes.io/part-of": "climate-study"})
    assert crd_pruned(obj) == []
    variables, denied = evaluate(policy(), obj)
    assert denied == []
    assert [str(p["path"]) for p in variables["labels"]] == [p for k, p in LABEL_POSITIONS if k == kind]


def test_what_the_operator_makes_of_deepvres_resources_is_admitted():
    """The policy sees the operator's own creations too: the default DaskWorkerGroup of a
    DaskCluster and the DaskCluster of a DaskJob (their labels: the resource's and dask.org/ ones)."""
    from dask_kubernetes.operator.controller import controller as op

    cluster, job = dask_cluster(), dask_job()
    labels = {"project": "climate"}
    group = op.build_default_worker_group_spec("deepvre-dask", cluster["spec"]["worker"], {}, labels)
    job_cluster = op.build_cluster_spec("deepvre-job", job["spec"]["cluster"]["spec"]["worker"],
                                        job["spec"]["cluster"]["spec"]["scheduler"], {}, labels)
    for obj in (group, job_cluster):
        obj["metadata"]["namespace"] = NAMESPACE
        assert crd_pruned(obj) == []
        assert denials(policy(), obj) == []


# ---------------------------------------------------------------- attacks


def _container(pod):
    return pod["containers"][0]


def _restricted(name):
    return {"name": name, "image": "busybox", "securityContext": {"allowPrivilegeEscalation": False,
                                                                  "capabilities": {"drop": ["ALL"]}}}


def host_path_root(pod):
    pod["volumes"] = [{"name": "host", "hostPath": {"path": "/"}}]
    _container(pod)["volumeMounts"] = [{"name": "host", "mountPath": "/host"}]


def nfs_volume(pod):
    pod["volumes"] = [{"name": "data", "nfs": {"server": "10.0.0.5", "path": "/export/home"}}]


def emptydir_and_hostpath(pod):  # one volume, an allowed and a forbidden source
    pod["volumes"] = [{"name": "both", "emptyDir": {}, "hostPath": {"path": "/"}}]


def privileged(pod):
    _container(pod)["securityContext"]["privileged"] = True


def privileged_init_container(pod):
    init = _restricted("init")
    init["securityContext"]["privileged"] = True
    pod["initContainers"] = [init]


def privileged_ephemeral_container(pod):
    debug = _restricted("debug")
    debug["securityContext"]["privileged"] = True
    pod["ephemeralContainers"] = [debug]


def host_network(pod):
    pod["hostNetwork"] = True


def host_pid(pod):
    pod["hostPID"] = True


def host_ipc(pod):
    pod["hostIPC"] = True


def privilege_escalation(pod):
    _container(pod)["securityContext"]["allowPrivilegeEscalation"] = True


def privilege_escalation_unset(pod):
    del _container(pod)["securityContext"]["allowPrivilegeEscalation"]


def no_security_context(pod):
    del _container(pod)["securityContext"]


def init_container_unset_escalation(pod):
    init = _restricted("init")
    del init["securityContext"]["allowPrivilegeEscalation"]
    pod["initContainers"] = [init]


def add_sys_admin(pod):
    _container(pod)["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]


def add_net_bind_and_sys_ptrace(pod):
    _container(pod)["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE", "SYS_PTRACE"]


def hub_service_account(pod):
    pod["serviceAccountName"] = "hub"  # z2jh's hub ServiceAccount


def deprecated_service_account_field(pod):
    pod["serviceAccount"] = "hub"


def user_service_account(pod):
    pod["serviceAccountName"] = "deepvre-user"  # the user's pod's own, with rights on Dask resources


def automount_token(pod):
    pod["automountServiceAccountToken"] = True


def automount_token_unset(pod):
    del pod["automountServiceAccountToken"]


def projected_token(pod):
    pod["volumes"] = [{"name": "token", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}}]


def node_name(pod):
    pod["nodeName"] = "gpu-node-1"


def run_as_root(pod):
    pod["securityContext"]["runAsNonRoot"] = False
    pod["securityContext"]["runAsUser"] = 0


def run_as_non_root_unset(pod):
    del pod["securityContext"]["runAsNonRoot"]


def container_run_as_root(pod):  # a container's own setting overrides the pod's
    _container(pod)["securityContext"]["runAsNonRoot"] = False


def priority_class(pod):
    pod["priorityClassName"] = "system-node-critical"  # usable in any namespace since Kubernetes 1.17


def priority_value(pod):
    pod["priority"] = 2000001000


def preemption_policy(pod):
    pod["preemptionPolicy"] = "PreemptLowerPriority"


def runtime_class(pod):
    pod["runtimeClassName"] = "nvidia"


def scheduler_name(pod):
    pod["schedulerName"] = "my-scheduler"


def tolerate_every_taint(pod):
    pod["tolerations"] = [{"operator": "Exists"}]


def tolerate_with_empty_key(pod):
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}, {"key": "", "operator": "Exists"}]


def tolerate_control_plane(pod):
    pod["tolerations"] = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                           "effect": "NoSchedule"}]


def tolerate_cordoned_nodes(pod):
    pod["tolerations"] = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]


def node_by_match_fields(pod):
    pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["control-plane-1"]}]}]}}}


def node_by_hostname_affinity(pod):
    pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-node-1"]}]}]}}}


def node_by_preferred_match_fields(pod):
    pod["affinity"] = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-node-1"]}]}}]}}


def node_by_preferred_hostname(pod):
    pod["affinity"] = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {
            "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-node-1"]}]}}]}}


def node_by_hostname_selector(pod):
    pod["nodeSelector"] = {"kubernetes.io/hostname": "gpu-node-1"}


def nvidia_visible_devices(pod):
    _container(pod).setdefault("env", []).append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"})


def nvidia_visible_devices_from_field(pod):
    _container(pod).setdefault("env", []).append(
        {"name": "NVIDIA_VISIBLE_DEVICES", "valueFrom": {"configMapKeyRef": {"name": "gpus", "key": "all"}}})


def nvidia_driver_capabilities_in_init_container(pod):
    init = _restricted("init")
    init["env"] = [{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "all"}]
    pod["initContainers"] = [init]


def ephemeral_volume_by_name(pod):  # the claim binds a PersistentVolume by name
    pod["volumes"] = [{"name": "v", "ephemeral": {"volumeClaimTemplate": {"spec": {
        "volumeName": "pv-shared-project-data", "storageClassName": "", "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}}}}]


# (attack on a pod spec, a word of the message of the one validation that must deny it)
POD_ATTACKS = [
    (host_path_root, "hostPath"),
    (nfs_volume, "hostPath"),
    (emptydir_and_hostpath, "hostPath"),
    (privileged, "may not be privileged"),
    (privileged_init_container, "may not be privileged"),
    (privileged_ephemeral_container, "may not be privileged"),
    (host_network, "hostNetwork"),
    (host_pid, "hostNetwork"),
    (host_ipc, "hostNetwork"),
    (privilege_escalation, "allowPrivilegeEscalation"),
    (privilege_escalation_unset, "allowPrivilegeEscalation"),
    (no_security_context, "allowPrivilegeEscalation"),
    (init_container_unset_escalation, "allowPrivilegeEscalation"),
    (add_sys_admin, "capabilities"),
    (add_net_bind_and_sys_ptrace, "capabilities"),
    (hub_service_account, "serviceAccountName"),
    (deprecated_service_account_field, "serviceAccountName"),
    (user_service_account, "serviceAccountName"),
    (automount_token, "automountServiceAccountToken"),
    (automount_token_unset, "automountServiceAccountToken"),
    (projected_token, "automountServiceAccountToken"),
    (node_name, "nodeName"),
    (run_as_root, "runAsNonRoot"),
    (run_as_non_root_unset, "runAsNonRoot"),
    (container_run_as_root, "runAsNonRoot"),
    (priority_class, "priorityClassName"),
    (priority_value, "priorityClassName"),
    (preemption_policy, "priorityClassName"),
    (runtime_class, "runtimeClassName"),
    (scheduler_name, "runtimeClassName"),
    (tolerate_every_taint, "tolerate"),
    (tolerate_with_empty_key, "tolerate"),
    (tolerate_control_plane, "tolerate"),
    (tolerate_cordoned_nodes, "tolerate"),
    (node_by_match_fields, "pick nodes by name"),
    (node_by_hostname_affinity, "pick nodes by name"),
    (node_by_preferred_match_fields, "pick nodes by name"),
    (node_by_preferred_hostname, "pick nodes by name"),
    (node_by_hostname_selector, "pick nodes by name"),
    (nvidia_visible_devices, "NVIDIA_VISIBLE_DEVICES"),
    (nvidia_visible_devices_from_field, "NVIDIA_VISIBLE_DEVICES"),
    (nvidia_driver_capabilities_in_init_container, "NVIDIA_VISIBLE_DEVICES"),
    (ephemeral_volume_by_name, "hostPath"),
]


# ---------------------------------------------------------------- attacks on the scheduler Service


def node_port(service):
    service["type"] = "NodePort"


def node_port_on_a_port(service):  # type absent (ClusterIP): the API server would refuse it, or not
    service["ports"][0]["nodePort"] = 30786


def load_balancer(service):
    service["type"] = "LoadBalancer"


def load_balancer_fields(service):
    service["loadBalancerSourceRanges"] = ["0.0.0.0/0"]
    service["loadBalancerIP"] = "203.0.113.7"


def external_name(service):  # the operator's HTTP and RPC calls go to any host
    service["type"] = "ExternalName"
    service["externalName"] = "hub.deepvre.svc.cluster.local"


def external_name_without_type(service):
    service["externalName"] = "hub.deepvre.svc.cluster.local"


def external_traffic_policy(service):
    service["externalTrafficPolicy"] = "Local"
    service["healthCheckNodePort"] = 30999


def external_ips(service):  # CVE-2020-8554: claims another pod's address
    service["externalIPs"] = ["10.244.3.17"]


def cluster_ip(service):
    service["clusterIP"] = "10.96.0.10"  # kube-dns's


def cluster_ips(service):
    service["clusterIPs"] = ["10.96.0.1"]


def selector_of_a_server(service):  # the Service sends to the user's server pod
    service["selector"] = {"component": "singleuser-server"}


def selector_with_another_key(service):
    service["selector"]["hub.jupyter.org/username"] = "alice"


def selector_of_workers(service):
    service["selector"]["dask.org/component"] = "worker"


def another_port(service):  # what the proxy sends to a user's server
    service["ports"][0].update(port=8888, targetPort=8888)


def another_target_port(service):
    service["ports"][1]["targetPort"] = 22


def another_named_target_port(service):
    service["ports"][1]["targetPort"] = "ssh"


def port_names_swapped(service):  # the operator connects to the port named tcp-comm
    service["ports"][0]["port"], service["ports"][1]["port"] = 8787, 8786


# (attack on a scheduler ServiceSpec, a word of the message of the one validation that must deny it)
SERVICE_ATTACKS = [
    (node_port, "type ClusterIP"),
    (load_balancer, "type ClusterIP"),
    (load_balancer_fields, "type ClusterIP"),
    (external_name, "type ClusterIP"),
    (external_name_without_type, "type ClusterIP"),
    (external_traffic_policy, "type ClusterIP"),
    (external_ips, "claim addresses"),
    (cluster_ip, "claim addresses"),
    (cluster_ips, "claim addresses"),
    (selector_of_a_server, "select"),
    (selector_with_another_key, "select"),
    (selector_of_workers, "select"),
    (node_port_on_a_port, "Dask's ports"),
    (another_port, "Dask's ports"),
    (another_target_port, "Dask's ports"),
    (another_named_target_port, "Dask's ports"),
    (port_names_swapped, "Dask's ports"),
]


# ---------------------------------------------------------------- attacks by labels


def server_label(labels):  # the proxy's egress and deepvre-singleuser's ingress let it in
    labels["component"] = "singleuser-server"


def proxy_label(labels):
    labels.update(component="proxy", app="jupyterhub", release="deepvre")


def operator_label(labels):  # deepvre-dask lets "the operator" into every user's Dask pods
    labels["app.kubernetes.io/name"] = "dask-kubernetes-operator"


def hub_username_label(labels):
    labels["hub.jupyter.org/username"] = "alice"


def deepvre_label(labels):
    labels["deepvre.org/user-namespace"] = "true"


# (attack on a labels map, a word of the message of the one validation that must deny it)
LABEL_ATTACKS = [
    (server_label, "NetworkPolicies trust"),
    (proxy_label, "NetworkPolicies trust"),
    (operator_label, "NetworkPolicies trust"),
    (hub_username_label, "NetworkPolicies trust"),
    (deepvre_label, "NetworkPolicies trust"),
]

# (attack, word, the positions it is put in)
ATTACKS = ([(a, w, POSITIONS) for a, w in POD_ATTACKS] + [(a, w, SERVICE_POSITIONS) for a, w in SERVICE_ATTACKS]
           + [(a, w, LABEL_POSITIONS) for a, w in LABEL_ATTACKS])
CASES = [(kind, path, attack, word) for attack, word, positions in ATTACKS for kind, path in positions]


def attacked(kind, path, attack):
    obj = BUILDERS[kind]()
    attack(at(obj, path, create=path.endswith(".labels")))
    return obj


def _id(value):
    return value.__name__.replace("_", "-") if callable(value) else None


@pytest.mark.parametrize(("kind", "path", "attack", "word"), CASES,
                         ids=[f"{_id(a)}-{k}-{p}" for k, p, a, _ in CASES])
def test_attack_is_denied(kind, path, attack, word):
    obj = attacked(kind, path, attack)
    # the attack survives the CRD's pruning: the operator would copy it into the pod
    assert crd_pruned(obj) == []
    denied = denials(policy(), obj)
    assert len(denied) == 1, denied
    assert denied[0].startswith(f"{path}: ") and word in denied[0], denied
    # an update that brings the attack into an admitted resource is denied as well
    assert denials(policy(), obj, "UPDATE", old=BUILDERS[kind]()) == denied


@pytest.mark.parametrize(("attack", "word", "positions"), ATTACKS, ids=[_id(a) for a, _, _ in ATTACKS])
def test_without_its_validation_the_attack_is_admitted(attack, word, positions):
    """The evaluator really decides: drop the validation that denies an attack and it goes through."""
    weakened = copy.deepcopy(policy())
    validations = weakened["spec"]["validations"]
    (drop,) = [v for v in validations if word in v["message"]]
    validations.remove(drop)
    for kind, path in positions:
        assert denials(weakened, attacked(kind, path, attack)) == [], (kind, path)


def test_every_validation_denies_some_attack():
    words = {word for _, word, _ in ATTACKS}
    for validation in policy()["spec"]["validations"]:
        assert any(word in validation["message"] for word in words), validation["message"]


def test_an_expression_that_errors_denies():
    """failurePolicy Fail: an error is a denial, not an admission."""
    broken = copy.deepcopy(policy())
    broken["spec"]["validations"].append({"expression": "variables.pods.all(x, x.spec.noSuchField == 1)",
                                          "message": "unreachable"})
    (denied,) = denials(broken, dask_cluster())
    assert denied.startswith("expression error")


def test_several_attacks_are_all_reported():
    obj = dask_job()
    host_path_root(at(obj, "spec.job.spec"))
    privileged(at(obj, "spec.cluster.spec.worker.spec"))
    host_network(at(obj, "spec.cluster.spec.scheduler.spec"))
    external_ips(at(obj, "spec.cluster.spec.scheduler.service"))
    operator_label(at(obj, "metadata.labels", create=True))
    denied = denials(policy(), obj)
    assert len(denied) == 5
    assert {d.split(": ", 1)[0] for d in denied} == {"spec.job.spec", "spec.cluster.spec.worker.spec",
                                                     "spec.cluster.spec.scheduler.spec",
                                                     "spec.cluster.spec.scheduler.service", "metadata.labels"}


def test_what_restricted_pods_may_still_do_is_admitted():
    """Allowed: every allowed volume type, NET_BIND_SERVICE, the default ServiceAccount by name,
    runAsNonRoot set per container instead of for the pod, host namespaces set to false,
    tolerations and node affinity by key (GPU nodes), preemptionPolicy Never, the default
    scheduler by name, other environment variables (CUDA_VISIBLE_DEVICES) and envFrom."""
    obj = dask_cluster()
    pod = at(obj, "spec.worker.spec")
    pod["volumes"] = [
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
        {"name": "scratch", "emptyDir": {"medium": "Memory"}},
        {"name": "conf", "configMap": {"name": "dask-conf"}},
        {"name": "creds", "secret": {"secretName": "dask-creds"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "proj", "projected": {"sources": [{"configMap": {"name": "dask-conf"}}]}},
    ]
    pod["serviceAccountName"] = "default"
    pod["hostNetwork"] = pod["hostPID"] = pod["hostIPC"] = False
    del pod["securityContext"]["runAsNonRoot"]
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                          {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
                           "effect": "NoSchedule"}]
    pod["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-H200"}
    pod["affinity"] = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "Exists"}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                              "labelSelector": {"matchLabels": {"dask.org/component": "worker"}}}}]}}
    pod["preemptionPolicy"] = "Never"
    pod["schedulerName"] = "default-scheduler"
    for container in pod["containers"]:
        container["securityContext"]["runAsNonRoot"] = True
        container["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
        container["env"].append({"name": "CUDA_VISIBLE_DEVICES", "value": "0"})
        container["envFrom"] = [{"configMapRef": {"name": "dask-env"}}]
    assert crd_pruned(obj) == []
    assert denials(policy(), obj) == []


def test_what_the_scheduler_service_may_still_do_is_admitted():
    """Allowed: type ClusterIP by name, session affinity, traffic and IP family settings, numeric
    target ports, unnamed ports, no selector (no endpoints), no ports, empty address lists."""
    obj = dask_cluster()
    service = at(obj, "spec.scheduler.service")
    service.update(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
                   internalTrafficPolicy="Local", ipFamilyPolicy="SingleStack", ipFamilies=["IPv4"],
                   publishNotReadyAddresses=True, externalIPs=[], clusterIP="")
    service["ports"] = [{"port": 8786, "targetPort": 8786}, {"name": "http-dashboard", "port": 8787,
                                                             "targetPort": "8787", "appProtocol": "http"}]
    assert crd_pruned(obj) == []
    assert denials(policy(), obj) == []
    del service["selector"]
    assert denials(policy(), obj) == []
    del service["ports"]
    assert denials(policy(), obj) == []


def test_every_volume_source_the_crds_know_is_allowed_or_forbidden():
    """The volume rule names the forbidden sources one by one (CEL cannot iterate a typed
    object's keys): every source in every pod spec of every CRD is on one of the two lists."""
    for kind, (_, schema) in crds().items():
        for path in pod_spec_paths(schema):
            node = schema
            for part in path.split("."):
                node = node["properties"][part]
            sources = set(node["properties"]["volumes"]["items"]["properties"]) - {"name"}
            assert sources == set(admission.ALLOWED_VOLUME_TYPES) | set(admission.FORBIDDEN_VOLUME_TYPES), (kind, path)
