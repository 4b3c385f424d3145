"""Where the marketplace keeps its catalog in the cluster, and how users' pods reach it.

By default the index and the artifacts live on the hub's volume (z2jh's hub PVC at
/srv/jupyterhub); ``marketplace.database_url_secret`` names a Secret holding the database URL
(it reaches the service through the hub pod's environment, never the values or a command line),
``marketplace.store_url`` an fsspec store. Users' pods get the service's URL, and at each start
a token for the marketplace alone, from the real KubeSpawner built from the rendered values."""

import copy

import pytest

from deepvre.market.app import MarketplaceApp
from deepvre_hub.kubernetes import RenderError, z2jh_values

from .conftest import hub_config, hub_user, make_spawner, serialize

DB_URL = "postgresql+psycopg://market:s3cret@db.example.org/market"


def _with_market(settings, **section):
    out = copy.deepcopy(settings)
    out["marketplace"] = {**(out.get("marketplace") or {}), **section}
    return out


def _hub_config(values, environ):
    """The marketplace's hub service as the chart's hub leaves it, with the hub pod's environment."""
    c = hub_config(values, environ)
    return next(s for s in c.JupyterHub.services if s["name"] == "marketplace")


def _service_app(service, monkeypatch):
    """The service process as the hub starts it: its command line and its environment only."""
    monkeypatch.delenv("DEEPVRE_MARKET_DATABASE_URL", raising=False)
    monkeypatch.delenv("DEEPVRE_MARKET_DIR", raising=False)
    for name, value in (service.get("environment") or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", service["url"])
    app = MarketplaceApp()
    app.initialize(service["command"][3:])
    return app


def test_catalog_on_the_hubs_volume_by_default(values, monkeypatch):
    service = values["hub"]["services"]["marketplace"]
    assert service["environment"] == {"DEEPVRE_MARKET_DIR": "/srv/jupyterhub/marketplace"}
    assert not any("database" in arg or "store" in arg for arg in service["command"])
    _service_app(service, monkeypatch)
    from deepvre.market.catalog import default_root

    assert str(default_root()) == "/srv/jupyterhub/marketplace"  # index and artifacts below it


def test_database_url_from_a_secret_and_an_object_store(settings, monkeypatch):
    values = z2jh_values(_with_market(settings, database_url_secret="deepvre-market-db",
                                      store_url="s3://models/deepvre"))
    assert values["hub"]["extraEnv"]["DEEPVRE_MARKET_DATABASE_URL"] == {
        "valueFrom": {"secretKeyRef": {"name": "deepvre-market-db", "key": "database-url"}}}
    rendered = str(values)
    assert "s3cret" not in rendered and "postgresql" not in rendered
    service = _hub_config(values, {"DEEPVRE_MARKET_DATABASE_URL": DB_URL})
    assert service["environment"]["DEEPVRE_MARKET_DATABASE_URL"] == DB_URL
    assert DB_URL not in service["command"]
    app = _service_app(service, monkeypatch)
    assert app.config.Catalog.database_url == DB_URL
    assert app.config.Catalog.store_url == "s3://models/deepvre"


def test_a_database_password_in_the_settings_is_refused(settings):
    with pytest.raises(RenderError, match="marketplace.database_url: it holds a password.*database_url_secret"):
        z2jh_values(_with_market(settings, database_url=DB_URL))
    values = z2jh_values(_with_market(settings, database_url="postgresql+psycopg://market@db/market"))
    service = values["hub"]["services"]["marketplace"]
    assert service["environment"]["DEEPVRE_MARKET_DATABASE_URL"] == "postgresql+psycopg://market@db/market"
    assert not any("postgresql" in arg for arg in service["command"])


async def test_user_pods_get_the_marketplace_url_and_their_own_token(values):
    from jupyterhub import orm

    user = hub_user("alice", values["hub"]["loadRoles"]["user"]["scopes"])
    spawner = await make_spawner(values, hub_user=user)
    env = {e["name"]: e.get("value") for e in serialize(await spawner.get_pod_manifest())["spec"]["containers"][0]["env"]}
    # the pods live in namespaces of their own: the hub Service's qualified name, for the API too
    assert env["DEEPVRE_MARKET_URL"] == "http://hub.deepvre.svc:10101/services/marketplace/"
    assert values["hub"]["config"]["JupyterHub"]["hub_connect_url"] == "http://hub.deepvre.svc:8081"
    first = orm.APIToken.find(user.db, env["DEEPVRE_MARKET_TOKEN"])
    assert first.user.name == "alice"
    assert first.scopes == ["access:services!service=marketplace"]  # the marketplace, nothing else
    assert env["DEEPVRE_MARKET_TOKEN"] != env.get("JUPYTERHUB_API_TOKEN")

    # the next start gets a new token and revokes the previous one
    again = {e["name"]: e.get("value") for e in serialize(await spawner.get_pod_manifest())["spec"]["containers"][0]["env"]}
    assert again["DEEPVRE_MARKET_TOKEN"] != env["DEEPVRE_MARKET_TOKEN"]
    assert orm.APIToken.find(user.db, env["DEEPVRE_MARKET_TOKEN"]) is None
    assert orm.APIToken.find(user.db, again["DEEPVRE_MARKET_TOKEN"]) is not None

    # the server's own token does not open the marketplace
    assert values["hub"]["config"]["Spawner"]["server_token_scopes"] == ["users:activity!user", "access:servers!server"]
