"""Kubernetes mode: Zero to JupyterHub values, KubeSpawner profiles and Dask RBAC.

Pure functions from the site settings (``hub/settings.yaml``: ``profiles:``,
``kubernetes:``, ``auth:``/``oidc:``, ``culling:``) to what the pinned Zero to
JupyterHub (z2jh) chart and KubeSpawner understand:

- ``kubespawner_profile(profile, k8s)``: one hardware profile as a KubeSpawner
  ``profile_list`` entry (resources, GPU limits, node selector, tolerations,
  image, ``/dev/shm`` size, allowed groups).
- ``z2jh_values(settings)``: the chart's values, with one namespace per user
  (``user_namespaces.py``: what the hub puts in each); ``manifests(settings)``: the
  cluster-wide objects beside the chart (the users' and the hub's ClusterRoles, the
  admission policy on Dask resources, ``admission.py``). The marketplace runs in the hub pod
  with its catalog on the hub's volume (or ``marketplace.database_url_secret``/``store_url``);
  users' pods get its URL, and a token for it alone at each start (``market_token``).
- Every KubeSpawner setting deepvre relies on is a KubeSpawner trait under
  ``hub.config.KubeSpawner`` (``kubespawner_traits``), which z2jh's ``jupyterhub_config.py``
  applies verbatim after its own ``singleuser.*`` mapping, before the ``hub.extraConfig``
  snippets (sorted by key). The ``singleuser.*`` keys left are the chart's own (image pullers,
  NetworkPolicy) and agree with it. ``configure(c, settings)`` (a hub outside the chart) applies
  the same ``hub.config.KubeSpawner``.

Bad settings raise :class:`RenderError` naming the key.
"""

import copy
import json
import os

from deepvre.market import service as market_service
from deepvre.site import environment, profiles
from deepvre.site.settings import SettingsError, validated_section

from . import admission, culler, examples, terminals, user_namespaces
from .modes import SERVER_SCOPES, SYSTEM_ACCOUNT

CHART_NAME = "jupyterhub"
CHART_REPO = "https://hub.jupyter.org/helm-chart/"
# z2jh 4.4.0 ships JupyterHub 5.5.0 (we pin 5.5.x: NativeAuthenticator breaks on 6.x).
CHART_VERSION = "4.4.0"


# The chart's toleration for its dedicated user nodes (z2jh default, restated so that a
# GPU profile's tolerations, which replace the list, keep it).
USER_NODE_TOLERATIONS = [
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]
# Names from the user pod itself, for ownerReferences on the DaskClusters it creates.
POD_ENV = {
    environment.POD_NAME: "metadata.name",
    environment.POD_UID: "metadata.uid",
    environment.NAMESPACE: "metadata.namespace",
}
HOME_VOLUME = "volume-{user_server}"
HOME_CLAIM = "claim-{user_server}"
SHM_VOLUME = "dshm"
DASK_GROUP = "kubernetes.dask.org"
DASK_RESOURCES = ["daskclusters", "daskworkergroups", "daskautoscalers", "daskjobs"]
HUB_SERVICE_ACCOUNT = "hub"  # z2jh's, with fullnameOverride ""
HUB_API_PORT = 8081  # z2jh's hub Service port
HUB_CLUSTER_ROLE = "deepvre-hub"


class RenderError(ValueError):
    """Settings that cannot become Kubernetes values; the message names the key."""


# ---------------------------------------------------------------- settings


def kubernetes_settings(settings):
    """The ``kubernetes:`` section validated, with every default filled in (by the settings
    loader: :func:`deepvre.site.settings.validated_section`; its messages name the key)."""
    try:
        return validated_section("kubernetes", (settings or {}).get("kubernetes"))
    except SettingsError as err:
        raise RenderError("; ".join(err.errors)) from None


def _check_profile(profile, where):
    """What Kubernetes needs of a profile beyond its schema (checked by :func:`profile_list`):
    a GPU count for a GPU type."""
    gpus = profile.get("gpus") or 0
    if profile.get("gpu_type") and not gpus:
        raise RenderError(
            f"{where}.gpus: GPU profile {profile['slug']!r} (gpu_type {profile['gpu_type']!r}) has no GPU count"
        )


# ---------------------------------------------------------------- profiles


