"""Attacks on the marketplace by a second hub user and by an anonymous local process.

A real JupyterHub 5.5 runs the marketplace as its service (``tests/market/markethub.py``): alice
owns models, the attackers are other hub users (one whose name smuggles ``?``/``#`` into the hub
API URL, made through the admin API, which skips the authenticator's name pattern), tokens without
the marketplace's scope, and local processes with no token at all (the standalone service).
"""

import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from traitlets.config import Config

from tests.hub.hubprocess import free_port, wait_for
from tests.market.conftest import make_document, stop_process
from tests.market.fuzz_hooks import MODEL, tar_of
from tests.market.markethub import market_answers, market_hub

UPLOAD_LIMIT = 4 * 1024 * 1024
SCOPE = "access:services!service=marketplace"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with market_hub(tmp_path_factory.mktemp("sec-market"), {"upload_limit": UPLOAD_LIMIT}) as hub:
        hub["api"] = hub["url"] + "/hub/api"
        hub["admin"] = {"Authorization": f"token {hub['tokens']['root']}"}
        yield hub


def auth(token):
    return {"Authorization": f"token {token}"} if token else {}


def user_token(hub, name, scopes=None, create=False):
    """A token of hub user ``name`` (made with the admin's token; ``scopes``: only those)."""
    path = f"{hub['api']}/users/{quote(name, safe='')}"
    if create:
        requests.post(path, headers=hub["admin"], timeout=30).raise_for_status()
    body = {"note": "security test", **({"scopes": scopes} if scopes is not None else {})}
    r = requests.post(f"{path}/tokens", json=body, headers=hub["admin"], timeout=30)
    r.raise_for_status()
    return r.json()["token"]


def upload(hub, token, body):
    return requests.post(hub["market_url"] + "api/models", data=body, timeout=120,
                         headers={"Content-Type": "application/x-tar", **auth(token)})


def model_tar(name, visibility="private", document=None, **extra):
    document = document or make_document(name, visibility=visibility)
    return tar_of({"metadata.json": json.dumps(document).encode(), "model.keras": MODEL,
                   "training.ipynb": b"{}", **extra})


def publish(hub, owner, name, visibility="private"):
    r = upload(hub, hub["tokens"][owner], model_tar(name, visibility))
    assert r.status_code == 201, r.text
    return r.json()


# -- 1. a user name that is another user's in the hub API URL ---------------------------------------


@pytest.mark.parametrize("suffix", ["?x", "#x"])
def test_name_with_query_or_fragment_does_not_inherit_the_admin(hub, suffix):
    """``root?x`` looked up as ``/users/root?x`` was the admin ``root``: it read, retitled and
    deprecated every private model. Its own (escaped) record makes it an ordinary user."""
    name = f"secret-{'q' if suffix == '?x' else 'f'}"
    publish(hub, "alice", name)
    attacker = auth(user_token(hub, "root" + suffix, create=True))
    base = hub["market_url"] + f"api/models/{name}"
    assert requests.get(base, headers=attacker, timeout=30).status_code == 404
    assert requests.get(base + "/versions/1.0.0/files/model.keras", headers=attacker, timeout=30).status_code == 404
    assert requests.patch(base, json={"visibility": "public"}, headers=attacker, timeout=30).status_code == 404
    assert requests.post(base + "/deprecate", json={}, headers=attacker, timeout=30).status_code == 404
    listed = requests.get(hub["market_url"] + "api/models?visibility=private", headers=attacker, timeout=30).json()
    assert name not in {e["name"] for e in listed}
    assert requests.get(base, headers=auth(hub["tokens"]["alice"]), timeout=30).json()["visibility"] == "private"


@pytest.mark.parametrize("mode", ["local", "slurm", "kubernetes"])
@pytest.mark.parametrize("auth_type", ["native", "oidc"])
def test_username_pattern_refuses_url_tricks_in_every_mode(hub_state, monkeypatch, mode, auth_type):
    """Every mode and authenticator: names with ``?``, ``#``, ``/``, ``%``, a space or a trailing
    newline are refused at sign-up / login (JupyterHub's ``validate_username``)."""
    import importlib

    from jupyterhub.auth import Authenticator

    from deepvre.site.settings import validate_settings
    from deepvre_hub import auth, modes

    if mode != "local":  # the mode's own module (spawner setup) is not what this checks
        module = importlib.import_module(f"deepvre_hub.{mode}")
        monkeypatch.setattr(module, "configure", lambda c, settings, state_dir: None)
    if auth_type == "oidc":  # a provider that is not there: the authenticator part as OIDC sets it
        def oidc_configure(c, settings):
            if settings["mode"] in ("local", "slurm"):
                c.Authenticator.username_pattern = r"^[a-z_][a-z0-9_-]{0,31}$"
        monkeypatch.setattr(auth, "configure", oidc_configure)
    c = Config()
    modes.configure(c, validate_settings({"mode": mode}), hub_state)
    check = Authenticator(username_pattern=c.Authenticator.username_pattern)
    assert check.validate_username("alice")
    for bad in ("root?x", "root#x", "root/x", "root%3fx", "root x", "alice\n", "root\nx", ""):
        assert not check.validate_username(bad), bad


