"""The ValidatingAdmissionPolicy on the pod specs users put in dask-kubernetes resources.

A user's pod may create DaskCluster, DaskWorkerGroup and DaskJob resources in the user's own
namespace (labelled :data:`USER_NAMESPACE_LABEL`); the dask-kubernetes operator copies the pod
specs inside them into real pods. The policy admits only pod specs without host access,
privileges or a ServiceAccount token with rights: what ``deepvre.pipelines.clusters.restrict_pod``
makes. Pure builders; admissionregistration.k8s.io/v1 (Kubernetes >= 1.30).

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
RESOURCES = {"DaskCluster": "daskclusters", "DaskWorkerGroup": "daskworkergroups", "DaskJob": "daskjobs"}

# A Volume is its name plus one source: only these (no hostPath, nfs, iscsi, ...).
ALLOWED_VOLUME_TYPES = ("persistentVolumeClaim", "emptyDir", "configMap", "secret", "projected", "downwardAPI",
                        "ephemeral")
# The other sources a Volume may name in the operator's CRDs (their PodSpec schema; unknown
# fields are pruned before admission). Checked field by field: the CRDs type a Volume as an
# object, which CEL cannot iterate by key.
FORBIDDEN_VOLUME_TYPES = ("awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc", "flexVolume",
                          "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "hostPath", "iscsi", "nfs",
                          "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos",
                          "vsphereVolume")
ALLOWED_CAPABILITIES = ("NET_BIND_SERVICE",)  # the only one Pod Security "restricted" lets a container add
ALLOWED_SERVICE_ACCOUNTS = ("", "default")  # the namespace's default ServiceAccount, which has no rights


def _cel_list(values):
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _pod_spec_at(path):
    """``[{'path': ..., 'spec': <the PodSpec>}]`` when ``object.<path>`` exists, else ``[]``."""
    parts = path.split(".")
    guards = " && ".join(f"has(object.{'.'.join(parts[:i])})" for i in range(1, len(parts) + 1))
    return f"({guards} ? [{{'path': '{path}', 'spec': object.{path}}}] : [])"


def _pod_specs_expression():
    branches = [f"request.kind.kind == '{kind}' ? {' + '.join(_pod_spec_at(p) for p in paths)}"
                for kind, paths in POD_SPEC_PATHS.items()]
    return " : ".join(branches) + " : []"


def _present(field):
    return f"(has({field}) ? {field} : [])"


# Per pod spec entry ``x`` of variables.pods: x.path, x.spec and x.containers (containers,
# initContainers and ephemeralContainers together).
VARIABLES = [
    ("podSpecs", _pod_specs_expression()),
    ("pods", "variables.podSpecs.map(x, {'path': x.path, 'spec': x.spec, 'containers': "
             f"{_present('x.spec.containers')} + {_present('x.spec.initContainers')} + "
             f"{_present('x.spec.ephemeralContainers')}}})"),
]


def _true(field):
    return f"(has({field}) && {field} == true)"


def _false(field):
    return f"(has({field}) && {field} == false)"


# (condition every pod spec entry ``x`` must meet, message)
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
]


def _validation(condition, message):
    failing = f"variables.pods.filter(x, !({condition}))"
    return {"expression": f"variables.pods.all(x, {condition})", "message": message,
            # names the first offending pod spec: "spec.worker.spec: <message>" (on an error Kubernetes says message)
            "messageExpression": f"{failing}[0].path + {json.dumps(': ' + message)}",
            "reason": "Forbidden"}


def _namespace_selector():
    return {"matchLabels": {USER_NAMESPACE_LABEL: "true"}}


def dask_admission_policy():
    """``[ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding]``: in the users' namespaces,
    Dask resources whose pod specs break a rule of :data:`RULES` are denied on create and update."""
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
            "validations": [_validation(condition, message) for condition, message in RULES],
        },
    }
    binding = {
        "apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": _namespace_selector()}},
    }
    return [policy, binding]
