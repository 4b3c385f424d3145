"""Hostile review of the try-it path (issue 17): each test is an attack, and asserts it fails.

On a real hub with the marketplace and alice's real DEEPaaS try-it service
(:mod:`tests.market.tryithub`). The hostile party is bob, a hub user whose own model services are
processes he controls: here small HTTP servers of this test (:class:`HostileService`) that answer
the marketplace's registration check as a DEEPaaS would, then answer its forwarded predictions
with HTML, huge, deeply nested or redirecting bodies. The hub's base model (owner ``deepvre``,
served by anyone) is planted in the catalog as the seed would publish it.
"""

import concurrent.futures
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from deepvre.serving.launch import PROOF_HEADER as PROOF
from deepvre.serving.launch import try_signature as sign
from tests.market.conftest import tiny_model_dir  # noqa: F401  (a fixture)
from tests.market.tryithub import BASE, auth, register, tryit_hub  # noqa: F401  (a fixture)

from .test_attacks_review_17 import publish_directly
from .test_serving import accepted, attackers, probe  # noqa: F401  (a fixture)

NAME = "tiny-colours"
BASE_MODEL = "mobilenet-v2-imagenet"
BOBS = "bobs-colours"
HOSTILE_BASE = "/user/bob/deepvre/services/7"
TIMEOUT_S = 8  # the marketplace's try-it timeout here (marketplace.tryit_timeout; default 60)
TRYIT_MARKETPLACE = {"tryit_timeout": TIMEOUT_S}  # read by the tryit_hub fixture


