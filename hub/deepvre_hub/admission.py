"""The ValidatingAdmissionPolicy on the pod specs users put in dask-kubernetes resources.

A user's pod may create DaskCluster, DaskWorkerGroup and DaskJob resources in the user's own
namespace (labelled :data:`USER_NAMESPACE_LABEL`); the dask-kubernetes operator copies the pod
specs inside them into real pods. The policy admits only pod specs without host access,
privileges or a ServiceAccount token with rights (what ``deepvre.pipelines.clusters.restrict_pod``
makes), that neither preempt other pods nor pick their node by name nor ask the GPU runtime for GPUs
by environment; a scheduler Service that stays a ClusterIP Service on the Dask ports (no
externalIPs, node ports, load balancers); and none of the labels other pods' NetworkPolicies trust
(the operator copies the resource's labels onto its pods and Service). Pure builders;
admissionregistration.k8s.io/v1 (Kubernetes >= 1.30).

The CEL keeps to standard macros (``has``, ``all``, ``exists``, ``map``, ``filter``) and
operators, no Kubernetes-only library, so tests/security/test_kubernetes_admission.py evaluates it
offline with cel-python.
"""

import json

USER_NAMESPACE_LABEL = "deepvre.org/user-namespace"
POLICY_NAME = "deepvre-dask-pods"
API_VERSION = "admissionregistration.k8s.io/v1"
DASK_GROUP = "kubernetes.dask.org"

# Where each kind embeds a PodSpec (the operator's CRDs) and the resource it is served as.
POD_SPEC_PATHS = {
    "DaskCluster": ("spec.scheduler.spec", "spec.worker.spec"),
    "DaskWorkerGroup": ("spec.worker.spec",),
    "DaskJob": ("spec.job.spec", "spec.cluster.spec.scheduler.spec", "spec.cluster.spec.worker.spec"),
}
# Where DaskCluster and DaskJob embed the scheduler's ServiceSpec (the operator creates the Service as is).
SERVICE_SPEC_PATHS = {
    "DaskCluster": ("spec.scheduler.service",),
    "DaskJob": ("spec.cluster.spec.scheduler.service",),
}
# Labels the operator copies onto the pods (and the scheduler Service) it makes: the resource's own
# and its templates' (other metadata in the CRDs is pruned).
LABEL_PATHS = {
    "DaskCluster": ("metadata.labels", "spec.scheduler.metadata.labels", "spec.worker.metadata.labels"),
    "DaskWorkerGroup": ("metadata.labels", "spec.worker.metadata.labels"),
    "DaskJob": ("metadata.labels", "spec.job.metadata.labels", "spec.cluster.spec.scheduler.metadata.labels",
                "spec.cluster.spec.worker.metadata.labels"),
}
RESOURCES = {"DaskCluster": "daskclusters", "DaskWorkerGroup": "daskworkergroups", "DaskJob": "daskjobs"}

# A Volume is its name plus one source: only these (no hostPath, nfs, iscsi, ...).
ALLOWED_VOLUME_TYPES = ("persistentVolumeClaim", "emptyDir", "configMap", "secret", "projected", "downwardAPI")
# The other sources a Volume may name in the operator's CRDs (their PodSpec schema; unknown
# fields are pruned before admission). Checked field by field: the CRDs type a Volume as an
# object, which CEL cannot iterate by key. "ephemeral": the PVC its claim template makes (for a user who
# may not create PVCs) binds any PersistentVolume by volumeName.
FORBIDDEN_VOLUME_TYPES = ("awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "ephemeral",
                          "fc", "flexVolume", "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "hostPath",
                          "iscsi", "nfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO",
                          "storageos", "vsphereVolume")
ALLOWED_CAPABILITIES = ("NET_BIND_SERVICE",)  # the only one Pod Security "restricted" lets a container add
ALLOWED_SERVICE_ACCOUNTS = ("", "default")  # the namespace's default ServiceAccount, which has no rights
# Read by the NVIDIA container runtime: a GPU node's devices (all of them) without requesting a GPU.
FORBIDDEN_ENV = ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")
# Taints a Dask pod may not tolerate: the control plane's and cordoned nodes'.
FORBIDDEN_TOLERATION_KEYS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master",
                             "node.kubernetes.io/unschedulable")
