"""Login through a real OIDC provider into a real JupyterHub configured by deepvre_hub.oidc."""

import concurrent.futures
import os
import stat

import pytest
import requests

from deepvre_hub.oidc import CRYPT_KEY_FILE, TOKEN_ENV_NAMES
from tests.auth.conftest import api, login, tail, wait_for

pytestmark = [pytest.mark.oidc, pytest.mark.hub]


def userinfo(hub, token):
    return requests.get(hub["issuer"] + "/me", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def auth_state(hub, name):
    r = api(hub, "GET", f"/users/{name}")
    r.raise_for_status()
    return r.json()["auth_state"]


def test_code_flow_login_gives_hub_cookie_and_name(hub):
    session, r = login(hub, "alice")
    assert r.status_code == 200, r.text[-2000:]
    assert r.url.startswith(hub["url"] + "/hub/")
    assert "jupyterhub-hub-login" in {c.name for c in session.cookies}
    # The cookie is the user's: the hub's own API says who it belongs to.
    who = session.get(hub["url"] + "/hub/api/user", timeout=30)
    assert who.status_code == 200, who.text
    assert who.json()["name"] == "alice"
    user = api(hub, "GET", "/users/alice").json()
    assert user["groups"] == ["vo.deepvre.eu"]  # the entitlement, mapped; vm_operator dropped
    assert user["admin"] is False


def test_user_outside_allowed_groups_is_refused(hub):
    session, r = login(hub, "mallory")
    assert r.status_code == 403
    assert "not currently authorized" in r.text
    assert "jupyterhub-hub-login" not in {c.name for c in session.cookies}
    assert session.get(hub["url"] + "/hub/api/user", timeout=30).status_code == 403
    assert api(hub, "GET", "/users/mallory").status_code == 404


def test_admin_group_gives_admin(hub):
    _, r = login(hub, "carol")
    assert r.status_code == 200, r.text[-2000:]
    user = api(hub, "GET", "/users/carol").json()
    assert user["groups"] == ["deepvre-admins"]
    assert user["admin"] is True


def test_crypt_key_generated_in_state_dir(hub):
    login(hub, "alice")
    key_file = hub["state_dir"] / CRYPT_KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert auth_state(hub, "alice")["access_token"]  # auth_state is stored, so the key works


def test_spawn_refreshes_expired_token_into_server_environment(hub, user_servers_stopped):
    _, r = login(hub, "alice")
    assert r.status_code == 200
    before = auth_state(hub, "alice")
    assert before["refresh_token"], "the provider issued no refresh token"
    old = before["access_token"]
    assert userinfo(hub, old).status_code == 200
    # Wait (by polling the provider) until the short-lived access token has expired.
    wait_for(lambda: userinfo(hub, old).status_code == 401, "access token expiry", timeout=60)

    user_servers_stopped.append("alice")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        spawn = pool.submit(api, hub, "POST", "/users/alice/server")
        # The hub goes back to the provider with the refresh token before the spawn starts. The new
        # token lives only ACCESS_TOKEN_TTL seconds too: check it as soon as the hub holds it, not
        # after the spawn (the POST itself may wait up to slow_spawn_timeout).
        new = wait_for(lambda: (token := auth_state(hub, "alice")["access_token"]) != old and token,
                       "the refreshed access token")
        me = userinfo(hub, new)
        r = spawn.result()
    assert r.status_code in (201, 202), r.text
    assert "grant.success refresh_token deepvre-hub" in tail(hub["provider_log"])
    assert me.status_code == 200 and me.json()["sub"] == "alice"

    server = wait_for(lambda: api(hub, "GET", "/users/alice").json()["servers"].get("", {}).get("ready")
                      and api(hub, "GET", "/users/alice").json()["servers"][""], "alice's server")

    # The server process got the new token in its environment.
    pid = server["state"]["pid"]
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    for name in TOKEN_ENV_NAMES:
        assert environ[name.encode()].decode() == new


def test_spawn_refused_when_the_refresh_token_is_revoked(hub, oidc_provider):
    _, r = login(hub, "carol")
    assert r.status_code == 200
    state = auth_state(hub, "carol")
    # The provider withdraws the grant (as when a user leaves the VO or logs out everywhere).
    revoked = requests.post(hub["issuer"] + "/token/revocation", timeout=30,
                            data={"token": state["refresh_token"], "token_type_hint": "refresh_token"},
                            auth=(oidc_provider["client_id"], oidc_provider["client_secret"]))
    assert revoked.status_code == 200
    wait_for(lambda: userinfo(hub, state["access_token"]).status_code == 401, "token revocation", timeout=60)

    r = api(hub, "POST", "/users/carol/server")
    assert r.status_code == 403, r.text
    assert "auth has expired for carol" in r.json()["message"]
    assert api(hub, "GET", "/users/carol").json()["servers"] == {}


def test_provider_name_with_at_becomes_an_os_account_name(hub):
    """Local mode: the hub name (and so the OS account) is the claim escaped injectively."""
    from deepvre_hub.accounts import check_account_name

    session, r = login(hub, "dave")
    assert r.status_code == 200, r.text[-2000:]
    name = session.get(hub["url"] + "/hub/api/user", timeout=30).json()["name"]
    assert name == "_44ave_2e_53mith_40egi_2eeu"  # "Dave.Smith@egi.eu"
    check_account_name(name)
    assert api(hub, "GET", "/users/" + name).json()["groups"] == ["vo.deepvre.eu"]
