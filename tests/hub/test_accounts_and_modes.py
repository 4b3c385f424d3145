"""OS account names, the mode dispatch and the hub configuration, without starting a hub."""

import pytest
from deepvre_hub import accounts, modes
from deepvre_hub.settings import validate_settings
from traitlets.config import Config


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


def test_local_mode_config(tmp_path):
    c = Config()
    settings = validate_settings({"profiles": [{"slug": "cpu", "display_name": "CPU"}]})
    modes.configure(c, settings, tmp_path)
    assert c.JupyterHub.spawner_class.__name__ == "DeepvreSpawner"
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.authenticator_class == "nativeauthenticator.NativeAuthenticator"
    assert c.Authenticator.admin_users == {"admin"}
    assert c.ConfigurableHTTPProxy.command[0].endswith("node_modules/.bin/configurable-http-proxy")
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path}/jupyterhub.sqlite"
    assert "idle-culler" in {s["name"] for s in c.JupyterHub.services}


@pytest.mark.parametrize("mode, issue", [("kubernetes", 7), ("slurm", 8)])
def test_later_modes_say_so(tmp_path, monkeypatch, mode, issue):
    import importlib

    real = importlib.import_module

    def missing(name, *args):
        if name == f"deepvre_hub.{mode}":
            raise ModuleNotFoundError(name=name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", missing)
    settings = validate_settings({"mode": mode})
    with pytest.raises(NotImplementedError, match=f"issue {issue}"):
        modes.configure(Config(), settings, tmp_path)