HOSTNAME_LABEL = "kubernetes.io/hostname"  # a node's name, as a label
# The scheduler Service's ports: Dask's comm and dashboard, by the operator's port names.
SERVICE_PORTS = {"tcp-comm": 8786, "http-dashboard": 8787}
SCHEDULER_SELECTOR_KEYS = ("dask.org/cluster-name", "dask.org/component")  # what the operator puts on the scheduler
# Labels that other pods' NetworkPolicies (z2jh's, deepvre's) trust to mean a user's server, the hub, the
# proxy or the dask-kubernetes operator: no Dask pod (nor its Service) may carry them.
FORBIDDEN_LABELS = ("component", "app", "app.kubernetes.io/name", "app.kubernetes.io/component",
                    "app.kubernetes.io/instance", "release", "heritage")
FORBIDDEN_LABEL_PREFIXES = ("hub.jupyter.org/", "deepvre.org/")


def _cel_list(values):
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _entry_at(path, key):
    """``[{'path': ..., <key>: object.<path>}]`` when ``object.<path>`` exists, else ``[]``."""
    parts = path.split(".")
    guards = " && ".join(f"has(object.{'.'.join(parts[:i])})" for i in range(1, len(parts) + 1))
    return f"({guards} ? [{{'path': '{path}', '{key}': object.{path}}}] : [])"


def _entries_expression(paths_by_kind, key):
    """The entries at this request's kind's paths (``[]`` for another kind)."""
    branches = [f"request.kind.kind == '{kind}' ? {' + '.join(_entry_at(p, key) for p in paths)}"
                for kind, paths in paths_by_kind.items()]
    return " : ".join(branches) + " : []"


def _present(field):
    return f"(has({field}) ? {field} : [])"


# Per pod spec entry ``x`` of variables.pods: x.path, x.spec and x.containers (containers,
# initContainers and ephemeralContainers together); per entry of variables.services: x.path and
# x.spec (a ServiceSpec); per entry of variables.labels: x.path and x.labels (a map).
VARIABLES = [
    ("podSpecs", _entries_expression(POD_SPEC_PATHS, "spec")),
    ("pods", "variables.podSpecs.map(x, {'path': x.path, 'spec': x.spec, 'containers': "
             f"{_present('x.spec.containers')} + {_present('x.spec.initContainers')} + "
             f"{_present('x.spec.ephemeralContainers')}}})"),
    ("services", _entries_expression(SERVICE_SPEC_PATHS, "spec")),
    ("labels", _entries_expression(LABEL_PATHS, "labels")),
]


def _true(field):
    return f"(has({field}) && {field} == true)"


def _false(field):
    return f"(has({field}) && {field} == false)"


def _unset(field):
    return f"(!has({field}) || {field} == '')"


def _node_selector_terms_by_name(terms):
    """Whether one of these NodeSelectorTerms picks nodes by name (matchFields, the hostname label)."""
    return (f"{terms}.exists(t, has(t.matchFields) && size(t.matchFields) > 0 || "
            f"has(t.matchExpressions) && t.matchExpressions.exists(e, e.key == '{HOSTNAME_LABEL}'))")


_NODE_AFFINITY = "x.spec.affinity.nodeAffinity"
_REQUIRED_TERMS = f"{_NODE_AFFINITY}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
_PREFERRED = f"{_NODE_AFFINITY}.preferredDuringSchedulingIgnoredDuringExecution"

