"""Review of the service accounts (de102d2): what a service account's process gets from the hub.

``service_accounts.check_access`` runs a Python probe *as* ``deepvre-market`` / ``deepvre-culler``
at every root hub start, with the hub's whole environment (``subprocess.run`` without ``env``):
the OIDC client secret (``oidc.client_secret_env``), ``JUPYTERHUB_CRYPT_KEY`` and whatever else
root started the hub with. ``/proc/<pid>/environ`` of that probe is readable by every process of
the same account, so a marketplace taken over by an upload that left a process behind (a service
stop signals only the service's pid) reads root's secrets at the next hub start; reproduced with
a real root hub and a watcher polling ``/proc`` as ``deepvre-market``.
"""

import os
import shutil
import sys

import pytest

from deepvre.site.settings import validate_settings
from deepvre_hub import culler, service_accounts
from tests.prereqs import hub_tmpdir, require_root

SECRET = "review-secret-7f3a9c"


def test_the_access_probe_does_not_carry_the_hubs_environment(monkeypatch):
    require_root()
    entry = service_accounts.ensure("deepvre-market")
    folder = hub_tmpdir("probe-env-")
    try:
        out = os.path.join(folder, "out")
        os.mkdir(out, 0o700)
        os.chown(out, entry.pw_uid, entry.pw_gid)
        # what the account's process is given: a wrapper around the hub's Python records it
        wrapper = os.path.join(folder, "python")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nenv > {out}/env.txt\nexec {sys.executable} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        monkeypatch.setattr(sys, "executable", wrapper)
        monkeypatch.setenv("DEEPVRE_REVIEW_OIDC_SECRET", SECRET)
        monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", SECRET)
        service_accounts.check_access(entry, "marketplace", {out: "w"})
        with open(os.path.join(out, "env.txt")) as f:
            seen = f.read()
        assert SECRET not in seen, "the probe run as deepvre-market holds the hub's secrets in its environment"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_marketplace_and_the_culler_never_share_an_account():
    """Docs: "Two accounts, not one: a marketplace taken over by an upload must not read the
    culler's token from /proc/<pid>/environ". Settings naming one account for both pass today,
    and both services then run as it."""
    require_root()
    settings = validate_settings({"hub": {"service_accounts": {"marketplace": "deepvre-market",
                                                               "idle-culler": "deepvre-market"}}})
    folder = hub_tmpdir("same-account-")
    try:
        state = os.path.join(folder, "state")
        os.mkdir(state, 0o700)
        config = culler.config_path(state)
        config.write_text("")
        services = [{"name": "marketplace", "environment": {"DEEPVRE_MARKET_DIR": os.path.join(state, "marketplace")}},
                    {"name": "idle-culler"}]
        with pytest.raises(service_accounts.ServiceAccountError):
            service_accounts.apply(services, settings, state)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
