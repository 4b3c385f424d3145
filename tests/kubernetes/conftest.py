"""Kubernetes-mode fixtures: rendered settings, and the real KubeSpawner configured from them.

No cluster: a dummy kubeconfig points at 127.0.0.1 (nothing is sent unless a test starts
the kmock emulator and points the spawner at it).
"""

import copy
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).parent
SETTINGS_FILE = HERE / "settings.yaml"
NAMESPACE = "deepvre"


@pytest.fixture(autouse=True)
def _kubeconfig(dummy_kubeconfig):
    """Every test here: KubeSpawner reads the dummy kubeconfig (tests/conftest.py)."""


def site_settings():
    """tests/kubernetes/settings.yaml, validated."""
    from deepvre.site.settings import validate_settings

    return validate_settings(yaml.safe_load(SETTINGS_FILE.read_text()), source=SETTINGS_FILE)


def rendered_values(settings):
    """The z2jh values deepvre renders from ``settings``."""
    from deepvre_hub.kubernetes import z2jh_values

    return z2jh_values(settings)


def rendered_values_of(k8s_settings):
    """:func:`rendered_values` as the fixture of a ``k8s_settings`` fixture (tests/security)."""
    return rendered_values(k8s_settings)


settings = pytest.fixture(scope="module", name="settings")(site_settings)
values = pytest.fixture(scope="module", name="values")(rendered_values)


class Group:
    def __init__(self, name):
        self.name = name


class User:
    """What KubeSpawner reads from a hub user."""

    def __init__(self, name, groups=()):
        self.name = name
        self.id = abs(hash(name)) % 10000
        self.url = f"/user/{name}/"
        self.admin = False
        self.groups = [Group(g) for g in groups]
        self.escaped_name = name
        self.orm_user = self  # the marketplace token (deepvre_hub.market_token): see hub_user()
        self.api_tokens = []
        self.db = self

    def new_api_token(self, note, scopes):
        return f"market-token-of-{self.name}"

    def delete(self, token):
        pass

    def commit(self):
        pass


def hub_user(name, user_scopes):
    """A real JupyterHub user (in-memory hub database) whose role has ``user_scopes``."""
    from jupyterhub import orm, roles
    from jupyterhub.user import User as HubUser

    db = orm.new_session_factory("sqlite://")()
    db.add(orm.OAuthClient(identifier="jupyterhub"))
    db.commit()
    for role in roles.get_default_roles():
        roles.create_role(db, role)
    roles.create_role(db, {"name": "user", "scopes": list(user_scopes)})
    row = orm.User(name=name)
    db.add(row)
    db.commit()
    roles.assign_default_roles(db, row)
    return HubUser(row, settings={})


def hub_environment(values, environ=None):
    """The hub pod's environment as the chart sets it from ``hub.extraEnv``: a value from a Secret
    (or the downward API) stands in as a placeholder, unless ``environ`` gives it; and
    ``JUPYTERHUB_CRYPT_KEY``, for the key the hub keeps on its volume."""
    env = {"JUPYTERHUB_CRYPT_KEY": "0" * 64}
    for name, value in (values["hub"].get("extraEnv") or {}).items():
        env[name] = value if isinstance(value, str) else f"stand-in-for-{name}"
    return {**env, **(environ or {})}


def hub_config(values, environ=None):
    """The hub's config object as z2jh leaves it: ``hub.services`` and ``hub.loadRoles`` as its
    lists, every ``hub.config`` class applied verbatim, then every ``hub.extraConfig`` snippet run
    in the order of its key, in the hub pod's environment (:func:`hub_environment`). The chart's
    own ``singleuser.*`` mapping comes before ``hub.config``, which overrides what it sets
    (test_values.py checks that they agree)."""
    from traitlets.config import Config

    hub = copy.deepcopy(values["hub"])
    c = Config()
    c.JupyterHub.services = [{"name": name, **entry} for name, entry in (hub.get("services") or {}).items()]
    c.JupyterHub.load_roles = [{"name": name, **role} for name, role in (hub.get("loadRoles") or {}).items()]
    for cls, traits in (hub.get("config") or {}).items():
        c[cls].update(traits)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in hub_environment(values, environ).items():
            mp.setenv(name, value)
        for key, snippet in sorted((hub.get("extraConfig") or {}).items()):
            exec(compile(snippet, key, "exec"), {"c": c})
    return c


async def make_spawner(values, profile=None, user="alice", groups=(), hub_user=None, **traits):
    """A real KubeSpawner for ``user`` (or ``hub_user``, e.g. a real JupyterHub user), configured as
    the chart's hub is (:func:`hub_config`; the user namespaces' hook acts only when a spawn starts),
    with ``profile`` loaded (its overrides applied)."""
    from kubespawner import KubeSpawner

    spawner = KubeSpawner(config=hub_config(values), user=hub_user or User(user, groups), api_token="t0ken",
                          _mock=True, **traits)
    spawner.user_options = {"profile": profile} if profile else {}
    await spawner.load_user_options()
    return spawner


def serialize(obj):
    """A client model as the JSON the API server would get."""
    from kubernetes_asyncio.client import ApiClient

    # sanitize_for_serialization needs no connection: skip __init__, which opens an HTTP session.
    return ApiClient.__new__(ApiClient).sanitize_for_serialization(obj)