class HostileService:
    """An HTTP server on loopback that passes the registration check for ``models`` (GET of a
    model's metadata with its token) and answers predictions as ``self.mode`` says; it keeps
    every request it got (``self.seen``)."""

    def __init__(self, token, models, version="1.0.0"):
        self.token, self.mode, self.seen = token, "json", []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def signed(self):
                """Whether the request carries bob's token, as a bearer token or as a signature."""
                kind, _, value = self.headers.get("Authorization", "").partition(" ")
                if kind == "token":
                    return value == outer.token
                nonce, _, signature = value.partition(" ")
                return kind == "tryit" and signature == sign(outer.token, nonce, self.command, self.path)

            def reply(self, code, body, content_type="application/json", headers=()):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                kind, _, value = self.headers.get("Authorization", "").partition(" ")
                if kind == "tryit" and self.signed():  # bob's service proves it holds his token
                    self.send_header(PROOF, sign(outer.token, value.split(" ")[0], "answer", ""))
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the marketplace hung up on a body over its limit
                    pass

            def do_GET(self):
                outer.seen.append(("GET", self.path, self.headers.get("Authorization", ""), b""))
                name = self.path.rstrip("/").rsplit("/", 1)[-1]
                if self.signed() and name in models:
                    self.reply(200, json.dumps({"name": name, "version": version}).encode())
                else:
                    self.reply(401, b'{"message": "no"}')

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.seen.append(("POST", self.path, self.headers.get("Authorization", ""), body))
                mode = outer.mode
                if mode == "html":
                    self.reply(200, b"<html><script>alert(document.cookie)</script></html>", "text/html")
                elif mode == "huge":
                    self.reply(200, b'{"predictions": "' + b"x" * (3 * 2**20) + b'"}')
                elif mode == "deep":
                    self.reply(200, b"[" * 300_000 + b"]" * 300_000)
                elif mode == "slow":  # answers nothing for longer than the marketplace waits
                    time.sleep(TIMEOUT_S + 15)
                    self.reply(200, b'{"predictions": []}')
                elif mode == "redirect":
                    self.reply(302, b"", headers=[("Location", outer.redirect_to)])
                elif mode == "bad-input-html":
                    self.reply(400, json.dumps({"message": "<img src=x onerror=alert(1)>"}).encode())
                else:
                    label = "<img src=x onerror=alert(1)>"
                    self.reply(200, json.dumps({"predictions": [[{"label": label, "probability": 0.9}]]}).encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.redirect_to = ""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def hostile_register(hub, user, service, name, **overrides):
    return register(hub, user, {"address": service.address, "token": service.token}, name=name,
                    **{"base_path": HOSTILE_BASE, **overrides})


@pytest.fixture(scope="module")
def hostile(tryit_hub):  # noqa: F811
    """The hub of ``tryit_hub`` with the base model (the system account's) and bob's own public
    model in its catalog, and bob's and alice's services of them."""
    state = Path(tryit_hub["state"])
    publish_directly(state, BASE_MODEL, "deepvre")
    publish_directly(state, BOBS, "bob")
    bob = HostileService("b" * 40, {BASE_MODEL, BOBS})
    alice = HostileService("a" * 40, {BASE_MODEL})
    try:
        yield {**tryit_hub, "bob": bob, "alice": alice}
    finally:
        bob.close()
        alice.close()


def predict(hub, user, name, data=None):
    return requests.post(f"{hub['market_url']}try/{quote(name, safe='')}/1.0.0/predict", timeout=120,
                         headers=auth(hub["tokens"][user]), data=data or {"array": "[[1, 2, 3]]"})


def answered_by(hub, user, name):
    page = requests.get(f"{hub['market_url']}try/{quote(name, safe='')}/1.0.0", headers=auth(hub["tokens"][user]),
                        timeout=30)
    assert page.status_code == 200, page.text
    found = re.search(r"model service of <b>([^<]*)</b>", page.text)
    return found.group(1) if found else None


def test_a_later_registration_of_the_base_model_does_not_take_its_own_servers_users(hostile):
    """The base model may be served (and registered) by anyone. alice serves it and tries it; bob
    registers his service of it after her. Was an open hole: the latest registration answered
    everyone, so alice's own uploads went to bob's service. Now a user who serves it is answered
    by their own service; a user who does not (carol) is told, on the page, whose service answers
    (bob's: what she sends goes to him; see docs/security.md)."""
    hub, bob, alice = hostile, hostile["bob"], hostile["alice"]
    assert hostile_register(hub, "alice", alice, BASE_MODEL).status_code == 201
    assert answered_by(hub, "carol", BASE_MODEL) == "alice"
    assert hostile_register(hub, "bob", bob, BASE_MODEL).status_code == 201
    bob.seen.clear()
    mark = "alice-private-upload-" + "7" * 8
    r = predict(hub, "alice", BASE_MODEL, data={"array": f'[["{mark}"]]'})
    assert r.status_code == 200, r.text
    assert not any(mark.encode() in body for *_, body in bob.seen), "alice's upload reached bob's service"
    assert any(mark.encode() in body for *_, body in alice.seen)
    assert answered_by(hub, "alice", BASE_MODEL) == "alice"
    # carol serves nothing: the page names whose service her upload goes to
    assert answered_by(hub, "carol", BASE_MODEL) == "bob"
    # bob cannot withdraw alice's registration (nor anonymously): hers still answers her
    for headers in (auth(hub["tokens"]["bob"]), {}):
        r = requests.delete(f"{hub['service_url']}api/tryit/{BASE_MODEL}/1.0.0", headers=headers, timeout=30)
        assert r.status_code in (204, 401, 404)
    assert answered_by(hub, "alice", BASE_MODEL) == "alice"
    assert requests.delete(f"{hub['service_url']}api/tryit/{BASE_MODEL}/1.0.0", headers=auth(hub["tokens"]["bob"]),
                           timeout=30).status_code == 404  # his was the one removed above
    assert answered_by(hub, "carol", BASE_MODEL) == "alice"


def test_a_hostile_service_cannot_put_its_body_in_the_marketplaces_answer(hostile):
    hub, bob = hostile, hostile["bob"]
    assert hostile_register(hub, "bob", bob, BOBS).status_code == 201
    hub_api = re.search(r"Hub API listening on (http://[^/\s]+)", Path(hub["log"]).read_text()).group(1)
    bob.redirect_to = f"{hub_api}/hub/api/users"
    for mode, status in (("html", {502}), ("huge", {502, 504}), ("deep", {502}), ("redirect", {502}),
                         ("bad-input-html", {400})):
        bob.mode = mode
        r = predict(hub, "carol", BOBS)
        assert r.status_code in status, (mode, r.status_code, r.text[:300])
        assert r.headers["Content-Type"].startswith("application/json"), mode
        assert "<script>" not in r.text and "xxxxxxxx" not in r.text and "[[[[" not in r.text, mode
        assert set(r.json()) == {"message"}, (mode, r.text[:300])
    # the labels of a hostile answer stay data: JSON, drawn by the page with textContent under a nonce CSP
    bob.mode = "json"
    r = predict(hub, "carol", BOBS)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["predictions"][0][0]["label"] == "<img src=x onerror=alert(1)>"
    page = requests.get(f"{hub['market_url']}try/{BOBS}/1.0.0", headers=auth(hub["tokens"]["carol"]), timeout=30)
    assert "script-src 'nonce-" in page.headers["Content-Security-Policy"]
    assert "label.textContent = String(p.label)" in page.text and "innerHTML" not in page.text
    # the marketplace still answers after all of it
    assert answered_by(hub, "carol", BOBS) == "bob"


def test_a_stalling_service_holds_up_only_its_own_callers(hostile):
    hub, bob = hostile, hostile["bob"]
    assert hostile_register(hub, "bob", bob, BOBS).status_code == 201
    bob.mode = "slow"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        sent = time.monotonic()
        stalled = [pool.submit(predict, hub, "carol", BOBS) for _ in range(3)]
        time.sleep(1)
        page = requests.get(f"{hub['market_url']}try/{NAME}/1.0.0", headers=auth(hub["tokens"]["alice"]), timeout=30)
        ok = predict(hub, "alice", NAME, data={"array": json.dumps([[[[0.9, 0, 0]] * 8] * 8])})
        assert page.status_code == 200 and ok.status_code == 200, (page.status_code, ok.text[:300])
        # both answered while bob's service still held all three of carol's requests
        assert not any(future.done() for future in stalled), "the stalled requests ended before the others answered"
        for future in stalled:
            r = future.result()
            assert r.status_code == 504 and set(r.json()) == {"message"}, (r.status_code, r.text[:300])
        assert TIMEOUT_S - 1 < time.monotonic() - sent < TIMEOUT_S + 10  # the marketplace's timeout ended them
    bob.mode = "json"


def test_ssrf_through_the_registered_address_is_refused(hostile):
    hub, bob = hostile, hostile["bob"]
    port = bob.address.rsplit(":", 1)[1]
    log = Path(hub["log"]).read_text()
    hub_api = re.search(r"Hub API listening on http://[^:]+:(\d+)", log).group(1)
    proxy_api = re.search(r"Proxy API at http://[^:]+:(\d+)", log)
    proxy_port = hub["url"].rsplit(":", 1)[1]
    addresses = [f"127.1:{port}", f"2130706433:{port}", f"0177.0.0.1:{port}", f"0x7f.0.0.1:{port}",
                 f"127.000.000.001:{port}", f"0.0.0.0:{port}", f"[::]:{port}", f"[::ffff:7f00:1]:{port}",
                 f"[::ffff:127.0.0.1]:{port}", f"[fe80::1]:{port}", f"224.0.0.1:{port}", "127.0.0.1:0",
                 "127.0.0.1:65536", f" 127.0.0.1:{port}", f"127.0.0.1:{port}\n", f"127.0.0.1:{port}/x",
                 f"127.0.0.1:+{port}", f"[::1]:{hub_api}", f"127.0.0.2:{hub_api}", f"127.0.0.1:{hub_api}",
                 f"127.0.0.2:{proxy_port}", f"[::1]:{proxy_port}", f"bob@127.0.0.1:{port}", f"127.0.0.1:{port}#",
                 f"10.0.0.1:{port}", f"8.8.8.8:{port}", f"169.254.169.254:{port}", "[::ffff:169.254.169.254]:80",
                 f"localhost:{port}", f"127.0.0.1.nip.io:{port}"]
    if proxy_api:
        addresses.append(f"127.0.0.1:{proxy_api.group(1)}")
    bob.seen.clear()
    for address in addresses:
        r = hostile_register(hub, "bob", bob, BOBS, address=address)
        assert r.status_code == 400, (address, r.status_code, r.text)
    # base paths that climb out of the service's own prefix, or carry a query
    for base_path in ("/../../hub/api", "/x/..", "/x/../..", "/a?b=1", "/a#b", "//evil.example", "x", "/a b",
                      "/a\r\nX-Injected: 1"):
        r = hostile_register(hub, "bob", bob, BOBS, base_path=base_path)
        assert r.status_code == 400, (base_path, r.status_code, r.text)
    assert bob.seen == [], bob.seen  # nothing refused reached even the address bob controls
    # non-strings, extra keys
    for body in ({"name": BOBS}, {"name": BOBS, "version": "1.0.0", "address": bob.address, "base_path": HOSTILE_BASE,
                                  "try_token": bob.token, "server_user": "alice"},
                 {"name": BOBS, "version": "1.0.0", "address": [bob.address], "base_path": HOSTILE_BASE,
                  "try_token": bob.token}):
        r = requests.post(hub["service_url"] + "api/tryit", json=body, headers=auth(hub["tokens"]["bob"]), timeout=30)
        assert r.status_code == 400, (body, r.text)


def test_a_second_user_cannot_take_over_or_withdraw_anothers_registration(hostile):
    hub, bob = hostile, hostile["bob"]
    alice_service = hub["service"]
    for name in (NAME, NAME.upper(), NAME.replace("-", "_"), f" {NAME}", quote(NAME, safe="")):
        r = hostile_register(hub, "bob", bob, name)
        assert r.status_code in (400, 403, 404), (name, r.status_code, r.text)
        # with alice's own address and try token (as if they leaked)
        r = register(hub, "bob", alice_service, name=name)
        assert r.status_code in (400, 403, 404), (name, r.status_code, r.text)
    for path in (f"{NAME}/1.0.0", f"{NAME.upper()}/1.0.0", "tiny%2Dcolours/1.0.0", f"{NAME}/latest"):
        for headers in (auth(hub["tokens"]["bob"]), auth(hub["tokens"]["carol"]), {}):
            r = requests.delete(f"{hub['service_url']}api/tryit/{path}", headers=headers, timeout=30)
            assert r.status_code in (400, 401, 404), (path, r.status_code)  # 400: not a name or version
    assert answered_by(hub, "carol", NAME) == "alice"
    ok = predict(hub, "carol", NAME, data={"array": json.dumps([[[[0.9, 0, 0]] * 8] * 8])})
    assert ok.status_code == 200 and ok.json()["predictions"][0][0]["label"] == "red", ok.text


def test_the_try_token_in_a_query_or_cookie_opens_no_more_than_in_the_header(tryit_hub, attackers):  # noqa: F811
    service = tryit_hub["service"]
    token = service["token"]
    model = f"{BASE}/v2/models/{NAME}"
    forbidden = [["POST", f"{model}/train/?parameters=%7B%7D&token={token}"], ["GET", f"{model}/train/?token={token}"],
                 ["GET", f"{BASE}/v2/models/?token={token}"], ["GET", f"{BASE}/swagger.json?token={token}"],
                 ["POST", f"{model}//train/?token={token}"], ["POST", f"{model}/train?token={token}"],
                 ["POST", f"{model}/predict/../train/?token={token}"]]
    wrong = [["GET", f"{model}/?token={'x' * 43}"], ["POST", f"{model}/predict/?token="],
             ["GET", f"{model}/?token={token[:-1]}"]]
    cookie = {"Cookie": f"deepvre-serve-token={token}"}
    for who, account in attackers.items():
        results = probe({"where": [service["address"]], "requests": forbidden}, account)
        assert not accepted(results) and {r[3] for r in results} <= {403, 404}, (who, results)
        results = probe({"where": [service["address"]], "requests": wrong}, account)
        assert not accepted(results) and {r[3] for r in results} == {401}, (who, results)
        no_query = [[m, p.split("?token=")[0].replace(f"&token={token}", "")] for m, p in forbidden]
        results = probe({"where": [service["address"]], "requests": no_query, "headers": cookie}, account)
        assert not accepted(results), (who, results)
        # an empty Authorization header does not make the try token in the cookie count as the owner's
        results = probe({"where": [service["address"]], "requests": no_query,
                         "headers": {**cookie, "Authorization": "token "}}, account)
        assert not accepted(results), (who, results)
        control = probe({"where": [service["address"]], "requests": [["GET", f"{model}/?token={token}"]]}, account)
        assert len(accepted(control)) == 1, control


def test_names_with_paths_or_html_in_the_try_urls_reach_nothing(hostile):
    hub = hostile
    names = ["<script>alert(1)</script>", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "..", "%2e%2e", f"{NAME}%2F..%2F..",
             f"..%2F{NAME}", "tiny-secret%2F..%2Ftiny-colours", "%00", "tiny-secret%00", "TINY-SECRET"]
    for name in names:
        for version in ("1.0.0", "..", "%2e%2e", "<b>1</b>"):
            for tail in ("", "/predict"):
                url = f"{hub['market_url']}try/{name}/{version}{tail}"
                r = (requests.post(url, data={"array": "[[1]]"}, headers=auth(hub["tokens"]["carol"]), timeout=30)
                     if tail else requests.get(url, headers=auth(hub["tokens"]["carol"]), timeout=30))
                assert r.status_code in (400, 403, 404, 405), (url, r.status_code)
                if r.headers.get("Content-Type", "").startswith("text/html"):  # the names stay text
                    assert "<script>alert" not in r.text and "<b>1</b>" not in r.text, (url, r.text[:300])
                else:
                    assert r.headers["Content-Type"].startswith("application/json"), (url, r.headers)
                assert "predictions" not in r.text and "Answered by" not in r.text, url
    for name in ("%2e%2e", f"{NAME}%2F..", "<b>x</b>"):
        r = requests.delete(f"{hub['service_url']}api/tryit/{name}/1.0.0", headers=auth(hub["tokens"]["bob"]), timeout=30)
        assert r.status_code in (400, 404), (name, r.status_code)


def test_no_try_token_in_the_hubs_log(hostile):
    """Last: after every registration, forward and error above, the log holds no try token."""
    log = Path(hostile["log"]).read_text()
    for token in (hostile["service"]["token"], hostile["bob"].token, hostile["alice"].token):
        assert token not in log


def odd_images():
    """Image uploads a decoder may trip on: empty, text, truncated, CMYK, 16-bit, palette, 1x1 GIF."""
    import io

    from PIL import Image

    out = {"empty": b"", "text": b"not an image", "truncated": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"}
    for label, (mode, fmt) in {"cmyk": ("CMYK", "JPEG"), "16bit": ("I;16", "PNG"), "palette": ("P", "PNG"),
                               "gif": ("L", "GIF"), "rgba": ("RGBA", "PNG"), "1bit": ("1", "PNG")}.items():
        buf = io.BytesIO()
        Image.new(mode, (1, 1) if label == "gif" else (9, 7)).save(buf, fmt)
        out[label] = buf.getvalue()
    return out


def test_a_callers_bad_input_does_not_withdraw_the_owners_service(hostile):
    """Whatever carol sends, alice's registration still answers the next caller (a service that
    answers without its proof is dropped: an error of the service must not look like that)."""
    hub = hostile
    forms = [{"array": a} for a in ("[]", "[[]]", '[["x"]]', "[[NaN]]", "[[1e999]]", "1", '"x"', "{}", "[" * 5000,
                                    json.dumps([[[[0.5] * 3] * 8] * 8] * 300))]
    forms += [{"array": json.dumps([[[[0.9, 0, 0]] * 8] * 8]), "top_k": k} for k in ("0", "-1", "1e9", "x", "")]
    forms += [{"arrays": "[[1]]"}, {}]
    for data in forms:
        r = requests.post(f"{hub['market_url']}try/{NAME}/1.0.0/predict", data=data, timeout=120,
                          headers=auth(hub["tokens"]["carol"]))
        assert r.status_code in (200, 400, 413), (str(data)[:80], r.status_code, r.text[:300])
    for label, body in odd_images().items():
        r = requests.post(f"{hub['market_url']}try/{NAME}/1.0.0/predict", files={"data": (f"x.{label}", body)},
                          timeout=120, headers=auth(hub["tokens"]["carol"]))
        assert r.status_code in (200, 400), (label, r.status_code, r.text[:300])
    assert answered_by(hub, "bob", NAME) == "alice"
    ok = predict(hub, "bob", NAME, data={"array": json.dumps([[[[0.9, 0, 0]] * 8] * 8])})
    assert ok.status_code == 200 and ok.json()["predictions"][0][0]["label"] == "red", ok.text


SQUATTER = r'''
import http.server, json, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer({"name": sys.argv[2], "version": "1.0.0"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(json.dumps({"auth": self.headers.get("Authorization", ""), "body": body.decode("latin-1")}), flush=True)
        self.answer({"predictions": [[{"label": "forged", "probability": 1.0}]]})

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


def test_a_stale_registration_does_not_send_uploads_to_whoever_takes_its_port(hostile, attackers):  # noqa: F811
    """alice's service dies on its own (SIGKILL, as the OOM killer would) while her server runs on:
    nothing withdraws its registration. A second OS account binds the port it freed, answers as
    anything, and waits; carol then tries alice's model. Was an open hole (carol's upload and
    alice's try token reached the second account); fixed by 9dcf5ec's signed requests. Runs last:
    alice's service is gone."""
    hub, account = hostile, attackers["second account"]
    port = int(hub["service"]["address"].rsplit(":", 1)[1])
    os.killpg(hub["process"].pid, signal.SIGKILL)
    hub["process"].wait(30)
    squatter = subprocess.Popen(["runuser", "-u", account, "--", sys.executable, "-I", "-c", SQUATTER, str(port), NAME],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.RequestException:
                assert squatter.poll() is None and time.monotonic() < deadline, squatter.stderr.read()
                time.sleep(0.2)
        mark = "carol-private-upload-" + "9" * 8
        r = predict(hub, "carol", NAME, data={"array": f'[["{mark}"]]'})
    finally:
        squatter.terminate()
        received, _ = squatter.communicate(timeout=30)
    assert mark not in received, f"carol's upload reached the second account: {received[:300]}"
    assert hub["service"]["token"] not in received, "alice's try token reached the second account"
    assert r.status_code != 200 or "forged" not in r.text, r.text
