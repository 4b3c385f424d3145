"""The pure parts of deepvre_hub.oidc: settings -> traits, entitlement mapping, schema errors."""

import asyncio
import json
import os
import socket
import stat
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from deepvre.site.settings import SettingsError, validate_settings
from deepvre_hub import oidc
from tests.prereqs import REPO

EXAMPLE = Path(REPO) / "hub" / "examples" / "settings-egi-checkin.yaml"
EGI = "urn:mace:egi.eu:group:{}#aai.egi.eu"


def minimal(**extra):
    return {
        "authorize_url": "https://idp.example/auth",
        "token_url": "https://idp.example/token",
        "userdata_url": "https://idp.example/userinfo",
        "client_id": "hub",
        "client_secret_env": "TEST_SECRET",
        "allowed_groups": ["users"],
        **extra,
    }


# --- group and entitlement mapping


def test_egi_entitlements_map_to_vo_groups():
    values = [
        EGI.format("vo.example.eu:role=member"),
        EGI.format("vo.example.eu:gpu:role=member"),
        EGI.format("vo.example.eu:role=vm_operator"),  # another role: not a membership
        "urn:mace:egi.eu:group:vo.example.eu:role=member#other.authority",
        "urn:geant:example.org:group:x#example.org",
    ]
    assert oidc.map_groups(values, oidc.EGI_MEMBER_PATTERN) == ["vo.example.eu", "vo.example.eu:gpu"]


def test_rename_gives_short_names():
    values = [EGI.format("vo.example.eu:role=member"), EGI.format("vo.example.eu:admins:role=member")]
    rename = {"vo.example.eu:admins": "admins"}
    assert oidc.map_groups(values, oidc.EGI_MEMBER_PATTERN, rename) == ["admins", "vo.example.eu"]


def test_map_groups_plain_claim_and_odd_values():
    assert oidc.map_groups(["b", "a", "a"]) == ["a", "b"]
    assert oidc.map_groups("solo") == ["solo"]
    assert oidc.map_groups(None) == []
    assert oidc.map_groups(["ok", 3, None]) == ["ok"]
    # A pattern without a named group keeps the whole match.
    assert oidc.map_groups(["team-a", "other"], r"^team-\w+$") == ["team-a"]


def test_groups_from_auth_state_follows_a_dotted_claim():
    auth_state = {"oauth_user": {"attrs": {"roles": ["x", "y"]}}}
    assert oidc.groups_from_auth_state(auth_state, claim="attrs.roles") == ["x", "y"]
    assert oidc.groups_from_auth_state(auth_state, claim="missing.roles") == []
    assert oidc.groups_from_auth_state({}, claim="groups") == []


# --- settings -> traits


def test_traits_from_settings():
    settings = minimal(
        scopes=["openid", "groups"], username_claim="sub", admin_groups=["admins"],
        groups={"claim": "eduperson_entitlement", "pattern": oidc.EGI_MEMBER_PATTERN},
        refresh_age=60, callback_url="https://hub.example/hub/oauth_callback",
        authorize_params={"prompt": "consent"},
    )
    traits = oidc.authenticator_traits(settings, environ={"TEST_SECRET": "s3"})
    assert traits["client_secret"] == "s3"
    assert traits["authorize_url"] == "https://idp.example/auth"
    assert traits["scope"] == ["openid", "groups"]
    assert traits["username_claim"] == "sub"
    assert traits["manage_groups"] is True and traits["enable_auth_state"] is True
    assert traits["allowed_groups"] == ["users"] and traits["admin_groups"] == ["admins"]
    assert traits["auth_refresh_age"] == 60 and traits["refresh_pre_spawn"] is True
    assert traits["oauth_callback_url"] == "https://hub.example/hub/oauth_callback"
    assert traits["extra_authorize_params"] == {"prompt": "consent"}
    auth_state = {"oauth_user": {"eduperson_entitlement": [EGI.format("vo.a.eu:role=member")]}}
    assert traits["auth_state_groups_key"](auth_state) == ["vo.a.eu"]


def test_static_traits_are_plain_data_without_secret():
    traits = oidc.static_traits(minimal())
    assert "client_secret" not in traits
    assert json.loads(json.dumps(traits)) == traits


def test_defaults():
    traits = oidc.authenticator_traits(minimal(), environ={"TEST_SECRET": "s"})
    assert traits["scope"] == oidc.DEFAULT_SCOPES
    assert "offline_access" in traits["scope"]
    assert traits["username_claim"] == "sub"  # stable, not chosen by the person (not preferred_username)
    assert traits["auth_refresh_age"] == 300
    assert traits["auth_state_groups_key"]({"oauth_user": {"groups": ["g"]}}) == ["g"]