def _quantity(nbytes):
    """Bytes as a Kubernetes quantity in Mi (exact enough, always valid)."""
    return f"{max(1, int(nbytes) // 2**20)}Mi"


def home_and_shm_volumes(k8s, shm_bytes=None):
    """The pod's volumes: the user's home PVC and ``/dev/shm`` as a memory emptyDir."""
    shm = {"medium": "Memory"}
    if shm_bytes:
        shm["sizeLimit"] = _quantity(shm_bytes)
    return [
        {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": HOME_CLAIM}},
        {"name": SHM_VOLUME, "emptyDir": shm},
    ]


def kubespawner_profile(profile, k8s, where="profiles[?]"):
    """A hardware profile (the contract's dict) as a KubeSpawner ``profile_list`` entry.

    ``k8s`` is :func:`kubernetes_settings`' result. The entry keeps the profile's
    ``groups``, which :func:`restrict_profiles_by_group` filters on (KubeSpawner 7.1
    has no group filter of its own; it ignores the extra key).
    """
    _check_profile(profile, where)
    frac = k8s["guarantee_fraction"]
    gpus = profile.get("gpus") or 0
    image = profile.get("image") or k8s["images"]["gpu" if gpus else "cpu"]
    override = {
        "image": image,
        # the image as the pod names it: its runs' environment records keep it (a digest-pinned
        # reference, NAME@sha256:..., gives them the digest; deepvre.runs.platform)
        "environment": {environment.PROFILE: profile["slug"], environment.GPUS: str(gpus), environment.IMAGE: image},
    }
    if profile.get("cpu"):
        override["cpu_limit"] = float(profile["cpu"])
        override["cpu_guarantee"] = round(float(profile["cpu"]) * frac, 3)
    mem = profiles.parse_memory(profile.get("memory"))
    if mem:
        override["mem_limit"] = mem
        override["mem_guarantee"] = int(mem * frac)
    override["volumes"] = home_and_shm_volumes(k8s, mem and mem * k8s["shm_fraction"])
    if gpus:
        gpu = k8s["gpu"]
        selector = dict(gpu["node_selector"])
        if profile.get("gpu_type"):
            gpu_type = profile["gpu_type"]
            selector[gpu["type_label"]] = gpu["type_values"].get(gpu_type, gpu_type)
        override.update({
            "extra_resource_limits": {gpu["resource"]: str(gpus)},
            "node_selector": selector,
            "tolerations": copy.deepcopy(USER_NODE_TOLERATIONS + list(gpu["tolerations"])),
        })
    return {
        "slug": profile["slug"],
        "display_name": profile["display_name"],
        "description": profile.get("description", ""),
        "default": bool(profile.get("default", False)),
        "groups": list(profile.get("groups") or []),
        "kubespawner_override": override,
    }


def profile_list(settings):
    """Every profile in ``settings['profiles']`` as KubeSpawner ``profile_list`` entries."""
    k8s = kubernetes_settings(settings)
    items = (settings or {}).get("profiles") or []
    if not isinstance(items, list) or not items:
        raise RenderError("profiles: at least one hardware profile is needed")
    try:
        items = validated_section("profiles", items)  # the settings loader's schema and messages
    except SettingsError as err:
        raise RenderError("; ".join(err.errors)) from None
    entries = [kubespawner_profile(p, k8s, f"profiles[{i}]") for i, p in enumerate(items)]
    errors = profiles.check_profiles(items)
    if errors:
        raise RenderError(errors[0])
    return entries


def restrict_profiles_by_group(c):
    """Make ``c.KubeSpawner.profile_list`` a callable that filters by the user's groups.

    KubeSpawner calls it both for the spawn form and when it loads the chosen
    profile, so a profile outside the user's groups is neither shown nor startable.
    """
    entries = c.KubeSpawner.profile_list
    if callable(entries) or not entries:
        return

    def profile_list_for_user(spawner):
        return profiles.visible_profiles(entries, [g.name for g in spawner.user.groups])

    c.KubeSpawner.profile_list = profile_list_for_user


# ---------------------------------------------------------------- values


def _image(ref):
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:  # no tag (a registry port is not a tag)
        return {"name": ref, "tag": "latest"}
    return {"name": name, "tag": tag}


OIDC_SECRET = "deepvre-oidc"  # the k8s Secret (key client-secret) holding the OIDC client secret
CULLER_CONFIG = "/usr/local/etc/deepvre/idle_culler_config.py"
HUB_STATE = "/srv/jupyterhub"  # the chart's hub PVC


def _oidc(settings, k8s):
    """hub.config.GenericOAuthenticator (what can be written down) and the hub's extra env/config.

    ``deepvre_hub.oidc.configure`` still runs in the hub (extraConfig): it does the
    discovery, reads the secret from the environment and installs the group mapping.
    """
    from . import oidc

    section = (settings or {}).get("oidc")
    if not section:
        raise RenderError("oidc: the section is missing (auth.type oidc needs it)")
    secret_env = section.get("client_secret_env", "OAUTH_CLIENT_SECRET")
    try:
        # data-only traits (scopes, groups, refresh age, callback URL, authorize params...);
        # endpoints found by discovery are added by oidc.configure at hub start
        config = oidc.static_traits(section)
    except oidc.OIDCSettingsError as err:
        raise RenderError(str(err)) from None
    if k8s["host"] and "oauth_callback_url" not in config:
        config["oauth_callback_url"] = f"https://{k8s['host']}/hub/oauth_callback"
    env = {secret_env: {"valueFrom": {"secretKeyRef": {"name": OIDC_SECRET, "key": "client-secret"}}}}
    snippet = (
        "import json\n"
        "from deepvre_hub import oidc\n"
        f"oidc.configure(c, json.loads({json.dumps({'oidc': section, 'hub': {'state_dir': HUB_STATE}})!r}))\n"
    )
    return config, env, snippet


def _culler(settings):
    """deepvre's idle culler (per-profile and GPU limits) as a hub service, with its config file."""
    culling = validated_section("culling", (settings or {}).get("culling"))
    if not culling["enabled"]:
        return None, None, None
    items = (settings or {}).get("profiles") or []
    limits = [culling["timeout"], culling["gpu_timeout"]] + [p["idle_timeout"] for p in items if p.get("idle_timeout")]
    service = {"command": [
        "python3", "-m", "jupyterhub_idle_culler", "--url=http://localhost:8081/hub/api",
        f"--timeout={min(limits)}", f"--cull-every={culling['every']}", f"--config={CULLER_CONFIG}",
    ]}
    role = {"services": ["idle-culler"], "scopes": list(culler.SCOPES)}
    config_file = {"mountPath": CULLER_CONFIG, "stringData": culler.culler_config_text(culling, items)}
    return service, role, config_file


MARKET_DATABASE_KEY = "database-url"  # the key of marketplace.database_url_secret's Secret


def hub_host(k8s):
    """The hub Service's name as the users' pods resolve it: they live in namespaces of their own
    (``deepvre-u-NAME``), where the chart's short name ``hub`` means nothing (or, through the
    node's search domains, somewhere outside the cluster)."""
    return f"hub.{k8s['namespace']}.svc"


def market_url(k8s):
    """Where the users' pods reach the marketplace: through the hub Service, at its own port."""
    return f"http://{hub_host(k8s)}:{k8s['marketplace_port']}/services/{market_service.SERVICE_NAME}/"


def _market_database(section):
    """The hub pod's env entry for ``marketplace.database_url_secret`` (or ``{}``); a literal
    ``database_url`` with a password is refused (the values are not a secret store)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if section.get("database_url_secret"):
        ref = {"name": section["database_url_secret"], "key": MARKET_DATABASE_KEY}
        return {environment.MARKET_DATABASE_URL: {"valueFrom": {"secretKeyRef": ref}}}
    if section.get("database_url"):
        try:
            password = make_url(section["database_url"]).password
        except ArgumentError as err:
            raise RenderError(f"marketplace.database_url: {err}") from None
        if password:
            raise RenderError("marketplace.database_url: it holds a password; put the URL in a Secret "
                              f"(key {MARKET_DATABASE_KEY}) and name it in marketplace.database_url_secret")
    return {}


def _marketplace(settings, k8s):
    """The marketplace as a hub-managed service (``deepvre.market.service.hub_service``), its
    role, and the hub pod's environment for it (the database URL from a Secret).

    Its catalog lives on the hub's volume (``HUB_STATE``/marketplace: index and artifacts)
    unless ``marketplace.database_url[_secret]`` and ``store_url`` say otherwise."""
    section = (settings or {}).get("marketplace") or {}
    service = dict(market_service.hub_service(settings, HUB_STATE))
    role = dict(market_service.hub_role(settings))
    role["services"] = [service["name"]]
    # The proxy pod reaches it through the hub Service, so it must listen on all interfaces, at the
    # url's port ($JUPYTERHUB_SERVICE_URL); with the hub image's Python, not this machine's.
    service["url"] = f"http://hub:{k8s['marketplace_port']}"
    service["command"] = ["python3", *service["command"][1:], "--ip", "0.0.0.0"]
    service.setdefault("display", True)
    hub_env = _market_database(section)
    if hub_env:  # handed over by pass_market_database_url (extraConfig) from the hub's own env
        service["environment"].pop(environment.MARKET_DATABASE_URL, None)
    return service, role, hub_env


def pass_market_database_url(c, environ=None):
    """extraConfig: give the marketplace service the hub pod's ``$DEEPVRE_MARKET_DATABASE_URL``
    (from ``marketplace.database_url_secret``): a hub service gets only the environment its entry
    names, and the URL must stay out of the values and the command line."""
    url = (os.environ if environ is None else environ).get(environment.MARKET_DATABASE_URL)
    if not url:
        return
    for entry in c.JupyterHub.services if "services" in c.JupyterHub else []:
        if entry.get("name") == market_service.SERVICE_NAME:
            entry["environment"] = {**(entry.get("environment") or {}), environment.MARKET_DATABASE_URL: url}


def give_servers_market_token(c, spawner_class="KubeSpawner"):
    """extraConfig: each server start gets a marketplace-only token in ``$DEEPVRE_MARKET_TOKEN``
    (``market_token.token_for``, as local and Slurm servers do), beside the environment the chart
    set from ``singleuser.extraEnv``."""
    from . import market_token

    config = c[spawner_class]
    env = dict(config.environment) if "environment" in config else {}
    env[market_token.ENV] = market_token.token_for(market_service.user_scopes())
    config.environment = env


NETWORK_ACCESS_HUB = {"hub.jupyter.org/network-access-hub": "true"}  # the chart's hub policy admits these pods


def kubespawner_traits(settings, k8s, entries):
    """Every KubeSpawner setting deepvre relies on, as KubeSpawner traits in its own format
    (``hub.config.KubeSpawner``: the chart applies it verbatim, over its own singleuser.* mapping).

    ``entries`` is :func:`profile_list`'s result; the pod defaults are the default profile open to
    everyone (KubeSpawner applies the chosen profile's overrides on top)."""
    base = next((e for e in entries if e["default"] and not e["groups"]), None)
    base = base or next((e for e in entries if not e["groups"]), entries[0])
    base_override = base["kubespawner_override"]
    storage = k8s["storage"]
    traits = {
        "namespace": k8s["namespace"],
        "image": k8s["images"]["cpu"],
        "image_pull_policy": k8s["images"]["pull_policy"],
        "profile_list": entries,
        "environment": {
            environment.MODE: "kubernetes",
            environment.MARKET_URL: market_url(k8s),  # the token: give_servers_market_token, at each start
            **{name: {"valueFrom": {"fieldRef": {"fieldPath": path}}} for name, path in POD_ENV.items()},
        },
        **{trait: base_override[trait] for trait in ("cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee")
           if trait in base_override},
        "tolerations": copy.deepcopy(USER_NODE_TOLERATIONS),
        "extra_labels": dict(NETWORK_ACCESS_HUB),
        # the home PVC per server, and /dev/shm in memory
        "pvc_name_template": HOME_CLAIM,
        "storage_pvc_ensure": True,
        "storage_capacity": storage["capacity"],
        "storage_access_modes": ["ReadWriteOnce"],
        **({"storage_class": storage["storage_class"]} if storage["storage_class"] else {}),
        "volumes": copy.deepcopy(base_override["volumes"]),
        "volume_mounts": [{"name": HOME_VOLUME, "mountPath": storage["home"]},
                          {"name": SHM_VOLUME, "mountPath": "/dev/shm"}],
        # one namespace per user, Pod Security "restricted" (user_namespaces.py)
        "enable_user_namespaces": True,
        "user_namespace_template": user_namespaces.namespace_template(k8s["namespace"]),
        "user_namespace_labels": user_namespaces.namespace_labels(),
        "user_namespace_annotations": user_namespaces.namespace_annotations(),
        "uid": k8s["uid"],
        "fs_gid": k8s["fs_gid"],
        "allow_privilege_escalation": False,
        "pod_security_context": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "container_security_context": {
            "runAsNonRoot": True,
            "runAsUser": k8s["uid"],
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if k8s["dask"]["enabled"]:
        traits["service_account"] = user_namespaces.USER_SERVICE_ACCOUNT  # in the user's namespace
    return traits


def _profile_images(entries, default_image):
    """``prePuller.extraImages``: the profiles' images other than the default one."""
    images = []
    for entry in entries:
        image = entry["kubespawner_override"]["image"]
        if image != default_image and image not in images:
            images.append(image)
    return {f"profile-image-{i}": _image(image) for i, image in enumerate(images)}


def z2jh_values(settings):
    """The Helm values for the pinned z2jh chart (``CHART_VERSION``)."""
    k8s = kubernetes_settings(settings)
    entries = profile_list(settings)
    images = k8s["images"]
    market, market_role, market_env = _marketplace(settings, k8s)
    auth = ((settings or {}).get("auth") or {}).get("type", "native")
    hub_env = {environment.MODE: "kubernetes", **market_env}
    extra_config = {
        "deepvre-marketplace": (
            "from deepvre_hub.kubernetes import give_servers_market_token, pass_market_database_url\n"
            "give_servers_market_token(c)\npass_market_database_url(c)\n"),
        "deepvre-profiles": "from deepvre_hub.kubernetes import restrict_profiles_by_group\nrestrict_profiles_by_group(c)\n",
        "deepvre-user-namespaces": (
            "from deepvre_hub.user_namespaces import provision_user_namespaces\n"
            f"provision_user_namespaces(c, **{_provision_args(settings, k8s)!r})\n"),
    }

    spawner = kubespawner_traits(settings, k8s, entries)
    hub_config = {
        # the servers, in their own namespaces, call the hub API by the Service's qualified name
        "JupyterHub": {"admin_access": False, "hub_connect_url": f"http://{hub_host(k8s)}:{HUB_API_PORT}",
                       **_named_servers(settings)},
        # a server's own token opens the server: never sent to the marketplace, so not scoped for it
        "Spawner": {"server_token_scopes": list(SERVER_SCOPES)},
        "KubeSpawner": {**spawner, "args": terminals.server_args(terminals.IMAGE_BIN),  # `deepvre` in terminals
                        "lifecycle_hooks": examples.lifecycle_hooks()},  # the notebooks, at the first start
    }
    if auth == "oidc":
        hub_config["JupyterHub"]["authenticator_class"] = "generic-oauth"
        hub_config["Authenticator"] = {"enable_auth_state": True}
        hub_config["GenericOAuthenticator"], oidc_env, extra_config["deepvre-oidc"] = _oidc(settings, k8s)
        hub_env.update(oidc_env)
    else:
        hub_config["JupyterHub"]["authenticator_class"] = "nativeauthenticator.NativeAuthenticator"
        hub_config["Authenticator"] = {"allow_all": True}
    # the marketplace's system account (the base models' owner) is nobody's login
    hub_config["Authenticator"]["blocked_users"] = [SYSTEM_ACCOUNT]

    # The chart's own keys, for what it renders beside the spawner (its image pullers, the
    # NetworkPolicy); each agrees with hub.config.KubeSpawner where both say something.
    singleuser = {
        "image": {**_image(spawner["image"]), "pullPolicy": spawner["image_pull_policy"]},
        "cloudMetadata": {"blockWithIptables": False},  # the network policy blocks it, without a root init container
        # the chart's own spawner defaults off: no 1G memory guarantee, no home volume of its own
        # (hub.config.KubeSpawner holds the resources, the home PVC and /dev/shm)
        "memory": {"guarantee": None},
        "storage": {"type": "none"},
        "networkPolicy": {
            "enabled": k8s["network_policy"],
            "egressAllowRules": {
                "cloudMetadataServer": False,
                "dnsPortsCloudMetadataServer": True,
                "dnsPortsKubeSystemNamespace": True,
                "dnsPortsPrivateIPs": True,
                "nonPrivateIPs": True,
                "privateIPs": False,
            },
        },
    }

    services = {market["name"]: {k: v for k, v in market.items() if k != "name"}}
    roles = {market_role["name"]: {k: v for k, v in market_role.items() if k != "name"},
             # browsers open the marketplace with the users' logins; servers with a token for it alone
             "user": {"scopes": ["self", *market_service.user_scopes()]}}
    extra_files = {}
    cull_service, cull_role, cull_file = _culler(settings)
    if cull_service:
        services["idle-culler"], roles["idle-culler"] = cull_service, cull_role
        extra_files["idle-culler-config"] = cull_file

    values = {
        "fullnameOverride": "",
        "hub": {
            "image": {**_image(images["hub"]), "pullPolicy": images["pull_policy"]},
            "config": hub_config,
            "services": services,
            "loadRoles": roles,
            "extraFiles": extra_files,
            "service": {"extraPorts": [{
                "name": market["name"], "port": k8s["marketplace_port"], "targetPort": k8s["marketplace_port"],
            }]},
            "extraEnv": hub_env,
            "extraConfig": extra_config,
            "networkPolicy": {
                "enabled": k8s["network_policy"],
                # the chart's rule for hub.jupyter.org/network-access-hub pods in namespaces
                # labelled so: the users' namespaces (user_namespaces.namespace_labels)
                "interNamespaceAccessLabels": "accept",
                "ingress": [{
                    "from": [{"namespaceSelector": user_namespaces.user_namespaces_selector(), "podSelector": {
                        "matchLabels": dict(NETWORK_ACCESS_HUB)}},
                             {"podSelector": {"matchLabels": {"component": "proxy"}}}],
                    "ports": [{"port": k8s["marketplace_port"], "protocol": "TCP"}],
                }],
                "egress": [_to_user_servers()],  # checks that a started server answers
            },
        },
        "proxy": {"chp": {"networkPolicy": {"enabled": k8s["network_policy"], "egress": [_to_user_servers()]}}},
        "singleuser": singleuser,
        # the user nodes' tolerations, also the chart's image pullers' (as hub.config.KubeSpawner.tolerations)
        "scheduling": {"userPods": {"tolerations": copy.deepcopy(USER_NODE_TOLERATIONS)}},
        # the profiles' own images, pulled onto the user nodes beside singleuser.image
        "prePuller": {"extraImages": _profile_images(entries, spawner["image"])},
        "cull": {"enabled": False},  # deepvre's own culler service above (per-profile limits)
        "rbac": {"create": True},
        "ingress": {"enabled": bool(k8s["host"])},
    }
    if k8s["host"]:
        values["ingress"]["hosts"] = [k8s["host"]]
        if k8s["tls_secret"]:
            values["ingress"]["tls"] = [{"hosts": [k8s["host"]], "secretName": k8s["tls_secret"]}]
    return values


def _named_servers(settings):
    limit = ((settings or {}).get("hub") or {}).get("named_servers", 3)
    return {"allow_named_servers": limit > 0, "named_server_limit_per_user": limit}


def _user_quota(settings, k8s):
    quota = dict(k8s["user_quota"])
    if quota["gpus"] is None:  # enough for the largest profile
        quota["gpus"] = max([p.get("gpus", 0) for p in (settings or {}).get("profiles") or []] + [0])
    return quota


def _provision_args(settings, k8s):
    """``user_namespaces.provision_user_namespaces``'s arguments, from the settings."""
    return {"hub_namespace": k8s["namespace"], "hub_ports": _hub_ports(k8s), "dask": k8s["dask"]["enabled"],
            "network_policy": k8s["network_policy"], "operator_namespace": k8s["dask"]["operator_namespace"],
            "quota": _user_quota(settings, k8s)}


def operator_policy(k8s):
    """The dask-kubernetes operator's egress: the Kubernetes API, DNS and the schedulers' HTTP
    API (8787) in the users' namespaces. Not their Dask RPC port: the operator falls back to it
    when the HTTP API fails, and unpickles what a user's scheduler answers there."""
    meta = {"name": "deepvre-dask-operator", "namespace": k8s["dask"]["operator_namespace"],
            "labels": {**user_namespaces.PART_OF, "app.kubernetes.io/component": "dask-isolation"}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": {
        "podSelector": {"matchLabels": dict(user_namespaces.DASK_OPERATOR_LABELS)},
        "policyTypes": ["Egress"],
        "egress": [
            {"ports": [{"port": p, "protocol": "TCP"} for p in user_namespaces.API_SERVER_PORTS]},
            {"to": [{"namespaceSelector": {}}], **user_namespaces.DNS},
            {"to": [{"namespaceSelector": user_namespaces.user_namespaces_selector(),
                     "podSelector": {"matchLabels": {user_namespaces.DASK_COMPONENT: "scheduler"}}}],
             "ports": [{"port": 8787, "protocol": "TCP"}]},
        ]}}


def _hub_ports(k8s):
    """What user servers reach on the hub pod: the hub API and the marketplace."""
    return [HUB_API_PORT, k8s["marketplace_port"]]


def _to_user_servers():
    return {"to": [{"namespaceSelector": user_namespaces.user_namespaces_selector(),
                    "podSelector": {"matchLabels": dict(user_namespaces.SERVER_LABELS)}}],
            "ports": [{"port": user_namespaces.SERVER_PORT, "protocol": "TCP"}]}


def user_cluster_role():
    """What a user's pod may do, bound in the user's own namespace only (``user_namespaces``):
    run Dask clusters through the operator and read their pods, services and logs. No
    ``pods: create`` (the operator makes the pods, under the admission policy), no secrets, no
    ``pods/exec`` or ``pods/portforward``."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": user_namespaces.USER_CLUSTER_ROLE, "labels": dict(user_namespaces.PART_OF)},
            "rules": [
                {"apiGroups": [DASK_GROUP], "resources": DASK_RESOURCES,
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ]}


def hub_cluster_role(namespace):
    """What the hub needs beyond the chart's namespaced Role to run users in their own
    namespaces: KubeSpawner's objects there, and ``user_namespaces.namespace_objects``. It may
    bind the users' ClusterRole, nothing else (RBAC's ``bind`` on that one name)."""
    labels = dict(user_namespaces.PART_OF)
    rw = ["get", "list", "watch", "create", "update", "patch", "delete"]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": HUB_CLUSTER_ROLE, "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create"]},
                {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "secrets", "services"], "verbs": rw},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["serviceaccounts", "resourcequotas", "limitranges"],
                 "verbs": ["get", "create", "update"]},
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["get", "create", "update"]},
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
                 "resourceNames": [user_namespaces.USER_CLUSTER_ROLE]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "create", "update"]},
            ]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": HUB_CLUSTER_ROLE, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": HUB_CLUSTER_ROLE},
               "subjects": [{"kind": "ServiceAccount", "name": HUB_SERVICE_ACCOUNT, "namespace": namespace}]}
    return [role, binding]


def manifests(settings):
    """Objects to ``kubectl apply`` beside the chart: the hub's and the users' ClusterRoles and,
    with Dask, the admission policy on Dask resources and the operator's NetworkPolicy (in the
    operator's namespace)."""
    k8s = kubernetes_settings(settings)
    objects = hub_cluster_role(k8s["namespace"])
    if k8s["dask"]["enabled"]:
        objects += [user_cluster_role(), *admission.dask_admission_policy()]
        if k8s["network_policy"]:
            objects.append(operator_policy(k8s))
    return objects


# ---------------------------------------------------------------- a hub outside the chart


def configure(c, settings, state_dir=None):
    """``jupyterhub_config.py`` for ``mode: kubernetes`` (a hub outside the chart, e.g. on a VM):
    KubeSpawner from the same values as the chart, ``hub.config.KubeSpawner`` applied verbatim.
    ``modes.configure_common`` did auth and services (the values' other ``hub.config`` classes
    describe the hub inside the chart: its Service address, its authenticator)."""
    values = z2jh_values(settings)
    k8s = kubernetes_settings(settings)
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.KubeSpawner.update(copy.deepcopy(values["hub"]["config"]["KubeSpawner"]))
    # the marketplace modes.configure_common runs on this machine, not behind the chart's hub Service
    c.KubeSpawner.environment = {**c.KubeSpawner.environment, **market_service.singleuser_environment(settings)}
    give_servers_market_token(c)
    restrict_profiles_by_group(c)
    user_namespaces.provision_user_namespaces(c, **_provision_args(settings, k8s))
    return values
