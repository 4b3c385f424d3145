"""OS account names, the mode dispatch and the hub configuration, without starting a hub."""

import json

import pytest
from traitlets.config import Config

from deepvre.site.settings import validate_settings
from deepvre_hub import accounts, modes


@pytest.mark.parametrize("name", ["alice", "_svc", "hub-user_2", "a" * 32])
def test_good_account_names(name):
    accounts.check_account_name(name)


@pytest.mark.parametrize("name", ["", "Alice", "1abc", "a/b", "../x", "a b", "a" * 33, "ali;ce"])
def test_bad_account_names(name):
    with pytest.raises(accounts.AccountError, match="cannot be an OS account"):
        accounts.check_account_name(name)


def test_system_accounts_are_refused():
    with pytest.raises(accounts.AccountError, match="system account"):
        accounts.ensure_account("daemon")


def test_uid_min(tmp_path):
    defs = tmp_path / "login.defs"
    defs.write_text("# x\nUID_MIN\t\t 2000\n")
    assert accounts.uid_min(str(defs)) == 2000
    assert accounts.uid_min(str(tmp_path / "missing")) == 1000


def test_local_mode_config(hub_state):
    tmp_path = hub_state
    c = Config()
    settings = validate_settings({"profiles": [{"slug": "cpu", "display_name": "CPU"}]})
    modes.configure(c, settings, tmp_path)
    assert c.JupyterHub.spawner_class.__name__ == "DeepvreSpawner"
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.concurrent_spawn_limit == 100  # JupyterHub's own default, said in the schema
    lifted = Config()
    modes.configure(lifted, validate_settings({"profiles": [{"slug": "cpu", "display_name": "CPU"}],
                                                      "hub": {"concurrent_spawn_limit": 400}}), tmp_path)
    assert lifted.JupyterHub.concurrent_spawn_limit == 400
    assert c.JupyterHub.authenticator_class == "nativeauthenticator.NativeAuthenticator"
    assert c.Authenticator.admin_users == {"admin"}
    assert c.ConfigurableHTTPProxy.command[0].endswith("node_modules/.bin/configurable-http-proxy")
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path}/jupyterhub.sqlite"
    assert "idle-culler" in {s["name"] for s in c.JupyterHub.services}


def test_marketplace_wiring(hub_state):
    """The service and its role, users (and their servers' tokens) may call it, servers know its URL."""
    from deepvre.market import service

    c = Config()
    settings = validate_settings({"marketplace": {"port": 10123}})
    modes.configure(c, settings, hub_state)
    assert "marketplace" in {s["name"] for s in c.JupyterHub.services}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == ["self", "access:services!service=marketplace"]
    assert "marketplace" in roles[service.hub_role(settings)["name"]]["services"]
    # a server's own token opens the server: never sent to the marketplace, so not scoped for it
    assert set(c.Spawner.server_token_scopes) == {"users:activity!user", "access:servers!server"}
    assert callable(c.Spawner.environment["DEEPVRE_MARKET_TOKEN"])
    assert c.Spawner.environment["DEEPVRE_MARKET_URL"] == "http://127.0.0.1:10123/services/marketplace/"
    # and what they need of the settings (deepvre.site.settings.for_servers), as JSON
    assert json.loads(c.Spawner.environment["DEEPVRE_SERVER_SETTINGS"])["runs_backend"] == "local"


@pytest.mark.parametrize("mode", ["kubernetes", "slurm"])
def test_other_modes_dispatch_to_their_module(hub_state, monkeypatch, mode):
    tmp_path = hub_state
    import importlib

    module = importlib.import_module(f"deepvre_hub.{mode}")
    calls = []
    monkeypatch.setattr(module, "configure", lambda c, settings, state_dir: calls.append((settings["mode"], state_dir)))
    modes.configure(Config(), validate_settings({"mode": mode}), tmp_path)
    assert calls == [(mode, tmp_path)]


# --- names from an identity provider -> OS account names


def unescape(account):
    """The inverse of ``accounts.escape_name`` (proves it injective: a decoder exists)."""
    out, i = bytearray(), 0
    while i < len(account):
        if account[i] != "_":
            out.append(ord(account[i]))
            i += 1
        elif account[i + 1] == "_":
            out.append(ord("_"))
            i += 2
        else:
            out.append(int(account[i + 1:i + 3], 16))
            i += 3
    return out.decode()


@pytest.mark.parametrize("name, account", [
    ("alice", "alice"),
    ("alice@egi.eu", "alice_40egi_2eeu"),
    ("Bob", "_42ob"),
    ("bob", "bob"),
    ("7of9", "_37of9"),
    ("-x", "_2dx"),
    ("a_b", "a__b"),
    ("a_40b", "a__40b"),  # not confused with "a@b"
    ("a@b", "a_40b"),
    ("zoë", "zo_c3_ab"),
])
def test_provider_names_map_injectively_to_account_names(name, account):
    assert accounts.account_name(name) == account
    accounts.check_account_name(account)
    assert unescape(account) == name


def test_escaping_round_trips_many_names():
    import random

    rng = random.Random(4)
    alphabet = "abcXYZ019_-@.+ é/"
    names = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(3000)}
    mapped = {accounts.escape_name(n): n for n in names}
    assert len(mapped) == len(names)  # no two names share an account
    for account, name in mapped.items():
        assert unescape(account) == name
        if len(account) <= 32:
            accounts.check_account_name(account)


def test_suffix_is_removed_and_required():
    assert accounts.account_name("jdoe@egi.eu", suffix="@egi.eu") == "jdoe"
    for name in ("jdoe", "jdoe@other.org", "@egi.eu"):
        with pytest.raises(accounts.AccountError, match=r"does not end with '@egi.eu' \(oidc.username_suffix\)"):
            accounts.account_name(name, suffix="@egi.eu")


def test_long_names_are_hashed_apart_from_escaped_names():
    egi_id = "2f8e7b1c" * 8 + "@egi.eu"  # a voperson_id: 64 hex digits
    account = accounts.account_name(egi_id, suffix="@egi.eu")
    assert account.startswith("_h") and len(account) == 32
    accounts.check_account_name(account)
    assert accounts.account_name(egi_id, suffix="@egi.eu") == account  # stable
    assert accounts.account_name(egi_id.replace("2f", "2e", 1), suffix="@egi.eu") != account
    # an escaped name never starts with "_h": after a leading "_" comes "_" or a hex digit
    assert all(not accounts.escape_name(n).startswith("_h") for n in ("h", "_h", "Hh", "_", "\x7f"))


@pytest.mark.parametrize("name", ["", None, 42])
def test_empty_or_non_text_names_are_refused(name):
    with pytest.raises(accounts.AccountError, match="cannot be an OS account"):
        accounts.account_name(name)
