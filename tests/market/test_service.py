"""The marketplace as a real JupyterHub 5.5 service behind configurable-http-proxy (:mod:`.markethub`)."""

import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from deepvre.market import metadata
from deepvre.market.catalog import Conflict, Forbidden, NotFound
from deepvre.market.client import HTTPMarket, artifact_folder
from deepvre.market.store import IntegrityError

from .conftest import artifact_files, make_document, tar_of
from .markethub import market_hub

UPLOAD_LIMIT = 3_000_000

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    # publishes race across processes too
    with market_hub(tmp_path_factory.mktemp("market-hub"), {"upload_limit": UPLOAD_LIMIT, "processes": 2}) as hub:
        yield hub


@pytest.fixture(scope="module")
def clients(hub, tiny_model_dir):
    """One HTTP client per user; alice has published public, private and group models."""
    clients = {name: HTTPMarket(hub["market_url"], token) for name, token in hub["tokens"].items()}
    files = artifact_files(tiny_model_dir)
    clients["alice"].publish(make_document(), files)
    clients["alice"].publish(make_document("alice-private", visibility="private"), files)
    clients["alice"].publish(make_document("alice-lab", visibility="group", groups=["lab"]), files)
    return clients


def test_no_token_is_401(hub, clients):
    for method, path in (("GET", "api/models"), ("GET", "api/models/tiny-colours"), ("POST", "api/models"),
                         ("GET", "api/facets")):
        r = requests.request(method, hub["market_url"] + path, data=b"x" if method == "POST" else None, timeout=30)
        assert r.status_code == 401, (method, path, r.text)
    r = requests.get(hub["market_url"] + "api/models", headers={"Authorization": "token not-a-token"}, timeout=30)
    assert r.status_code == 401


