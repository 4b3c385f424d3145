"""Finding 4 of issue 13: in personal mode every user could become the hub's admin.

A hub that is not root (personal mode) runs every server under its own account, beside its
cookie secret, proxy token, crypt key and database. Any approved user's kernel could read them,
forge the admin's cookie, and so take over the hub and every other user's server. Now personal
mode lets in only the admins and the one person it is for (``hub.personal_user``): anyone else is
refused at login and, should they hold a token, at spawn, with a sentence saying why.

A real hub runs under an ordinary OS account (as ``deepvre hub up`` on a laptop; the session
fixture ``personal_hub`` of tests/conftest.py, shared with tests/hub). The attacks: a
second user signs up and is approved (the admin clicks, as admins do); a second user holding an
API token starts a server through the API; an anonymous local account reads the hub's secrets.
"""

import subprocess

import pytest

from tests.hub.hubprocess import run_code
from tests.security.conftest import PASSWORD, new_name, os_account

pytestmark = [pytest.mark.hub, pytest.mark.root]

REFUSED = "This hub runs in personal mode"


def approved(hub, name):
    """``name`` signed up and approved on the shared hub, once (NativeAuthenticator's authorize
    page toggles: a second approval by another test module would revoke the first)."""
    if any(c.name.startswith("jupyterhub-session") for c in hub.login(name, PASSWORD, check=False).cookies):
        return
    admin = hub.login(hub.admin, hub.admin_password)
    assert hub.signup(name, PASSWORD).status_code == 200
    hub.authorize(admin, name)


def test_second_user_is_refused_at_login(personal_hub):
    hub = personal_hub
    name = new_name("b")
    approved(hub, name)
    refused = hub.login(name, PASSWORD, check=False)
    r = refused.last_response
    assert r.status_code == 403, (r.status_code, r.url)
    assert REFUSED in r.text and "only its administrator" in r.text, r.text[-2000:]
    assert not any(c.name.startswith("jupyterhub-session") for c in refused.cookies)
    assert f"login of {name} refused" in hub.log_text()


def test_second_user_with_a_token_cannot_start_a_server(personal_hub):
    """A token reaches the spawn without a login (made by the admin here; or one from before)."""
    hub = personal_hub
    admin = hub.token(hub.login(hub.admin, hub.admin_password), hub.admin)
    name = new_name("t")
    assert hub.api(admin, "POST", f"/users/{name}").status_code == 201
    r = hub.api(admin, "POST", f"/users/{name}/tokens", json={"note": "attack", "expires_in": 600})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    r = hub.spawn(token, name, profile="cpu", timeout=120)
    if r.status_code in (201, 202):  # the takeover: the server reads the hub's cookie secret
        secret = run_code(hub.server_url(name), token,
                          f"print(open({str(hub.state_dir / 'jupyterhub_cookie_secret')!r}, 'rb').read().hex())")
        hub.stop_server(token, name)
        pytest.fail(f"a second user's server runs as the hub and read its cookie secret ({secret[:16]}...)")
    assert r.status_code == 403, r.text
    assert REFUSED in r.json()["message"]
    assert hub.server_model(token, name) is None


def test_the_one_person_gets_in(personal_hub):
    hub = personal_hub
    approved(hub, hub.person)
    session = hub.login(hub.person, PASSWORD)
    assert REFUSED not in session.last_response.text


def test_anonymous_local_account_cannot_read_the_hubs_secrets(personal_hub):
    hub = personal_hub
    with os_account("anon", home=False) as anonymous:
        for secret in ("jupyterhub_cookie_secret", "proxy_token", "jupyterhub.sqlite"):
            path = hub.state_dir / secret
            assert path.exists(), path
            done = subprocess.run(["runuser", "-u", anonymous, "--", "cat", str(path)], capture_output=True,
                                  text=True, check=False)
            assert done.returncode != 0 and "Permission denied" in done.stderr, secret