# -- 2. tokens without the marketplace's scope ----------------------------------------------------


def test_token_without_the_marketplace_scope_is_refused(hub):
    narrow = auth(user_token(hub, "bob", scopes=["read:users:activity!user=bob"]))
    scoped = auth(user_token(hub, "bob", scopes=[SCOPE]))
    models = hub["market_url"] + "api/models"
    assert requests.get(models, headers=narrow, timeout=30).status_code == 403
    assert upload(hub, narrow["Authorization"].split()[1], model_tar("bob-narrow", "public")).status_code == 403
    assert requests.get(models + "/bob-narrow", headers=scoped, timeout=30).status_code == 404  # nothing published
    assert requests.get(models, timeout=30).status_code == 401  # no token at all
    # the same token, straight to the service's own port (past the proxy): refused too
    assert requests.get(hub["service_url"] + "api/models", headers=narrow, timeout=30).status_code == 403
    assert requests.get(models, headers=scoped, timeout=30).status_code == 200
    assert upload(hub, scoped["Authorization"].split()[1], model_tar("bob-scoped", "public")).status_code == 201


# -- 3. uploads that expand past the limit ---------------------------------------------------------


def sparse_tar(tmp_path, name, size, tar_format="gnu"):
    """An upload of model ``name`` (a tar file, a few KiB) whose ``weights.bin`` is a sparse member
    of ``size`` bytes, written by GNU tar in ``tar_format``."""
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps(make_document(name, visibility="public")))
    (folder / "model.keras").write_bytes(MODEL)
    (folder / "training.ipynb").write_text("{}")
    with open(folder / "weights.bin", "wb") as out:
        out.truncate(size)
    body = tmp_path / "up.tar"
    subprocess.run(["tar", f"--format={tar_format}", "--sparse", "-cf", str(body), "-C", str(folder),
                    "metadata.json", "model.keras", "training.ipynb", "weights.bin"], check=True)
    return body


def staging_peak(hub, stop, seen):
    """Largest total size of the store's staging files while ``stop`` is unset."""
    tmp = Path(hub["state"]) / "artifacts" / "tmp"
    while not stop.is_set():
        total = 0
        for path in tmp.rglob("*") if tmp.exists() else ():
            try:
                total += path.stat().st_size if path.is_file() else 0
            except OSError:
                pass
        seen.append(total)
        time.sleep(0.002)


@pytest.mark.parametrize("tar_format", ["gnu", "pax"])
def test_sparse_member_is_refused_before_anything_is_written(hub, tmp_path, tar_format):
    """A few KiB of tar with a sparse member of 256 MiB: refused from its headers."""
    body = sparse_tar(tmp_path, "sparse-bomb", 256 * 1024 * 1024, tar_format)
    assert body.stat().st_size < 64 * 1024
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=staging_peak, args=(hub, stop, seen))
    watcher.start()
    try:
        r = upload(hub, hub["tokens"]["bob"], body.read_bytes())
    finally:
        stop.set()
        watcher.join()
    assert r.status_code in (400, 413, 422), r.text
    assert max(seen) <= UPLOAD_LIMIT, f"wrote {max(seen)} bytes while unpacking"
    assert requests.get(hub["market_url"] + "api/models/sparse-bomb", headers=auth(hub["tokens"]["bob"]),
                        timeout=30).status_code == 404


def test_sparse_member_within_the_limit_is_refused(hub, tmp_path):
    """A sparse member is no plain file, whatever its size (it was stored expanded)."""
    body = sparse_tar(tmp_path, "sparse-small", 1024 * 1024)
    r = upload(hub, hub["tokens"]["bob"], body.read_bytes())
    assert r.status_code == 422 and "not a regular file" in r.text, r.text


def test_huge_metadata_json_is_413(hub):
    document = make_document("big-metadata", visibility="public")
    document["description"] = "x" * (2 * 1024 * 1024)
    r = upload(hub, hub["tokens"]["bob"], model_tar("big-metadata", document=document))
    assert r.status_code == 413 and "metadata.json" in r.text, r.text


