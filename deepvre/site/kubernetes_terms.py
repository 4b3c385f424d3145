"""Kubernetes terms the core needs inside a user's pod (the hub's values and manifests are
``deepvre_hub.kubernetes``)."""

from .environment import Environment


def pod_owner_reference(environ=None):
    """An ownerReference to the user's own pod, for the DaskClusters it creates.

    Reads the downward-API variables the values put in every user pod; None
    outside Kubernetes. With it the cluster is deleted when the pod goes.
    """
    env = Environment(environ)
    name, uid = env.pod_name, env.pod_uid
    if not (name and uid):
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid, "blockOwnerDeletion": False}
