"""The marketplace's hub-service entry in the z2jh values: it runs with the hub image's Python and
listens where the proxy pod reaches it (all interfaces, at the url's port, which the hub passes
as ``$JUPYTERHUB_SERVICE_URL``)."""

from deepvre.market.app import MarketplaceApp


def test_marketplace_listens_on_the_hub_service_port(values, monkeypatch):
    market = values["hub"]["services"]["marketplace"]
    command = market["command"]
    assert command[:3] == ["python3", "-m", "deepvre.market"]  # not this machine's interpreter
    assert "--port" not in command
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", market["url"])
    app = MarketplaceApp()
    app.initialize(command[3:])
    assert (app.ip, app.port) == ("0.0.0.0", 10101)
