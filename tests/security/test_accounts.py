"""Finding 1 of issue 13: a hub user named like an existing OS account was given that account.

In local and Slurm modes each hub user's server runs under the OS account of the same name. A
missing account was created, and an existing one (uid >= UID_MIN, with a home) was simply used:
signing up as ``alice`` (or, with OpenID Connect, choosing ``preferred_username: alice`` at the
provider) gave the server, its terminal and its kernels alice's own login, files and rights.

Now the hub puts every account it makes in a marker group (``accounts.group``, default
``deepvre-users``) and gives a server only an account in that group or named in
``accounts.allow_existing``; OpenID Connect names come from ``sub`` unless told otherwise.

The attacks: a second user signs up with the name of a person's existing account, on a real local
hub as root and on the Slurm hub (non-root, as a site runs it); the OIDC name mapping given a
self-chosen ``preferred_username``; and an anonymous local account reading a hub user's home.
"""

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from traitlets.config import Config

from deepvre_hub import accounts, oidc
from tests.hub.hubprocess import HubProcess, cpu_only, run_code
from tests.prereqs import require_proxy, require_root
from tests.security.conftest import PASSWORD, new_name, os_account, squeue

pytestmark = pytest.mark.root

SECRET = "the victim's own secret"
REFUSED = "already exists on this machine and was not made by this hub"


@pytest.fixture(scope="module")
def victim():
    """A person's own login on the machine (uid >= UID_MIN, private home), made outside the hub."""
    with os_account("own") as name:
        secret = Path(f"/home/{name}/secret.txt")
        secret.write_text(SECRET)
        entry = pwd.getpwnam(name)
        os.chown(secret, entry.pw_uid, entry.pw_gid)
        secret.chmod(0o600)
        yield name


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory):
    require_root()
    require_proxy()
    hub = HubProcess(cpu_only(), tmp_path_factory.mktemp("sec-accounts") / "state")
    with hub.running():
        yield hub


def sign_up_as(hub, name):
    """A second user signs up as ``name``; the admin, who cannot know, approves. (session, token)."""
    admin = hub.login(hub.admin, hub.admin_password)
    r = hub.signup(name, PASSWORD)
    assert r.status_code == 200, r.text[:500]
    hub.authorize(admin, name)
    session = hub.login(name, PASSWORD)
    return session, hub.token(session, name)


@pytest.mark.hub
def test_signing_up_as_an_existing_account_does_not_give_it(local_hub, victim):
    hub = local_hub
    _, token = sign_up_as(hub, victim)
    r = hub.spawn(token, victim, profile="cpu", timeout=120)
    if r.status_code in (201, 202):  # the takeover: show what the server could do, then fail
        out = run_code(hub.server_url(victim), token, f"print(open('/home/{victim}/secret.txt').read())")
        hub.stop_server(token, victim)
        pytest.fail(f"the second user got {victim}'s own account; its server read: {out!r}")
    assert r.status_code == 403, r.text
    message = r.json()["message"]
    assert REFUSED in message and f"'{accounts.MARKER_GROUP}'" in message, message
    assert hub.server_model(token, victim) is None
    assert not accounts.in_group(pwd.getpwnam(victim), accounts.MARKER_GROUP)
    # the spawn page says so too (a browser's start)
    session = hub.login(victim, PASSWORD)
    page = hub.spawn_form(session, victim, "cpu")
    assert REFUSED in page.text.replace("&#39;", "'").replace("&#x27;", "'"), page.text[-2000:]


@pytest.mark.hub
@pytest.mark.slurm
def test_slurm_hub_refuses_an_existing_account(slurm_hub, victim):
    hub = slurm_hub
    _, token = sign_up_as(hub, victim)
    r = hub.spawn(token, victim, profile="cpu-small", timeout=240)
    if r.status_code in (201, 202):
        hub.stop_server(token, victim)
        pytest.fail(f"the second user's server ran as the existing account {victim}")
    assert r.status_code == 403, r.text
    assert REFUSED in r.json()["message"]
    assert not squeue(hub.cluster, "-u", victim, "-t", "all")
    # (a user whose account is in the group starts as before: test_slurm_options.py)


def test_hub_made_accounts_are_marked_and_foreign_ones_refused(victim):
    require_root()
    name = new_name("new")
    try:
        entry = accounts.ensure_account(name)
        assert accounts.in_group(entry, accounts.MARKER_GROUP)
        assert os.stat(entry.pw_dir).st_mode & 0o777 == 0o700
        assert accounts.ensure_account(name).pw_uid == entry.pw_uid  # the next start finds it again
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
    with pytest.raises(accounts.AccountError, match=REFUSED):
        accounts.ensure_account(victim)
    # the site may allow an account it knows is that person's; system accounts and root: never
    assert accounts.ensure_account(victim, allow_existing=(victim,)).pw_name == victim
    for system in ("root", "daemon"):
        with pytest.raises(accounts.AccountError, match="system account"):
            accounts.ensure_account(system, allow_existing=(system,))


def test_oidc_names_come_from_sub_not_the_self_chosen_preferred_username(tmp_path, monkeypatch, victim):
    """The attacker registers at the provider (or a federated one) with preferred_username set to
    the victim's account name; without a username_claim in the settings the hub name is ``sub``."""
    from oauthenticator.generic import GenericOAuthenticator

    monkeypatch.setenv("TEST_SECRET", "s3")
    section = {"client_id": "hub", "client_secret_env": "TEST_SECRET", "allow_all": True,
               "authorize_url": "https://idp.example/auth", "token_url": "https://idp.example/token",
               "userdata_url": "https://idp.example/userinfo"}
    for mode in ("local", "slurm"):
        c = Config()
        oidc.configure(c, {"mode": mode, "oidc": section}, state_dir=tmp_path)
        authenticator = GenericOAuthenticator(config=c)
        name = authenticator.user_info_to_username({"sub": "248289761001", "preferred_username": victim})
        assert name == accounts.account_name("248289761001") != victim


def test_anonymous_local_account_cannot_read_a_hub_users_home(victim):
    """A local process of another account (not a hub user) cannot list or read a hub-made home."""
    require_root()
    name = new_name("home")
    try:
        entry = accounts.ensure_account(name)
        Path(entry.pw_dir, "notes.txt").write_text("private")
        for cmd in (["ls", entry.pw_dir], ["cat", f"{entry.pw_dir}/notes.txt"]):
            done = subprocess.run(["runuser", "-u", victim, "--", *cmd], capture_output=True, text=True, check=False)
            assert done.returncode != 0 and "Permission denied" in done.stderr, (cmd, done.stdout)
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
