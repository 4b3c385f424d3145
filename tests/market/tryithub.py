"""A hub with the marketplace, and alice's model service offered on its try-it page.

``tryit_hub`` (module scope): the hub of :mod:`.markethub`; alice has published the tiny colour
classifier (public) and a private copy (``tiny-secret``), and serves the public one the way her
server's Serve does (:func:`deepvre_jupyter.jobs.tryit_command`: the owner's Unix socket plus a TCP
listener behind a predict-only token), registered with ``POST api/tryit`` as alice.
"""

import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests

from deepvre.site import environment

from .conftest import artifact_files, make_document, stop_process
from .markethub import market_hub

BASE = "/user/alice/deepvre/services/1"


def auth(token):
    return {"Authorization": f"token {token}"}


def start_service(hub, root, model="tiny-colours", version="1.0.0", user="alice"):
    """``user``'s try-it service of ``model``: ``(process, log, {"address", "socket", "token"})``
    once its TCP listener answers its metadata to the try token."""
    from deepvre_jupyter.jobs import tryit_command

    folder = Path(root) / f"serve-{user}"
    folder.mkdir(mode=0o700)
    command, env = tryit_command(model, version, folder / "deepaas.sock", BASE, folder / "uploads", "127.0.0.1",
                                 folder / "port", str(folder))
    token = secrets.token_urlsafe(32)
    env.update({environment.SERVE_TRY_TOKEN: token, environment.MARKET_URL: hub["service_url"],
                environment.MARKET_TOKEN: hub["tokens"][user], environment.SERVE_DIR: str(folder / "artifact"),
                "JUPYTERHUB_USER": user})
    env.pop("JUPYTERHUB_API_TOKEN", None)
    log = open(folder / "serve.log", "w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError("the service exited:\n" + (folder / "serve.log").read_text()[-3000:])
        try:
            address = f"127.0.0.1:{int((folder / 'port').read_text())}"
            r = requests.get(f"http://{address}{BASE}/v2/models/{model}/", headers=auth(token), timeout=5)
            if r.status_code == 200:
                return proc, log, {"address": address, "socket": str(folder / "deepaas.sock"), "token": token}
        except (OSError, ValueError, requests.RequestException):
            pass
        assert time.monotonic() < deadline, (folder / "serve.log").read_text()[-3000:]
        time.sleep(0.5)


def register(hub, user, service, name="tiny-colours", version="1.0.0", **overrides):
    body = {"name": name, "version": version, "address": service["address"], "base_path": BASE,
            "try_token": service["token"], **overrides}
    return requests.post(hub["service_url"] + "api/tryit", json=body, headers=auth(hub["tokens"][user]), timeout=60)


@pytest.fixture(scope="module")
def tryit_hub(request, tmp_path_factory, tiny_model_dir):
    """The hub; a test module's ``TRYIT_MARKETPLACE`` (a dict) adds to its marketplace settings. The
    periodic check of the registered services is off unless the module turns it on
    (``tryit_check_interval``): tests that end a service look at what a caller's try does."""
    from deepvre.market.client import HTTPMarket

    state = tmp_path_factory.mktemp("tryit-hub")
    settings = {"tryit_check_interval": 0, **getattr(request.module, "TRYIT_MARKETPLACE", {})}
    with market_hub(state, settings) as hub:
        alice = HTTPMarket(hub["service_url"], hub["tokens"]["alice"])
        alice.publish(make_document(), artifact_files(tiny_model_dir))
        alice.publish(make_document("tiny-secret", visibility="private"), artifact_files(tiny_model_dir))
        proc, log, service = start_service(hub, state)
        try:
            r = register(hub, "alice", service)
            assert r.status_code == 201, r.text
            yield {**hub, "service": service, "registered": r, "process": proc}
        finally:
            stop_process(proc, log)
