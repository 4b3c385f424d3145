"""What Kubernetes itself would decide about deepvre's objects, for offline tests: RBAC
(who may do what, where), NetworkPolicy (who reaches whom) and the Pod Security Standards'
"restricted" level. Small evaluators of the documented semantics, kept apart from deepvre's
code so the tests do not grade deepvre against itself:

* RBAC: https://kubernetes.io/docs/reference/access-authn-authz/rbac/ (a RoleBinding grants
  its Role or ClusterRole's rules in the binding's namespace only; a ClusterRoleBinding
  everywhere).
* NetworkPolicy: https://kubernetes.io/docs/concepts/services-networking/network-policies/
  (a pod selected by no policy of a direction admits everything; a peer with only a
  podSelector means the policy's own namespace).
* Pod Security Standards, restricted: https://kubernetes.io/docs/concepts/security/pod-security-standards/
"""

from dataclasses import dataclass, field


@dataclass
class Pod:
    namespace: str
    labels: dict
    spec: dict = field(default_factory=dict)


def _rules(objects, kind, name):
    return next((o["rules"] for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), [])


def _rule_allows(rule, verb, group, resource, name):
    return ((group in rule["apiGroups"] or "*" in rule["apiGroups"])
            and (resource in rule["resources"] or "*" in rule["resources"])
            and (verb in rule["verbs"] or "*" in rule["verbs"])
            and (not rule.get("resourceNames") or name in rule["resourceNames"]))


def can(objects, service_account, verb, resource, namespace, group="", name=None):
    """Whether ``service_account`` (``"ns/name"``) may ``verb`` ``resource`` in ``namespace``."""
    sa_ns, sa_name = service_account.split("/")
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa_name and s.get("namespace", binding["metadata"].get("namespace")) == sa_ns
                   for s in binding.get("subjects", [])):
            continue
        ref = binding["roleRef"]
        rules = _rules(objects, ref["kind"], ref["name"]) if ref["kind"] == "ClusterRole" else [
            r for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == ref["name"]
            and o["metadata"]["namespace"] == binding["metadata"]["namespace"] for r in o["rules"]]
        if any(_rule_allows(rule, verb, group, resource, name) for rule in rules):
            return True
    return False


def _matches_labels(selector, labels):
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer, policy_ns, pod, namespaces):
    if "ipBlock" in peer:
        return False  # pods are reached by pod and namespace selectors here
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        ns_ok = pod.namespace == policy_ns
    else:
        ns_ok = _matches_labels(ns_selector, namespaces.get(pod.namespace, {}))
    return ns_ok and _matches_labels(peer.get("podSelector", {}), pod.labels)


def _port_ok(rule, port):
    ports = rule.get("ports")
    return not ports or port is None or any(p.get("port") == port for p in ports)


def _direction_allows(policies, direction, subject, peer, port, namespaces):
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [p for p in policies if p["kind"] == "NetworkPolicy" and p["metadata"]["namespace"] == subject.namespace
                 and direction in p["spec"].get("policyTypes", ["Ingress"])
                 and _matches_labels(p["spec"]["podSelector"], subject.labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            if not _port_ok(rule, port):
                continue
            if peers is None or any(_peer_matches(x, policy["metadata"]["namespace"], peer, namespaces) for x in peers):
                return True
    return False


def reaches(policies, namespaces, source, target, port=None):
    """Whether ``source`` may open a connection to ``target`` (on ``port``): the source's egress
    and the target's ingress must both allow it. ``namespaces``: {name: labels}."""
    return (_direction_allows(policies, "Egress", source, target, port, namespaces)
            and _direction_allows(policies, "Ingress", target, source, port, namespaces))


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}


def restricted_violations(pod_spec):
    """The Pod Security Standards' "restricted" checks a pod spec fails (empty: admitted)."""
    out = []
    pod_ctx = pod_spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            out.append(key)
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"volume {volume['name']}: {sorted(kinds - ALLOWED_VOLUMES)}")
    containers = [c for key in ("containers", "initContainers", "ephemeralContainers") for c in pod_spec.get(key) or []]
    for c in containers:
        ctx = c.get("securityContext") or {}
        name = c.get("name")
        if ctx.get("privileged"):
            out.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation not false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities not dropping ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: capabilities added")
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{name}: runAsNonRoot not true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile {seccomp}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            out.append(f"{name}: hostPort")
    return out
