"""Rendered z2jh values and `deepvre deploy kubernetes`: structure, bad values, Dask RBAC.

The chart's values.schema.json is inside the chart tarball, which cannot be fetched here
(network: PyPI, apt, npm only), so the structure the chart reads is asserted instead.
"""

import copy
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from deepvre.site import kubernetes_terms
from deepvre_hub import kubernetes as k8s

from .conftest import SETTINGS_FILE


def test_values_structure(values):
    hub, single = values["hub"], values["singleuser"]
    assert hub["image"] == {"name": "ghcr.io/deepvre/hub", "tag": "0.1.0", "pullPolicy": "IfNotPresent"}
    # marketplace and idle culler as hub services, each with a role
    assert set(hub["services"]) == {"marketplace", "idle-culler"}
    assert hub["services"]["marketplace"]["url"] == "http://hub:10101"
    assert {"marketplace", "idle-culler"} <= {s for r in hub["loadRoles"].values() for s in r.get("services", [])}
    culler = hub["services"]["idle-culler"]["command"]
    assert "--timeout=900" in culler  # the shortest limit (GPU / profile idle_timeout)
    config_file = hub["extraFiles"]["idle-culler-config"]
    assert f"--config={config_file['mountPath']}" in culler
    assert "make_cull_arbiter" in config_file["stringData"] and '"gpu-1": 900' in config_file["stringData"]
    assert values["cull"] == {"enabled": False}
    # OIDC: GenericOAuthenticator in hub.config, secret from a k8s Secret, groups by extraConfig
    oauth = hub["config"]["GenericOAuthenticator"]
    assert hub["config"]["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert oauth["client_id"] == "deepvre" and oauth["manage_groups"] is True
    assert oauth["allowed_groups"] == ["gpu-users", "researchers"] and oauth["admin_groups"] == ["hub-admins"]
    assert oauth["oauth_callback_url"] == "https://hub.example.org/hub/oauth_callback"
    assert "client_secret" not in oauth
    secret_ref = hub["extraEnv"]["DEEPVRE_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert secret_ref == {"name": "deepvre-oidc", "key": "client-secret"}
    assert "oidc.configure(c" in hub["extraConfig"]["deepvre-oidc"]
    # per-user PVC, /dev/shm in memory (KubeSpawner's traits), network policies, no root init container
    spawner = hub["config"]["KubeSpawner"]
    assert spawner["pvc_name_template"] == "claim-{user_server}" and spawner["storage_capacity"] == "20Gi"
    assert spawner["storage_pvc_ensure"] is True and spawner["storage_access_modes"] == ["ReadWriteOnce"]
    assert spawner["volumes"][0] == {"name": "volume-{user_server}",
                                     "persistentVolumeClaim": {"claimName": "claim-{user_server}"}}
    assert spawner["volumes"][1]["emptyDir"]["medium"] == "Memory"
    assert spawner["volume_mounts"] == [{"name": "volume-{user_server}", "mountPath": "/home/jovyan"},
                                        {"name": "dshm", "mountPath": "/dev/shm"}]
    assert single["networkPolicy"]["enabled"] and hub["networkPolicy"]["enabled"]
    assert values["proxy"]["chp"]["networkPolicy"]["enabled"]
    assert single["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
    assert single["cloudMetadata"] == {"blockWithIptables": False}
    assert spawner["uid"] == 1000 and spawner["allow_privilege_escalation"] is False
    # one source: the profile list is the settings' profiles
    assert [p["slug"] for p in spawner["profile_list"]] == ["cpu-small", "gpu-1", "gpu-2-custom"]
    assert values["ingress"]["hosts"] == ["hub.example.org"]
    # the whole thing is plain data (what helm reads)
    assert yaml.safe_load(yaml.safe_dump(values)) == values



# What z2jh 4.4.0's jupyterhub_config.py maps from singleuser.* onto KubeSpawner, besides
# singleuser.image (image, image_pull_policy) and the tolerations: deepvre says none of it there.
CHART_SPAWNER_KEYS = {
    "podNameTemplate", "startTimeout", "events", "extraLabels", "extraAnnotations", "allowPrivilegeEscalation",
    "uid", "fsGid", "serviceAccountName", "nodeSelector", "extraNodeAffinity", "extraPodAffinity",
    "extraPodAntiAffinity", "lifecycleHooks", "initContainers", "extraContainers", "cpu", "extraResource",
    "extraEnv", "profileList", "extraPodConfig", "extraFiles", "cmd", "defaultUrl",
}


def test_the_spawner_settings_are_kubespawner_traits_in_hub_config(values):
    """Every KubeSpawner setting deepvre relies on is under hub.config.KubeSpawner, by trait name
    and in KubeSpawner's format; the chart applies that verbatim, over its own singleuser.* mapping."""
    from kubespawner import KubeSpawner

    spawner = values["hub"]["config"]["KubeSpawner"]
    for trait in ("namespace", "image", "image_pull_policy", "profile_list", "environment", "cpu_limit", "cpu_guarantee",
                  "mem_limit", "mem_guarantee", "tolerations", "extra_labels", "pvc_name_template", "storage_pvc_ensure",
                  "storage_capacity", "storage_access_modes", "volumes", "volume_mounts", "uid", "fs_gid",
                  "service_account", "allow_privilege_escalation", "enable_user_namespaces"):
        assert trait in spawner, trait
    assert set(spawner) <= set(KubeSpawner.class_trait_names(config=True))
    assert spawner["namespace"] == "deepvre" and spawner["service_account"] == "deepvre-user"
    assert spawner["image"] == "ghcr.io/deepvre/singleuser-cpu:0.1.0"
    assert spawner["cpu_limit"] == 2.0 and spawner["mem_limit"] == 4 * 2**30  # the default profile's
    assert spawner["environment"]["DEEPVRE_MARKET_URL"] == "http://hub.deepvre.svc:10101/services/marketplace/"
    assert spawner["extra_labels"] == {"hub.jupyter.org/network-access-hub": "true"}
    # the chart's own keys say nothing to KubeSpawner that hub.config does not say the same way
    single = values["singleuser"]
    assert not CHART_SPAWNER_KEYS & set(single)
    assert single["storage"] == {"type": "none"}  # no home volume of the chart's own
    assert single["memory"] == {"guarantee": None}  # nor its default 1G guarantee


def test_the_charts_own_keys_agree_with_hub_config(values):
    """Where the chart reads a key for objects it renders itself (image pullers) and also maps it onto
    KubeSpawner, it says what hub.config.KubeSpawner says."""
    spawner, single = values["hub"]["config"]["KubeSpawner"], values["singleuser"]
    assert f"{single['image']['name']}:{single['image']['tag']}" == spawner["image"]
    assert single["image"]["pullPolicy"] == spawner["image_pull_policy"]
    tolerations = values["scheduling"]["userPods"]["tolerations"] + single.get("extraTolerations", [])
    assert tolerations == spawner["tolerations"]
    assert single.get("nodeSelector", {}) == spawner.get("node_selector", {})
    # the pullers pull every profile's image: singleuser.image and prePuller.extraImages
    pulled = {spawner["image"]} | {f"{i['name']}:{i['tag']}" for i in values["prePuller"]["extraImages"].values()}
    assert pulled == {p["kubespawner_override"]["image"] for p in spawner["profile_list"]} | {spawner["image"]}
    assert len(pulled) == 1 + len(values["prePuller"]["extraImages"])


async def test_a_spawner_from_hub_config_and_extra_config_alone(values):
    """The chart's order (conftest.hub_config: hub.config verbatim, then each extraConfig snippet by key)
    gives KubeSpawner the profile's image, resources and volumes, and the group filter."""
    from .conftest import hub_config, make_spawner

    c = hub_config(values)
    assert callable(c.KubeSpawner.profile_list)  # hub.extraConfig.deepvre-profiles
    assert "pre_spawn_hook" in c.KubeSpawner and "modify_pod_hook" in c.KubeSpawner  # deepvre-user-namespaces
    spawner = await make_spawner(values, "gpu-2-custom", user="carol", groups=["hub-admins"])
    assert spawner.image == "registry.example.org/lab/tf-nightly:2026.11"
    assert spawner.cpu_limit == 8.0 and spawner.mem_limit == 32 * 2**30
    assert spawner.extra_resource_limits == {"nvidia.com/gpu": "2"}
    assert [v["name"] for v in spawner.volumes] == ["volume-{user_server}", "dshm"]
    assert [m["mountPath"] for m in spawner.volume_mounts] == ["/home/jovyan", "/dev/shm"]
    assert spawner.storage_capacity == "20Gi" and spawner.pvc_name_template == "claim-{user_server}"


def test_no_path_of_the_rendering_machine_in_the_values(settings):
    """The values go to a cluster: nothing in them names the checkout, the virtualenv or $HOME here."""
    import os
    import sys

    from deepvre.site.settings import REPO_ROOT

    rendered = yaml.safe_dump(k8s.z2jh_values(settings)) + yaml.safe_dump_all(k8s.manifests(settings))
    here = {sys.prefix, str(Path(sys.prefix).resolve()), str(Path(k8s.__file__).resolve().parents[2]),
            os.path.expanduser("~"), str(Path(REPO_ROOT).resolve()) if REPO_ROOT else ""}
    for path in here - {"/", ""}:
        assert path not in rendered, path


def test_oidc_settings_reach_the_values(settings):
    """With discovery (issuer only), every data key of ``oidc:`` still reaches hub.config or the hub's extraConfig."""
    from deepvre.site.settings import validate_settings

    bad = copy.deepcopy(settings)
    oidc = bad["oidc"]
    for key in ("authorize_url", "token_url", "userdata_url"):
        del oidc[key]
    oidc.update({
        "issuer": "https://aai.example.org/auth/realms/egi",
        "scopes": ["openid", "eduperson_entitlement", "offline_access"],
        "groups": {"claim": "eduperson_entitlement", "pattern": "^urn:x:(?P<group>[^#]+)$", "rename": {"a": "b"}},
        "refresh_age": 120,
        "callback_url": "https://hub.example.org/custom/oauth_callback",
        "authorize_params": {"prompt": "consent"},
    })
    values = k8s.z2jh_values(validate_settings(bad))
    oauth = values["hub"]["config"]["GenericOAuthenticator"]
    assert oauth["scope"] == ["openid", "eduperson_entitlement", "offline_access"]
    assert oauth["auth_refresh_age"] == 120
    assert oauth["oauth_callback_url"] == "https://hub.example.org/custom/oauth_callback"
    assert oauth["extra_authorize_params"] == {"prompt": "consent"}
    assert oauth["allowed_groups"] == ["gpu-users", "researchers"] and oauth["manage_groups"] is True
    assert "authorize_url" not in oauth  # found by discovery when the hub starts
    # the groups mapping is code (a callable): oidc.configure installs it from the settings in extraConfig
    snippet = values["hub"]["extraConfig"]["deepvre-oidc"]
    assert "eduperson_entitlement" in snippet and "(?P<group>[^#]+)" in snippet and "aai.example.org" in snippet

def _bad(settings, where, value):
    bad = copy.deepcopy(settings)
    node = bad
    *path, last = where
    for part in path:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return bad


@pytest.mark.parametrize("where, value, message", [
    (("profiles", 1, "gpus"), 0, r"profiles\[1\]\.gpus: GPU profile 'gpu-1' .* has no GPU count"),
    (("profiles", 1, "gpus"), KeyError, r"profiles\[1\]\.gpus: GPU profile 'gpu-1' .* has no GPU count"),
    (("profiles", 0, "gpu"), 1, r"profiles\[0\]\.gpu: unknown key \(known: cpu, "),
    (("profiles", 2, "memory"), "lots", r"profiles\[2\]\.memory: 'lots' does not match"),
    (("kubernetes", "storage", "capcity"), "5Gi", r"kubernetes\.storage\.capcity: unknown key \(known: capacity, "),
    (("kubernetes", "gpu", "resource"), 7, r"kubernetes\.gpu\.resource: 7 is not of type 'string'"),
    (("kubernetes", "shm_fraction"), 2, r"kubernetes\.shm_fraction: 2 is greater than the maximum of 1"),
])
def test_bad_values_fail_naming_the_key(settings, where, value, message):
    with pytest.raises(k8s.RenderError, match=message):
        k8s.z2jh_values(_bad(settings, where, value))


def test_users_cluster_role_allows_what_kubecluster_does_and_no_pod_creation(settings):
    role = k8s.user_cluster_role()
    allowed = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    for resource in ("daskclusters", "daskworkergroups", "daskautoscalers"):
        for verb in ("create", "get", "list", "watch", "patch", "delete"):
            assert ("kubernetes.dask.org", resource, verb) in allowed
    for resource in ("pods", "services"):
        for verb in ("get", "list", "watch"):
            assert ("", resource, verb) in allowed
    assert ("", "pods/log", "get") in allowed
    # users' pods never create pods themselves: the operator does (else: mount anyone's PVC)
    assert ("", "pods", "create") not in allowed
    # the users' role is bound in their own namespaces only, never cluster-wide
    assert not any(o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == role["metadata"]["name"]
                   for o in k8s.manifests(settings))
    no_dask = k8s.manifests(_bad(settings, ("kubernetes", "dask", "enabled"), False))
    assert [o["kind"] for o in no_dask] == ["ClusterRole", "ClusterRoleBinding"]  # the hub's only


def _cluster_spec():
    """The preprocessing area's DaskCluster builder (deepvre.pipelines.clusters), else the operator's."""
    try:
        from deepvre.pipelines.clusters import kubernetes_cluster_spec
    except ImportError:
        from dask_kubernetes.operator import make_cluster_spec

        return make_cluster_spec(name="alice-prep", image="ghcr.io/deepvre/singleuser-cpu:0.1.0", n_workers=2,
                                 env={"DEEPVRE_MODE": "kubernetes"}, resources={"limits": {"cpu": "1"}})
    return kubernetes_cluster_spec(n_workers=2)


def test_dask_cluster_owned_by_the_user_pod_is_valid_and_allowed(settings):
    """The DaskCluster a user's KubeCluster creates, owned by their pod, validates against the
    operator's CRD, and the rendered Role lets the user's service account create it."""
    import jsonschema

    environ = {"DEEPVRE_POD_NAME": "jupyter-alice", "DEEPVRE_POD_UID": "6f1c2e1a-0000-4000-8000-000000000001"}
    owner = kubernetes_terms.pod_owner_reference(environ)
    spec = _cluster_spec()
    spec["metadata"]["ownerReferences"] = [owner]
    crd_file = Path(__import__("dask_kubernetes").__file__).parent / (
        "operator/deployment/helm/dask-kubernetes-operator/crds/daskcluster.yaml")
    crd = yaml.safe_load(crd_file.read_text())
    group, version = spec["apiVersion"].split("/")
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    jsonschema.validate(spec, schema)
    assert owner == {"apiVersion": "v1", "kind": "Pod", "name": "jupyter-alice",
                     "uid": environ["DEEPVRE_POD_UID"], "blockOwnerDeletion": False}
    assert kubernetes_terms.pod_owner_reference({}) is None

    role = k8s.user_cluster_role()
    plural = crd["spec"]["names"]["plural"]
    assert crd["spec"]["group"] == group and spec["kind"] == crd["spec"]["names"]["kind"]
    assert any(group in r["apiGroups"] and plural in r["resources"] and "create" in r["verbs"] for r in role["rules"])


def test_deploy_render_cli(tmp_path):
    from deepvre.cli import main

    out = tmp_path / "render"
    result = CliRunner().invoke(main, ["deploy", "kubernetes", "--render", str(out), "--settings", str(SETTINGS_FILE)])
    assert result.exit_code == 0, result.output
    values = yaml.safe_load((out / "values.yaml").read_text())
    gpu_1 = values["hub"]["config"]["KubeSpawner"]["profile_list"][1]
    assert gpu_1["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    kinds = [o["kind"] for o in yaml.safe_load_all((out / "manifests.yaml").read_text())]
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ClusterRole", "ValidatingAdmissionPolicy",
                     "ValidatingAdmissionPolicyBinding", "NetworkPolicy"]
    command = (out / "helm-command.txt").read_text()
    assert f"--version={k8s.CHART_VERSION}" in command and "helm upgrade --cleanup-on-fail --install" in command
    # the README gives the same command
    readme = (Path(k8s.__file__).parents[1] / "kubernetes" / "README.md").read_text()
    assert command.splitlines()[-1] in readme

    # never overwrite silently; bad settings name the key
    again = CliRunner().invoke(main, ["deploy", "kubernetes", "--render", str(out), "--settings", str(SETTINGS_FILE)])
    assert again.exit_code != 0 and "would overwrite values.yaml" in again.output
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(SETTINGS_FILE.read_text())
    data["profiles"][1]["gpus"] = 0
    bad.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["deploy", "kubernetes", "--render", str(tmp_path / "b"), "--settings", str(bad)])
    assert result.exit_code != 0 and "profiles[1].gpus" in result.output


def test_configure_for_a_hub_outside_the_chart(settings):
    """``modes.configure`` calls this for ``mode: kubernetes``: KubeSpawner with the chart's semantics."""
    from traitlets.config import Config

    c = Config()
    values = k8s.configure(c, settings, "/tmp/unused-state")
    assert c.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    assert c.KubeSpawner.namespace == "deepvre" and c.KubeSpawner.storage_pvc_ensure is True
    assert c.KubeSpawner.image == "ghcr.io/deepvre/singleuser-cpu:0.1.0"
    visible = c.KubeSpawner.profile_list(type("S", (), {"user": type("U", (), {"groups": []})()})())
    assert [p["slug"] for p in visible] == ["cpu-small"]
    assert len(values["hub"]["config"]["KubeSpawner"]["profile_list"]) == 3