def test_missing_secret_names_the_key_and_variable():
    with pytest.raises(oidc.OIDCSettingsError, match=r"oidc\.client_secret_env: .*TEST_SECRET"):
        oidc.authenticator_traits(minimal(), environ={})


def test_nobody_allowed_is_an_error():
    with pytest.raises(oidc.OIDCSettingsError, match=r"oidc\.allowed_groups"):
        oidc.static_traits(minimal(allowed_groups=[]))
    assert oidc.static_traits(minimal(allowed_groups=[], allow_all=True))["allow_all"] is True


def test_bad_group_pattern_names_the_key():
    with pytest.raises(oidc.OIDCSettingsError, match=r"oidc\.groups\.pattern"):
        oidc.groups_key(minimal(groups={"pattern": "(unclosed"}))


def test_endpoints_explicit_win_over_discovery():
    discovery = {"authorization_endpoint": "https://d/auth", "token_endpoint": "https://d/token",
                 "userinfo_endpoint": "https://d/userinfo"}
    urls = oidc.endpoints({"token_url": "https://mine/token"}, discovery)
    assert urls == {"authorize_url": "https://d/auth", "token_url": "https://mine/token",
                    "userdata_url": "https://d/userinfo"}
    with pytest.raises(oidc.OIDCSettingsError, match=r"oidc\.userdata_url"):
        oidc.endpoints({}, {"authorization_endpoint": "a", "token_endpoint": "t"})


def test_discovery_from_a_real_provider(oidc_provider):
    document = oidc.discover(oidc_provider["issuer"])
    urls = oidc.endpoints({}, document)
    assert urls["token_url"] == oidc_provider["issuer"] + "/token"
    assert urls["userdata_url"] == oidc_provider["issuer"] + "/me"


def test_discovery_failure_names_the_issuer():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(oidc.OIDCSettingsError, match=r"oidc\.issuer: discovery .* failed"):
        oidc.discover(f"http://127.0.0.1:{closed}", timeout=5)


# --- crypt key, token environment, configure()


def test_crypt_key_generated_once_and_private(tmp_path):
    from jupyterhub.crypto import _validate_key

    keys = oidc.crypt_keys(str(tmp_path / "state"), environ={})
    path = tmp_path / "state" / oidc.CRYPT_KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(_validate_key(keys[0])) == 32
    assert oidc.crypt_keys(str(tmp_path / "state"), environ={}) == keys  # kept, not replaced
    assert oidc.crypt_keys(str(tmp_path / "other"), environ={oidc.CRYPT_KEY_ENV: "x"}) is None


def test_token_environment():
    env = oidc.token_environment({"access_token": "tok", "refresh_token": "r"})
    assert env == {"DEEPVRE_ACCESS_TOKEN": "tok", "OAUTH_ACCESS_TOKEN": "tok"}
    assert oidc.token_environment(None) == {}
    assert oidc.token_environment({"access_token": None}) == {}


class FakeSpawner:
    def __init__(self):
        self.environment = {"KEEP": "1"}


def test_auth_state_hook_adds_token_after_previous_hook():
    calls = []
    hook = oidc.make_auth_state_hook(lambda spawner, state: calls.append(state))
    spawner = FakeSpawner()
    asyncio.run(hook(spawner, {"access_token": "tok"}))
    assert calls == [{"access_token": "tok"}]
    assert spawner.environment == {"KEEP": "1", "DEEPVRE_ACCESS_TOKEN": "tok", "OAUTH_ACCESS_TOKEN": "tok"}


def test_configure_sets_traits_the_authenticator_accepts(tmp_path, monkeypatch):
    from oauthenticator.generic import GenericOAuthenticator

    monkeypatch.setenv("TEST_SECRET", "s3")
    monkeypatch.delenv(oidc.CRYPT_KEY_ENV, raising=False)
    c = Config()
    previous = lambda spawner, state: None
    c.Spawner.auth_state_hook = previous
    oidc.configure(c, {"oidc": minimal(admin_groups=["admins"])}, state_dir=tmp_path)
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert len(c.CryptKeeper["keys"]) == 1  # (Config.keys is the dict method)
    assert c.Spawner.auth_state_hook is not previous
    authenticator = GenericOAuthenticator(config=c)
    assert authenticator.client_secret == "s3"
    assert authenticator.admin_groups == {"admins"}
    assert authenticator.enable_auth_state and authenticator.manage_groups
    assert authenticator.refresh_pre_spawn is True