def test_a_refusal_keeps_the_connection_for_the_next_request(hub):
    """A request refused before its body was read (the upload route streams bodies) used to make
    tornado close the connection without saying so: the proxy's next request on that kept-alive
    socket hung up, and users saw the proxy's 503 about one time in five under load. Now a refusal
    waits for a small body and answers on a connection that stays open; a large body still closes
    it, and says so."""
    u = urlsplit(hub["service_url"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for i in range(20):  # one connection: each request must find it open
        method, body = ("GET", None) if i % 2 else ("POST", b"x" * 4096)
        conn.request(method, u.path + "api/models", body=body, headers={"Authorization": "token not-a-token"})
        r = conn.getresponse()
        r.read()
        assert (r.status, r.getheader("Connection")) == (401, None), (i, method)
    conn.close()
    r = requests.post(hub["service_url"] + "api/models", data=b"x" * (2 * 1024 * 1024), timeout=30)
    assert r.status_code == 401 and r.headers.get("Connection") == "close"
    session, bad = requests.Session(), {"Authorization": "token not-a-token"}
    for _ in range(40):  # through the proxy: never its 503
        assert session.post(hub["market_url"] + "api/models", data=b"x" * 4096, timeout=30).status_code == 401
        assert session.get(hub["market_url"] + "api/models", headers=bad, timeout=30).status_code == 401


def test_an_anonymous_large_body_is_not_buffered(hub):
    """Only the upload route takes large bodies, and only once the caller is known: an anonymous
    PATCH of 3 MiB is cut off at the server's small limit (it used to be read whole, up to the
    2 GiB upload limit, before its credentials were looked at)."""
    try:
        r = requests.patch(hub["service_url"] + "api/models/tiny-colours", data=b"x" * (3 * 1024 * 1024),
                           headers={"Content-Type": "application/json"}, timeout=30)
    except requests.RequestException:
        return  # tornado closed it at Content-Length, before reading the body
    assert r.status_code == 400, r.status_code


def test_browser_is_sent_to_hub_login(hub):
    r = requests.get(hub["market_url"], allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["Location"]


def test_public_read_and_403_into_anothers_model(clients, tiny_model_dir):
    bob = clients["bob"]
    assert bob.show("tiny-colours")["owner"] == "alice"
    with pytest.raises(Forbidden):
        bob.publish(make_document(version="2.0.0"), artifact_files(tiny_model_dir))
    with pytest.raises(Forbidden):
        bob.deprecate("tiny-colours")
    with pytest.raises(Forbidden):
        bob.set_visibility("tiny-colours", "private")


def test_private_and_group_models_are_404_to_others(hub, clients, tmp_path):
    bob, carol = clients["bob"], clients["carol"]
    for name in ("alice-private", "alice-lab"):
        for call in (lambda: bob.show(name), lambda: bob.versions(name), lambda: bob.deprecate(name),
                     lambda: bob.pull(name, "1.0.0", tmp_path / name)):
            with pytest.raises(NotFound):
                call()
        # the answer is the same as for a name that never existed
        answers = [
            requests.get(f"{hub['market_url']}api/models/{n}/versions/1.0.0/files/model.keras",
                         headers={"Authorization": f"token {hub['tokens']['bob']}"}, timeout=30)
            for n in (name, "never-existed")
        ]
        assert [r.status_code for r in answers] == [404, 404]
        assert answers[0].text.replace(name, "N") == answers[1].text.replace("never-existed", "N")
    assert {e["name"] for e in bob.search()} == {"tiny-colours"}
    # carol is in the hub group `lab`: she sees the group model, not the private one
    assert {e["name"] for e in carol.search()} == {"tiny-colours", "alice-lab"}
    assert carol.pull("alice-lab", None, tmp_path / "lab")["version"] == "1.0.0"


def test_facets_over_http_show_others_only_what_they_may_see(clients):
    bob, carol = clients["bob"].facets(), clients["carol"].facets()
    assert bob["owner"] == {"alice": 1} and bob["visibility"] == {"public": 1}  # not the private or group one
    assert carol["visibility"] == {"public": 1, "group": 1}  # carol is in `lab`
    assert clients["alice"].facets()["visibility"] == {"public": 1, "private": 1, "group": 1}
    assert clients["bob"].status()["seed"]["state"] == "off"  # this hub seeds no base model


def test_admin_curates(clients):
    root, bob = clients["root"], clients["bob"]
    assert {e["name"] for e in root.search()} >= {"tiny-colours", "alice-private", "alice-lab"}
    # admins may also publish into any model; curation below
    assert root.deprecate("alice-private")["deprecated"] is True
    shown = root.set_visibility("alice-private", "public")
    assert shown["visibility"] == "public"
    assert bob.search(deprecated="true", owner="alice", visibility="public")
    root.set_visibility("alice-private", "private")
    with pytest.raises(NotFound):
        bob.show("alice-private")


def test_path_tricks_in_upload_are_refused(hub, clients, tiny_model_dir):
    doc = json.dumps(make_document("tricks")).encode()
    model = (tiny_model_dir / "model.keras").read_bytes()
    for evil in ("../../evil.keras", "/etc/evil", "sub/dir.json"):
        body = tar_of({"metadata.json": doc, "model.keras": model, evil: b"x"})
        r = requests.post(hub["market_url"] + "api/models", data=body, timeout=60,
                          headers={"Authorization": f"token {hub['tokens']['alice']}", "Content-Type": "application/x-tar"})
        assert r.status_code == 422, r.text
        assert any(evil in line for line in r.json()["errors"])
    assert not list(Path(hub["state"]).rglob("evil*"))
    with pytest.raises(NotFound):
        clients["alice"].show("tricks")


def test_schema_errors_come_back_listed(clients, tiny_model_dir):
    doc = make_document("bad-doc")
    doc["categories"] = ["Nonsense"]
    del doc["deepvre"]["output"]
    with pytest.raises(metadata.MetadataError) as err:
        clients["alice"].publish(doc, artifact_files(tiny_model_dir))
    assert any(line.startswith("categories[0]: 'Nonsense' is not one of") for line in err.value.errors)
    assert "deepvre: 'output' is a required property" in err.value.errors


def test_oversized_upload_is_413(hub, tmp_path, tiny_model_dir):
    big = tmp_path / "notes.txt"
    big.write_bytes(os.urandom(UPLOAD_LIMIT + 2_000_000))
    files = {**artifact_files(tiny_model_dir), "notes.txt": big}
    body = tar_of({"metadata.json": json.dumps(make_document("too-big")).encode(),
                     **{k: Path(v).read_bytes() for k, v in files.items()}})
    r = requests.post(hub["market_url"] + "api/models", data=body, timeout=60,
                      headers={"Authorization": f"token {hub['tokens']['alice']}", "Content-Type": "application/x-tar"})
    assert r.status_code == 413


def test_html_is_escaped_in_the_page(hub, clients, tiny_model_dir):
    doc = make_document("html-title", title="<script>alert('x')</script>", summary="<img src=x onerror=alert(1)>")
    clients["alice"].publish(doc, artifact_files(tiny_model_dir))
    r = requests.get(hub["market_url"], headers={"Authorization": f"token {hub['tokens']['bob']}"}, timeout=30)
    assert r.status_code == 200
    assert "&lt;script&gt;alert(" in r.text and "&lt;img src=x" in r.text
    assert "<script>" not in r.text and "<img" not in r.text


def test_concurrent_publish_over_http_one_409(clients, tiny_model_dir):
    results = []

    def publish():
        try:
            clients["alice"].publish(make_document("raced"), artifact_files(tiny_model_dir))
            results.append("won")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == ["conflict", "won"]
    assert [v["version"] for v in clients["bob"].versions("raced")] == ["1.0.0"]


@pytest.mark.parametrize("verify", ["blake3", "sha256"])
def test_tampered_artifact_download_fails(hub, clients, tmp_path, verify):
    doc = make_document(f"tamper-me-{verify}")
    del doc["deepvre"]["training"]
    entry = clients["alice"].publish(doc, {"model.keras": clients_model(hub, tmp_path)})
    digest = entry["files"]["model.keras"]["sha256"]
    blob = Path(hub["state"]) / "artifacts" / "sha256" / digest[:2] / digest
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0x55
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        clients["bob"].pull(f"tamper-me-{verify}", "1.0.0", tmp_path / "t", verify=verify)
    assert not (tmp_path / "t" / "model.keras").exists()
    assert "integrity check failed" in hub["log"].read_text()
    assert "is corrupt" in requests.get(
        f"{hub['market_url']}api/models/tamper-me-{verify}/versions/1.0.0/files/model.keras",
        headers={"Authorization": f"token {hub['tokens']['bob']}"}, timeout=60).json()["message"]


def clients_model(hub, tmp_path):
    """A model file larger than one stream chunk, so the download is cut off mid-stream."""
    import keras

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(4096), keras.layers.Dense(3, activation="softmax")])
    path = tmp_path / "model.keras"
    model.save(path)
    assert path.stat().st_size > (1 << 20)
    return path


def test_openapi_document(hub):
    doc = yaml.safe_load(requests.get(hub["market_url"] + "api/openapi.yaml", timeout=30).text)
    assert doc["openapi"].startswith("3.")
    assert {"/api/models", "/api/models/{name}", "/api/models/{name}/versions/{version}/files/{file}",
            "/api/models/{name}/deprecate"} <= set(doc["paths"])


def test_cli_json_inside_the_hub(hub, clients):
    env = dict(os.environ, DEEPVRE_MARKET_URL=hub["market_url"], DEEPVRE_MARKET_TOKEN=hub["tokens"]["bob"])
    out = subprocess.run([str(Path(sys.executable).parent / "deepvre"), "market", "search", "colour", "--json"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert {"name", "version", "title"} <= set(hits[0])
    assert "alice-private" not in {h["name"] for h in hits} and "tiny-colours" in {h["name"] for h in hits}


def test_artifact_folder_round_trip(clients, tiny_model_dir):
    document, files = artifact_folder(tiny_model_dir)
    assert document["deepvre"]["name"] == "tiny-colours" and "model.keras" in files
