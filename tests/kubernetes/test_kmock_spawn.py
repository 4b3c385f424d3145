"""KubeSpawner start / poll / stop against the kmock Kubernetes emulator on loopback.

The emulator stores what KubeSpawner and the hub's user-namespace hook create (the namespace,
its ServiceAccount, RoleBinding and NetworkPolicies, the PVC and the pod) and streams watch
events; this test plays the kubelet: it fills what the API server would (uid,
resourceVersion, creationTimestamp) and marks the pod Running with podIP 127.0.0.1.
"""

import asyncio
import datetime
import uuid

import kmock
import pytest

from .conftest import NAMESPACE, make_spawner

RESOURCES = ("v1/pods", "v1/persistentvolumeclaims", "v1/events", "v1/services", "v1/secrets", "v1/namespaces",
             "v1/serviceaccounts", "rbac.authorization.k8s.io/v1/rolebindings",
             "networking.k8s.io/v1/networkpolicies", "v1/resourcequotas", "v1/limitranges")


async def _wait_for(predicate, what, timeout=60):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _live(emulator, plural, name, namespace):
    for (resource, obj_namespace, obj_name), obj in emulator.objects.items():
        if resource.plural == plural and obj_namespace == namespace and obj_name == name and not obj.deleted:
            return obj
    return None


@pytest.fixture
def namespaces_resource(monkeypatch):
    """kmock 0.8 reads ``/api/v1/namespaces[/<name>]`` as a path inside a namespace (and fails):
    parse it as the cluster-scoped resource it is."""
    from kmock._internal import parsing

    original = parsing.parse_path

    def parse_path(path):
        parts = path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
            return parsing.ParsedPath("", "v1", "namespaces", None, parts[3] if len(parts) == 4 else None, None)
        return original(path)

    monkeypatch.setattr(parsing, "parse_path", parse_path)


async def test_start_poll_stop(values, namespaces_resource):
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
        for resource in RESOURCES:
            emulator.resources[resource] = {}
        spawner = await make_spawner(values, "gpu-1", user="erin", groups=["gpu-users"],
                                     k8s_api_host=str(server.url).rstrip("/"), start_timeout=60,
                                     http_timeout=60)
        start = asyncio.ensure_future(spawner.start())

        # the kubelet: the pod appears, gets its API-server fields, then runs
        pod_name, ns = spawner.pod_name, spawner.namespace
        assert ns == f"{NAMESPACE}-u-erin"
        await _wait_for(lambda: _live(emulator, "pods", pod_name, ns) or start.done(), "the pod")
        assert not start.done(), start.exception() if start.done() else None
        created = _live(emulator, "pods", pod_name, ns).raw
        # the user's namespace, made by KubeSpawner, and what the hub put in it before the pod
        labels = _live(emulator, "namespaces", ns, None).raw["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["deepvre.org/user-namespace"] == "true"
        binding = _live(emulator, "rolebindings", "deepvre-user", ns).raw
        assert binding["roleRef"]["name"] == "deepvre-user" and binding["subjects"][0]["namespace"] == ns
        assert _live(emulator, "serviceaccounts", "deepvre-user", ns) is not None
        assert _live(emulator, "networkpolicies", "deepvre-singleuser", ns) is not None
        assert _live(emulator, "networkpolicies", "deepvre-dask", ns) is not None
        quota = _live(emulator, "resourcequotas", "deepvre-user-quota", ns).raw["spec"]["hard"]
        assert quota["requests.nvidia.com/gpu"] == "2" and quota["services.nodeports"] == "0"
        assert _live(emulator, "limitranges", "deepvre-user-quota", ns) is not None
        assert _live(emulator, "namespaces", ns, None).raw["metadata"]["annotations"]["deepvre.org/username"] == "erin"
        assert created["spec"]["serviceAccountName"] == "deepvre-user"
        container = created["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        # the notebooks' copy at the first start: the command tests/images runs in the built image
        from deepvre_hub import examples

        assert container["lifecycle"] == examples.lifecycle_hooks()
        assert created["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB"
        assert _live(emulator, "persistentvolumeclaims", "claim-erin", ns) is not None

        now = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {
            "metadata": {"namespace": ns, "uid": str(uuid.uuid4()), "resourceVersion": "2",
                         "creationTimestamp": now},
            "status": {"phase": "Running", "podIP": "127.0.0.1", "containerStatuses": [
                {"name": "notebook", "ready": True, "restartCount": 0, "image": container["image"],
                 "imageID": "", "state": {"running": {"startedAt": now}}},
            ]},
        }
        async with emulator.patch(f"/api/v1/namespaces/{ns}/pods/{pod_name}", json=patch) as resp:
            assert resp.status == 200, await resp.text()

        url = await asyncio.wait_for(start, 90)
        assert url == f"http://127.0.0.1:{spawner.port}"
        assert await spawner.poll() is None  # running

        await asyncio.wait_for(spawner.stop(), 90)
        assert _live(emulator, "pods", pod_name, ns) is None
        assert await spawner.poll() == 1  # gone
        assert _live(emulator, "persistentvolumeclaims", "claim-erin", ns) is not None  # the user's files stay