# (condition every pod spec entry ``x`` of variables.pods must meet, message)
RULES = [
    (f"!{_true('x.spec.hostNetwork')} && !{_true('x.spec.hostPID')} && !{_true('x.spec.hostIPC')}",
     "Dask pods may not use the node's network, PID or IPC namespace (hostNetwork, hostPID, hostIPC)"),
    ("!has(x.spec.nodeName) || x.spec.nodeName == ''",
     "Dask pods may not set nodeName (the scheduler places them)"),
    ("!has(x.spec.volumes) || x.spec.volumes.all(v, "
     + " && ".join(f"!has(v.{t})" for t in FORBIDDEN_VOLUME_TYPES) + ")",
     f"Dask pods may only have volumes of types {', '.join(ALLOWED_VOLUME_TYPES)} (no hostPath, nfs, ...)"),
    (f"(!has(x.spec.serviceAccountName) || x.spec.serviceAccountName in {_cel_list(ALLOWED_SERVICE_ACCOUNTS)}) && "
     f"(!has(x.spec.serviceAccount) || x.spec.serviceAccount in {_cel_list(ALLOWED_SERVICE_ACCOUNTS)})",
     "Dask pods must run as the namespace's default ServiceAccount (serviceAccountName, serviceAccount)"),
    (f"{_false('x.spec.automountServiceAccountToken')} && (!has(x.spec.volumes) || x.spec.volumes.all(v, "
     "!has(v.projected) || !has(v.projected.sources) || v.projected.sources.all(s, !has(s.serviceAccountToken))))",
     "Dask pods must set automountServiceAccountToken: false and mount no serviceAccountToken"),
    ("x.containers.all(c, !has(c.securityContext) || !" + _true("c.securityContext.privileged") + ")",
     "Dask containers (also init and ephemeral) may not be privileged"),
    ("x.containers.all(c, has(c.securityContext) && " + _false("c.securityContext.allowPrivilegeEscalation") + ")",
     "Dask containers (also init and ephemeral) must set securityContext.allowPrivilegeEscalation: false"),
    ("x.containers.all(c, !has(c.securityContext) || !has(c.securityContext.capabilities) || "
     "!has(c.securityContext.capabilities.add) || "
     f"c.securityContext.capabilities.add.all(a, a in {_cel_list(ALLOWED_CAPABILITIES)}))",
     f"Dask containers (also init and ephemeral) may add no capabilities but {', '.join(ALLOWED_CAPABILITIES)}"),
    # a container's own runAsNonRoot overrides the pod's
    (f"x.containers.all(c, has(c.securityContext) && has(c.securityContext.runAsNonRoot) ? "
     f"c.securityContext.runAsNonRoot == true : (has(x.spec.securityContext) && "
     f"{_true('x.spec.securityContext.runAsNonRoot')}))",
     "Dask pods must set securityContext.runAsNonRoot: true (for the pod or for every container)"),
    (f"{_unset('x.spec.priorityClassName')} && !has(x.spec.priority) && "
     "(!has(x.spec.preemptionPolicy) || x.spec.preemptionPolicy == 'Never')",
     "Dask pods may not set priorityClassName or priority, nor a preemptionPolicy but Never "
     "(they may not preempt other pods)"),
    (f"{_unset('x.spec.runtimeClassName')} && "
     "(!has(x.spec.schedulerName) || x.spec.schedulerName in ['', 'default-scheduler'])",
     "Dask pods may not set runtimeClassName, nor a schedulerName but default-scheduler"),
    ("!has(x.spec.tolerations) || x.spec.tolerations.all(t, has(t.key) && t.key != '' && "
     f"!(t.key in {_cel_list(FORBIDDEN_TOLERATION_KEYS)}))",
     "Dask pods may only tolerate taints by key (an empty key tolerates every taint), and not "
     + ", ".join(FORBIDDEN_TOLERATION_KEYS)),
    (f"(!has(x.spec.nodeSelector) || !('{HOSTNAME_LABEL}' in x.spec.nodeSelector)) && "
     f"!(has(x.spec.affinity) && has({_NODE_AFFINITY}) && "
     f"(has({_NODE_AFFINITY}.requiredDuringSchedulingIgnoredDuringExecution) && has({_REQUIRED_TERMS}) && "
     f"{_node_selector_terms_by_name(_REQUIRED_TERMS)} || "
     f"has({_PREFERRED}) && {_node_selector_terms_by_name(_PREFERRED + '.filter(p, has(p.preference)).map(p, p.preference)')}))",
     f"Dask pods may not pick nodes by name: no matchFields nor {HOSTNAME_LABEL} in nodeAffinity, "
     f"no {HOSTNAME_LABEL} in nodeSelector"),
    (f"x.containers.all(c, !has(c.env) || c.env.all(e, !(e.name in {_cel_list(FORBIDDEN_ENV)})))",
     f"Dask containers (also init and ephemeral) may not set {' or '.join(FORBIDDEN_ENV)} (the GPU runtime "
     "would give them GPUs they did not request)"),
]

_PORT_NAMES = _cel_list(SERVICE_PORTS)
_TARGET_PORTS = _cel_list([*SERVICE_PORTS, *map(str, SERVICE_PORTS.values())])