def test_configure_without_issuer_or_urls_names_the_key(tmp_path):
    settings = {"oidc": {"client_id": "hub", "client_secret_env": "X", "allow_all": True}}
    with pytest.raises(oidc.OIDCSettingsError, match=r"oidc\.issuer"):
        oidc.configure(Config(), settings, state_dir=tmp_path)
    with pytest.raises(oidc.OIDCSettingsError, match=r"^oidc: "):
        oidc.configure(Config(), {}, state_dir=tmp_path)


# --- schema (through the hub's settings loader) and the EGI example


def oidc_errors(section):
    with pytest.raises(SettingsError) as info:
        validate_settings({"auth": {"type": "oidc"}, "oidc": section})
    return "\n".join(info.value.errors)


def test_schema_missing_client_id_names_the_key():
    section = minimal()
    del section["client_id"]
    assert "oidc: 'client_id' is a required property" in oidc_errors(section)


def test_schema_unknown_and_mistyped_keys_are_named():
    errors = oidc_errors(minimal(client_secret="inline!", refresh_age="5m"))
    assert "oidc.client_secret: unknown key" in errors
    assert "oidc.refresh_age: '5m' is not of type 'integer'" in errors
    assert "oidc.groups.claim" in oidc_errors(minimal(groups={"claim": 3}))


def test_egi_example_is_valid_and_maps_entitlements(monkeypatch, tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    settings = validate_settings(data)
    section = settings["oidc"]
    assert section["issuer"] == "https://aai.egi.eu/auth/realms/egi"
    assert "eduperson_entitlement" in section["scopes"]
    traits = oidc.authenticator_traits(section, environ={"DEEPVRE_OIDC_CLIENT_SECRET": "s"})
    assert traits["token_url"] == "https://aai.egi.eu/auth/realms/egi/protocol/openid-connect/token"
    state = {"oauth_user": {"eduperson_entitlement": [
        "urn:mace:egi.eu:group:vo.example.eu:role=member#aai.egi.eu",
        "urn:mace:egi.eu:group:vo.example.eu:admins:role=member#aai.egi.eu",
        "urn:mace:egi.eu:group:vo.example.eu:role=vm_operator#aai.egi.eu",
    ]}}
    groups = traits["auth_state_groups_key"](state)
    assert groups == ["example-admins", "example-users"]
    assert set(groups) & set(traits["allowed_groups"]) and set(groups) & set(traits["admin_groups"])
    voperson_id = "9c1f" * 16 + "@egi.eu"
    account = oidc.account_username(section)({"voperson_id": voperson_id})
    assert account.startswith("_h") and len(account) == 32


# --- user names as OS account names (local and Slurm modes)


def test_account_username_maps_the_claim():
    claim = oidc.account_username(minimal(username_claim="voperson_id", username_suffix="@egi.eu"))
    assert claim({"voperson_id": "jdoe@egi.eu", "preferred_username": "x"}) == "jdoe"
    plain = oidc.account_username(minimal(username_claim="preferred_username"))
    assert plain({"preferred_username": "jane.doe@uni.example"}) == "jane_2edoe_40uni_2eexample"
    assert oidc.account_username(minimal())({"sub": "a.b", "preferred_username": "root"}) == "a_2eb"


def test_account_username_refuses_with_a_clear_message():
    from tornado import web

    claim = oidc.account_username(minimal(username_claim="voperson_id", username_suffix="@egi.eu"))
    with pytest.raises(web.HTTPError) as refused:
        claim({"voperson_id": "jdoe@evil.example"})
    assert refused.value.status_code == 403
    assert "does not end with '@egi.eu' (oidc.username_suffix)" in refused.value.jupyterhub_message
    with pytest.raises(ValueError, match="no 'voperson_id' claim"):
        claim({"preferred_username": "jdoe"})


@pytest.mark.parametrize("mode, mapped", [("local", True), ("slurm", True), ("kubernetes", False)])
def test_configure_maps_names_where_they_are_os_accounts(tmp_path, monkeypatch, mode, mapped):
    from oauthenticator.generic import GenericOAuthenticator

    monkeypatch.setenv("TEST_SECRET", "s3")
    c = Config()
    oidc.configure(c, {"mode": mode, "oidc": minimal(username_claim="sub")}, state_dir=tmp_path)
    authenticator = GenericOAuthenticator(config=c)
    assert callable(authenticator.username_claim) is mapped
    assert authenticator.user_info_to_username({"sub": "a@b"}) == ("a_40b" if mapped else "a@b")
    assert authenticator.validate_username("a@b") is not mapped
