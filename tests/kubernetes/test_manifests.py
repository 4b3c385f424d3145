"""The real KubeSpawner, configured from the rendered z2jh values, builds each profile's pod,
PVC and service; they carry the profile's resources and validate against the Kubernetes schemas."""

import kubernetes_validate
import pytest
from kubespawner.objects import make_owner_reference

from .conftest import NAMESPACE, make_spawner, serialize

K8S_VERSION = "1.32.0"  # the pinned z2jh chart's minimum (kubeVersion >=1.32)


def validate(manifest):
    # KubeSpawner's objects leave apiVersion to the client, which posts them to /api/v1.
    kubernetes_validate.validate({"apiVersion": "v1", **manifest}, K8S_VERSION, strict=True)


@pytest.fixture(params=["cpu-small", "gpu-1", "gpu-2-custom"])
def slug(request):
    return request.param


async def test_every_profile_builds_valid_manifests(values, settings, slug):
    spawner = await make_spawner(values, slug, user="alice", groups=["gpu-users"])
    pod = serialize(await spawner.get_pod_manifest())
    pvc = serialize(spawner.get_pvc_manifest())
    owner = make_owner_reference(pod["metadata"]["name"], "6f1c2e1a-0000-4000-8000-000000000001")
    service = serialize(spawner.get_service_manifest(owner, spawner.port))
    for manifest in (pod, pvc, service):
        validate(manifest)

    profile = next(p for p in settings["profiles"] if p["slug"] == slug)
    container = pod["spec"]["containers"][0]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    gpus = profile["gpus"]

    # resources from the profile (guarantees are half the limits by default)
    assert float(limits["cpu"]) == profile["cpu"]
    assert float(requests["cpu"]) == profile["cpu"] / 2
    assert limits["memory"] == int(profile["memory"].rstrip("G")) * 2**30
    if gpus:
        assert limits["nvidia.com/gpu"] == str(gpus)
        assert pod["spec"]["nodeSelector"]["nvidia.com/gpu.present"] == "true"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    else:
        assert "nvidia.com/gpu" not in limits
        assert not pod["spec"].get("nodeSelector")
        assert not any(t["key"] == "nvidia.com/gpu" for t in pod["spec"]["tolerations"])
    # the chart's dedicated-user-node toleration survives a profile's own tolerations
    assert any(t["key"] == "hub.jupyter.org/dedicated" for t in pod["spec"]["tolerations"])

    # image: the profile's own, else the GPU or CPU image
    expected = profile.get("image") or ("ghcr.io/deepvre/singleuser-gpu:0.1.0" if gpus else "ghcr.io/deepvre/singleuser-cpu:0.1.0")
    assert container["image"] == expected

    # environment: profile, GPU count, and the pod's own identity for Dask ownerReferences
    env = {e["name"]: e for e in container["env"]}
    assert env["DEEPVRE_PROFILE"]["value"] == slug
    assert env["DEEPVRE_GPUS"]["value"] == str(gpus)
    assert env["DEEPVRE_IMAGE"]["value"] == expected  # what its runs' environment records name
    assert env["DEEPVRE_MODE"]["value"] == "kubernetes"
    assert env["DEEPVRE_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["DEEPVRE_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    # volumes: the user's own PVC at home, /dev/shm in memory sized from the profile
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    home = volumes[mounts["/home/jovyan"]]
    assert home["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"] == "claim-alice"
    shm = volumes[mounts["/dev/shm"]]["emptyDir"]
    assert shm["medium"] == "Memory"
    assert shm["sizeLimit"] == f"{limits['memory'] // 4 // 2**20}Mi"
    assert len(volumes) == 2  # the profile's volumes replaced the base ones, not added to them

    # PVC: dynamic, the configured size
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]

    # security: non-root, no privilege escalation, no capabilities
    csc, psc = container["securityContext"], pod["spec"]["securityContext"]
    assert csc["runAsUser"] == 1000 and csc["runAsNonRoot"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert not csc.get("privileged")
    assert psc["fsGroup"] == 100 and psc["runAsNonRoot"] is True
    assert not pod["spec"].get("initContainers")  # no root iptables init container

    # Dask: the user namespace's service account (bound there by the hub); network policy label for the hub
    assert pod["spec"]["serviceAccountName"] == "deepvre-user"
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    assert spawner.namespace == f"{NAMESPACE}-u-alice"  # objects are posted to the user's own namespace


async def test_group_restricted_profiles_are_hidden_and_refused(values):
    """KubeSpawner's own form and profile loading see only the profiles of the user's groups."""
    outsider = await make_spawner(values, user="bob", groups=["researchers"])
    form = await outsider._render_options_form_dynamically(outsider)
    assert "cpu-small" in form and "gpu-1" not in form and "gpu-2-custom" not in form
    outsider.user_options = {"profile": "gpu-1"}
    with pytest.raises(ValueError, match="No such profile: gpu-1"):
        await outsider.load_user_options()

    admin = await make_spawner(values, "gpu-2-custom", user="carol", groups=["hub-admins"])
    assert admin.extra_resource_limits == {"nvidia.com/gpu": "2"}
    form = await admin._render_options_form_dynamically(admin)
    assert "gpu-2-custom" in form and "gpu-1" not in form


async def test_default_profile_without_choice(values):
    spawner = await make_spawner(values, user="dave")
    pod = serialize(await spawner.get_pod_manifest())
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["DEEPVRE_PROFILE"] == "cpu-small"


def test_rbac_manifests_validate(settings):
    from deepvre_hub.kubernetes import manifests

    objects = manifests(settings)
    assert [o["kind"] for o in objects] == ["ClusterRole", "ClusterRoleBinding",  # the hub, for user namespaces
                                            "ClusterRole",  # the users', bound in their own namespaces
                                            "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                                            "NetworkPolicy"]  # the operator's egress
    for obj in objects:
        validate(obj)