# (condition every scheduler ServiceSpec entry ``x`` of variables.services must meet, message)
SERVICE_RULES = [
    ("(!has(x.spec.type) || x.spec.type == 'ClusterIP') && "
     + " && ".join(f"!has(x.spec.{f})" for f in ("externalName", "loadBalancerIP", "loadBalancerSourceRanges",
                                                   "loadBalancerClass", "allocateLoadBalancerNodePorts",
                                                   "externalTrafficPolicy", "healthCheckNodePort")),
     "The scheduler Service must be of type ClusterIP, with no externalName, loadBalancer* fields, "
     "externalTrafficPolicy nor healthCheckNodePort"),
    (f"(!has(x.spec.externalIPs) || size(x.spec.externalIPs) == 0) && {_unset('x.spec.clusterIP')} && "
     "(!has(x.spec.clusterIPs) || size(x.spec.clusterIPs) == 0)",
     "The scheduler Service may not claim addresses: no externalIPs, clusterIP nor clusterIPs"),
    (f"!has(x.spec.selector) || x.spec.selector.all(k, k in {_cel_list(SCHEDULER_SELECTOR_KEYS)}) && "
     "'dask.org/component' in x.spec.selector && x.spec.selector['dask.org/component'] == 'scheduler'",
     "The scheduler Service may only select the operator's scheduler pods "
     "(selector: dask.org/component: scheduler and dask.org/cluster-name)"),
    ("!has(x.spec.ports) || x.spec.ports.all(p, !has(p.nodePort) && "
     f"p.port in {list(SERVICE_PORTS.values())} && "
     f"(!has(p.targetPort) || string(p.targetPort) in {_TARGET_PORTS}) && "
     + " && ".join(f"(!has(p.name) || p.name != '{name}' || p.port == {port})" for name, port in SERVICE_PORTS.items())
     + ")",
     "The scheduler Service may only expose Dask's ports, "
     + " and ".join(f"{port} (named {name})" for name, port in SERVICE_PORTS.items())
     + ", with no nodePort and targetPort one of those or their names"),
]

# (condition every labels entry ``x`` of variables.labels must meet, message)
LABEL_RULES = [
    (f"x.labels.all(k, !(k in {_cel_list(FORBIDDEN_LABELS)}) && "
     + " && ".join(f"!k.startsWith('{prefix}')" for prefix in FORBIDDEN_LABEL_PREFIXES) + ")",
     "Dask resources may not set the labels other pods' NetworkPolicies trust (the operator copies them onto "
     f"its pods and Service): {', '.join(FORBIDDEN_LABELS)}, "
     + ", ".join(f"{prefix}*" for prefix in FORBIDDEN_LABEL_PREFIXES)),
]


def _validation(variable, condition, message):
    failing = f"variables.{variable}.filter(x, !({condition}))"
    return {"expression": f"variables.{variable}.all(x, {condition})", "message": message,
            # names the first offending entry: "spec.worker.spec: <message>" (on an error Kubernetes says message)
            "messageExpression": f"{failing}[0].path + {json.dumps(': ' + message)}",
            "reason": "Forbidden"}


def _namespace_selector():
    return {"matchLabels": {USER_NAMESPACE_LABEL: "true"}}


def dask_admission_policy():
    """``[ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding]``: in the users' namespaces,
    Dask resources whose pod specs, scheduler Service or labels break a rule of :data:`RULES`,
    :data:`SERVICE_RULES` or :data:`LABEL_RULES` are denied on create and update."""
    policy = {
        "apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Fail",  # an expression that errors denies too
            "matchConstraints": {
                "namespaceSelector": _namespace_selector(),
                "resourceRules": [{"apiGroups": [DASK_GROUP], "apiVersions": ["*"],
                                   "resources": list(RESOURCES.values()), "operations": ["CREATE", "UPDATE"]}],
            },
            "variables": [{"name": name, "expression": expression} for name, expression in VARIABLES],
            "validations": [_validation(variable, condition, message)
                            for variable, rules in (("pods", RULES), ("services", SERVICE_RULES),
                                                    ("labels", LABEL_RULES))
                            for condition, message in rules],
        },
    }
    binding = {
        "apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": _namespace_selector()}},
    }
    return [policy, binding]
