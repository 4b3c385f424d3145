"""Issue 17: the base models' names belong to the marketplace's system account (``deepvre``).

Before, any user could publish ``mobilenet-v2-imagenet`` first and own the name every notebook
fine-tunes from. Now the catalog lets only the system account publish a reserved name
(``marketplace.reserved_names``, fnmatch patterns), admins included, and the hub refuses
``deepvre`` as a user name at sign-up, login and in the admin API.

The attacks: a second hub user and the hub's admin claim a reserved name and publish a version of
the system account's base model (a real JupyterHub with the marketplace service,
``tests/market/markethub.py``); an anonymous local process does the same on the service's own
port; and users try to become ``deepvre`` on a real deepvre hub (sign-up, login, admin API).
"""

import json
import re
from urllib.parse import quote

import pytest
import requests
from traitlets.config import Config

from tests.hub.hubprocess import HubProcess, cpu_only
from tests.market.conftest import make_document
from tests.market.fuzz_hooks import MODEL, tar_of
from tests.market.markethub import market_hub
from tests.prereqs import require_proxy, require_root
from tests.security.conftest import PASSWORD

BASE = "mobilenet-v2-imagenet"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    state = tmp_path_factory.mktemp("sec-reserved")
    with market_hub(state, {"reserved_names": [BASE, "base-*"]}) as hub:
        # the system account's base model, published as the seed does (Catalog.publish as deepvre)
        from deepvre.market.catalog import Catalog

        catalog = Catalog(database_url=f"sqlite:///{state}/market.sqlite", store_url=str(state / "artifacts"))
        folder = state / "base"
        folder.mkdir()
        (folder / "model.keras").write_bytes(MODEL)
        (folder / "training.ipynb").write_text("{}")
        catalog.publish(make_document(BASE), {"model.keras": folder / "model.keras",
                                              "training.ipynb": folder / "training.ipynb"}, "deepvre")
        catalog.engine.dispose()
        yield hub


def upload(url, token, name, version="1.0.0"):
    body = tar_of({"metadata.json": json.dumps(make_document(name, version)).encode(), "model.keras": MODEL,
                   "training.ipynb": b"{}"})
    headers = {"Content-Type": "application/x-tar", **({"Authorization": f"token {token}"} if token else {})}
    return requests.post(url + "api/models", data=body, headers=headers, timeout=120)


@pytest.mark.parametrize("attacker", ["bob", "root"])
def test_a_user_or_admin_cannot_claim_or_extend_a_reserved_name(hub, attacker):
    token = hub["tokens"][attacker]
    for name, version in ((BASE, "2.0.0"), ("base-resnet", "1.0.0")):
        r = upload(hub["market_url"], token, name, version)
        assert r.status_code == 403, r.text
        assert "reserved" in r.json()["message"]
    entry = requests.get(hub["market_url"] + f"api/models/{BASE}", timeout=30,
                         headers={"Authorization": f"token {hub['tokens']['alice']}"}).json()
    assert (entry["owner"], [v["version"] for v in entry["versions"]]) == ("deepvre", ["1.0.0"])
    missing = requests.get(hub["market_url"] + "api/models/base-resnet", timeout=30,
                           headers={"Authorization": f"token {hub['tokens']['alice']}"})
    assert missing.status_code == 404
    assert upload(hub["market_url"], token, f"{attacker}-own-model").status_code == 201  # others are free


def test_an_anonymous_local_process_cannot_publish_a_reserved_name(hub):
    for url in (hub["market_url"], hub["service_url"]):  # through the proxy, and the service's own port
        assert upload(url, None, BASE, "3.0.0").status_code == 401
        assert upload(url, "not-a-token", "base-anon").status_code in (401, 403)
    versions = requests.get(hub["market_url"] + f"api/models/{BASE}/versions", timeout=30,
                            headers={"Authorization": f"token {hub['tokens']['bob']}"}).json()
    assert [v["version"] for v in versions] == ["1.0.0"]


@pytest.mark.parametrize("mode", ["local", "slurm", "kubernetes"])
def test_no_mode_lets_a_user_be_named_like_the_system_account(hub_state, monkeypatch, mode):
    import importlib

    from jupyterhub.auth import Authenticator

    from deepvre.site.settings import validate_settings
    from deepvre_hub import modes

    if mode != "local":
        monkeypatch.setattr(importlib.import_module(f"deepvre_hub.{mode}"), "configure", lambda c, s, d: None)
    c = Config()
    modes.configure(c, validate_settings({"mode": mode}), hub_state)
    check = Authenticator(username_pattern=c.Authenticator.username_pattern)
    assert not check.validate_username("deepvre")
    assert check.validate_username("deepvre2") and check.validate_username("alice")
    assert "deepvre" in c.Authenticator.blocked_users
    with pytest.raises(SystemExit):  # the admin cannot be it either
        modes.configure(Config(), validate_settings({"mode": mode, "hub": {"admin": "deepvre"}}), hub_state)


@pytest.mark.root
@pytest.mark.hub
def test_nobody_becomes_the_system_account_on_a_real_hub(tmp_path_factory):
    require_root()
    require_proxy()
    hub = HubProcess(cpu_only(), tmp_path_factory.mktemp("sec-reserved-hub") / "state")
    with hub.running():
        admin = hub.login(hub.admin, hub.admin_password)
        signup = hub.signup("deepvre", PASSWORD)
        assert "deepvre" not in re.findall(r"authorize/([^\"'/?]+)", admin.get(f"{hub.url}/hub/authorize", timeout=30).text)
        # the admin tries to approve it: there is no such sign-up to approve
        assert admin.get(f"{hub.url}/hub/authorize/deepvre", timeout=30).status_code != 200
        session = hub.login("deepvre", PASSWORD, check=False)
        assert not any(c.name.startswith("jupyterhub-session") for c in session.cookies), signup.text[:300]
        admin_token = hub.token(admin, hub.admin)
        made = requests.post(f"{hub.url}/hub/api/users/{quote('deepvre')}", timeout=30,
                             headers={"Authorization": f"token {admin_token}"})
        assert made.status_code == 400, made.text
        bulk = requests.post(f"{hub.url}/hub/api/users", json={"usernames": ["deepvre"]}, timeout=30,
                             headers={"Authorization": f"token {admin_token}"})
        assert bulk.status_code == 400, bulk.text
        listed = requests.get(f"{hub.url}/hub/api/users", headers={"Authorization": f"token {admin_token}"}, timeout=30)
        assert "deepvre" not in {u["name"] for u in listed.json()}
