"""The hub's state folder and proxy are never another account's to prepare (`deepvre hub up`).

The state folder holds the cookie secret, the proxy token and the database, and an installed
deepvre once looked for the proxy and the state in the folder it was started in: another local
account that prepared ``var/`` (or ``node_modules/.bin/configurable-http-proxy``) there had the
root hub run its program and trust its secrets. Now the folder must be the hub account's own, in
folders no other account controls, and an installed deepvre uses system places only.
"""

import os
import pwd
from pathlib import Path

import pytest

from deepvre.site import settings
from deepvre_hub import launcher, modes
from tests.prereqs import require_root


def test_a_state_folder_another_account_prepared_is_refused(tmp_path):
    require_root()
    nobody = pwd.getpwnam("nobody")
    planted = tmp_path / "var"
    (planted / "node_modules" / ".bin").mkdir(parents=True)
    (planted / "proxy_token").write_text("known-to-the-attacker\n")
    for path in (planted, *planted.rglob("*")):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(PermissionError, match="not a folder of this account"):
        launcher.prepare_state(planted)
    assert (planted / "proxy_token").read_text() == "known-to-the-attacker\n"  # nothing trusted, nothing changed


def test_a_state_folder_under_a_folder_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by all, no sticky bit: anyone could swap var/ for their own
    with pytest.raises(PermissionError, match="writable by others"):
        launcher.prepare_state(shared / "var")
    mine = launcher.prepare_state(tmp_path / "mine")
    assert (mine.stat().st_mode & 0o777, (mine / "proxy_token").stat().st_mode & 0o777) == (0o700, 0o600)


def test_an_installed_deepvre_never_uses_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node_modules" / ".bin").mkdir(parents=True)
    (tmp_path / "node_modules" / ".bin" / "configurable-http-proxy").write_text("#!/bin/sh\n")
    assert modes.proxy_command(None) == ["configurable-http-proxy"]  # installed: PATH, not ./node_modules
    site = tmp_path / "site-packages" / "deepvre" / "site" / "settings.py"
    assert settings.source_checkout(str(site)) is None
    checkout = Path(settings.__file__).resolve().parents[2]
    assert settings.source_checkout(settings.__file__) == checkout
    assert modes.proxy_command(checkout)[0].startswith(str(checkout))
