"""Kubernetes terms the core needs inside a user's pod (the hub's values and manifests are
``deepvre_hub.kubernetes``)."""

import os


def pod_owner_reference(environ=os.environ):
    """An ownerReference to the user's own pod, for the DaskClusters it creates.

    Reads the downward-API variables the values put in every user pod; None
    outside Kubernetes. With it the cluster is deleted when the pod goes.
    """
    name, uid = environ.get("DEEPVRE_POD_NAME"), environ.get("DEEPVRE_POD_UID")
    if not (name and uid):
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid, "blockOwnerDeletion": False}