def test_compressed_config_json_is_not_read_whole(hub):
    """A .keras zip whose config.json deflates from ~100 KiB to 100 MiB: refused from its header."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b'{"class_name": "Sequential", "config": {"layers": []}}' + b" " * (100 << 20))
        archive.writestr("metadata.json", b"{}")
        archive.writestr("model.weights.h5", b"")
    bomb = buf.getvalue()
    assert len(bomb) < 1 << 20
    body = tar_of({"metadata.json": json.dumps(make_document("zip-bomb", visibility="public")).encode(),
                   "model.keras": bomb, "training.ipynb": b"{}"})
    r = upload(hub, hub["tokens"]["bob"], body)
    assert r.status_code == 422 and "config.json" in r.text, r.text


# -- 5. what answers and searches reveal; names; flags ----------------------------------------------


def test_publish_into_a_hidden_name_answers_as_for_a_visible_one(hub):
    publish(hub, "alice", "alice-hidden", "private")
    publish(hub, "alice", "alice-shown", "public")
    answers = {}
    for name in ("alice-hidden", "alice-shown"):
        r = upload(hub, hub["tokens"]["bob"], model_tar(name, "public"))
        answers[name] = (r.status_code, r.json()["message"].replace(name, "NAME"))
    assert answers["alice-hidden"] == answers["alice-shown"], answers
    assert answers["alice-hidden"][0] == 403 and "alice" not in answers["alice-hidden"][1]


def test_model_name_with_a_trailing_newline_is_refused(hub):
    publish(hub, "alice", "lookalike", "public")
    r = upload(hub, hub["tokens"]["bob"], model_tar("lookalike\n", "public"))
    assert r.status_code == 422 and "deepvre.name" in r.text, r.text


def test_pickle_name_with_a_trailing_newline_is_refused(hub):
    r = upload(hub, hub["tokens"]["bob"], model_tar("pickle-newline", "public", **{"weights.pkl\n": b"x"}))
    assert r.status_code == 422, r.text


def test_search_order_does_not_depend_on_hidden_models(tmp_path, monkeypatch):
    """How a search is planned (tiered once BROAD visible hits) counts only what the caller sees:
    carol's private models must not change what bob gets."""
    from deepvre.market import catalog as catalog_module
    from deepvre.market.catalog import Caller, Catalog

    monkeypatch.setattr(catalog_module, "BROAD", 3)
    cat = Catalog(database_url=f"sqlite:///{tmp_path}/i.sqlite", store_url=str(tmp_path / "s"))
    model = tmp_path / "model.keras"
    model.write_bytes(MODEL)
    files = {"model.keras": model, "training.ipynb": tmp_path / "t.ipynb"}
    files["training.ipynb"].write_text("{}")

    def add(name, owner, visibility, **fields):
        cat.publish(make_document(name, visibility=visibility, tags=[], **fields), files, owner)

    add("in-title", "alice", "public", title="Zebra", summary="A model of stripes and of other patterns found on animals.",
        description="Nothing more.")
    add("in-text", "alice", "public", title="Striped horse finder", summary="zebra zebra zebra zebra",
        description="zebra " * 30)
    bob = Caller("bob")
    before = [e["name"] for e in cat.search(bob, "zebra")]
    assert before == ["in-text", "in-title"]  # untiered: bm25 over every field
    for i in range(3):
        add(f"carol-{i}", "carol", "private", description="zebra")
    assert [e["name"] for e in cat.search(bob, "zebra")] == before
    cat.engine.dispose()


def test_deprecated_must_be_a_bool(tmp_path):
    from deepvre.market.catalog import Catalog

    cat = Catalog(database_url=f"sqlite:///{tmp_path}/i.sqlite", store_url=str(tmp_path / "s"))
    model = tmp_path / "model.keras"
    model.write_bytes(MODEL)
    (tmp_path / "t.ipynb").write_text("{}")
    cat.publish(make_document("flagged"), {"model.keras": model, "training.ipynb": tmp_path / "t.ipynb"}, "alice")
    with pytest.raises(ValueError, match="deprecated"):
        cat.deprecate("alice", "flagged", deprecated="false")
    assert cat.show("alice", "flagged")["deprecated"] is False
    cat.engine.dispose()


def test_standalone_service_refuses_other_local_processes(tmp_path):
    """Standalone, the service is its user's alone: a local process without the token (written
    0600 at start) gets 401, not the admin's catalog."""
    port = free_port()
    token_file = tmp_path / "token"
    log = open(tmp_path / "service.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepvre.market", "--standalone", "--port", str(port),
         "--database-url", f"sqlite:///{tmp_path}/m.sqlite", "--store-url", str(tmp_path / "s"),
         "--token-file", str(token_file)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ, DEEPVRE_MARKET_DIR=str(tmp_path)),
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: market_answers(proc, url, tmp_path / "service.log", "the standalone marketplace"), 60,
                 "the standalone marketplace")
        assert requests.get(url + "api/models", timeout=30).status_code == 401
        assert requests.get(url + "api/models", headers=auth("guess"), timeout=30).status_code == 401
        assert requests.get(url, timeout=30).status_code == 401
        assert token_file.stat().st_mode & 0o077 == 0
        token = token_file.read_text().strip()
        assert requests.get(url + "api/models", headers=auth(token), timeout=30).status_code == 200
    finally:
        stop_process(proc, log)
