"""Attacks on the try-it path: a model service's TCP listener for the marketplace, and the
marketplace's registrations and forwarding (a real hub, the real marketplace, a real DEEPaaS).

The service (alice's, :mod:`tests.market.tryithub`) listens on loopback for the marketplace, behind
a predict-only token. The attackers: the anonymous ``nobody`` account (no credentials, then with
the try token as if it leaked), a second hub user (bob) and carol, and whoever has no hub login.
"""

import re
from pathlib import Path

import requests

from tests.market.conftest import tiny_model_dir  # noqa: F401  (a fixture)
from tests.market.tryithub import BASE, auth, register, tryit_hub  # noqa: F401  (a fixture)

from .test_serving import accepted, attackers, probe  # noqa: F401  (a fixture)

NAME = "tiny-colours"


def test_tryit_listener_refuses_anonymous_callers_and_limits_the_try_token(tryit_hub, attackers):  # noqa: F811
    service = tryit_hub["service"]
    model = f"{BASE}/v2/models/{NAME}"
    everything = [["GET", f"{BASE}/v2/models/"], ["GET", f"{model}/"], ["POST", f"{model}/predict/"],
                  ["POST", f"{model}/train/?parameters=%7B%7D"], ["GET", f"{model}/train/"]]
    for who, account in attackers.items():
        results = probe({"where": [service["address"]], "requests": everything}, account)
        assert not accepted(results), (who, results)
        assert {r[3] for r in results} == {401}, (who, results)
    # the try token (as if it leaked): metadata and predict only; train, the list, Swagger and
    # path tricks towards train are refused
    tricks = [["POST", f"{model}/train/?parameters=%7B%7D"], ["GET", f"{model}/train/"], ["GET", f"{BASE}/v2/models/"],
              ["GET", f"{BASE}/swagger.json"], ["GET", f"{BASE}/api"], ["POST", f"{model}/predict/../train/"],
              ["POST", f"{model}/predict/%2e%2e/train/"], ["POST", f"{model}%2Ftrain/"],
              ["POST", f"/v2/models/{NAME}/train/"], ["DELETE", f"{model}/train/x"], ["PUT", f"{model}/predict/"]]
    leaked = {"Authorization": f"token {service['token']}"}
    for who, account in attackers.items():
        results = probe({"where": [service["address"]], "requests": tricks, "headers": leaked}, account)
        assert not accepted(results), (who, results)
        control = probe({"where": [service["address"]], "requests": [["GET", f"{model}/"]], "headers": leaked}, account)
        assert len(accepted(control)) == 1, control
    ok = requests.post(f"http://{service['address']}{model}/predict/", headers=leaked, timeout=60,
                       data={"array": "[[" + ",".join(["[" + ",".join(["[0.9,0,0]"] * 8) + "]"] * 8)[1:-1] + "]]"})
    assert ok.status_code == 200 and ok.json()["predictions"][0][0]["label"] == "red", ok.text


def hub_api_port(hub):
    return int(re.search(r"Hub API listening on http://[^:]+:(\d+)", Path(hub["log"]).read_text()).group(1))


def test_tryit_registration_refuses_platform_ports_host_names_and_foreign_addresses(tryit_hub):  # noqa: F811
    hub = tryit_hub
    proxy_port = int(hub["url"].rsplit(":", 1)[1])
    market_port = int(hub["service_url"].split(":")[2].split("/")[0])
    attempts = {
        "the hub's API": f"127.0.0.1:{hub_api_port(hub)}",
        "the proxy": f"127.0.0.1:{proxy_port}",
        "the marketplace itself": f"127.0.0.1:{market_port}",
        "a host name": f"localhost:{hub['service']['address'].rsplit(':', 1)[1]}",
        "a URL": f"http://{hub['service']['address']}",
        "a foreign address": "10.1.2.3:5000",
        "an IPv4-mapped loopback": f"[::ffff:127.0.0.1]:{hub['service']['address'].rsplit(':', 1)[1]}",
        "the cloud metadata address": "169.254.169.254:80",
    }
    for what, address in attempts.items():
        r = register(hub, "alice", hub["service"], address=address)
        assert r.status_code == 400, (what, r.status_code, r.text)
    # nobody without a hub login registers anything
    r = requests.post(hub["service_url"] + "api/tryit", json={}, timeout=30)
    assert r.status_code == 401
    # and the page still answers through alice's real service
    page = requests.get(f"{hub['market_url']}try/{NAME}/1.0.0", headers=auth(hub["tokens"]["bob"]), timeout=30)
    assert "<b>alice</b>" in page.text


def test_tryit_a_second_user_cannot_try_or_claim_a_private_model(tryit_hub):  # noqa: F811
    hub = tryit_hub
    for headers in (auth(hub["tokens"]["bob"]), auth(hub["tokens"]["carol"])):
        for path in ("try/tiny-secret/1.0.0", "try/tiny-secret/1.0.0/", "try/tiny%2Dsecret/1.0.0"):
            assert requests.get(hub["market_url"] + path, headers=headers, timeout=30).status_code == 404, path
        r = requests.post(hub["market_url"] + "try/tiny-secret/1.0.0/predict", data={"array": "[]"}, headers=headers,
                          timeout=30)
        assert r.status_code == 404, r.text
    assert register(hub, "bob", hub["service"], name="tiny-secret").status_code == 404
    assert register(hub, "bob", hub["service"]).status_code == 403  # alice's public model: hers to offer
    for path in ("try/tiny-secret/1.0.0", f"try/{NAME}/1.0.0/predict"):
        r = requests.post(hub["market_url"] + path, data={"array": "[]"}, timeout=30, allow_redirects=False)
        assert r.status_code in (302, 401, 403, 405), (path, r.status_code)
        assert "predictions" not in r.text


def test_tryit_never_shows_the_service_address_or_token(tryit_hub):  # noqa: F811
    hub = tryit_hub
    secret, port = hub["service"]["token"], hub["service"]["address"].rsplit(":", 1)[1]
    answers = [hub["registered"].text]
    for user in ("alice", "bob", "carol", "root"):
        headers = auth(hub["tokens"][user])
        for path in (f"try/{NAME}/1.0.0", "api/models", f"api/models/{NAME}", f"api/models/{NAME}/versions/1.0.0",
                     "api/status", "", "try/tiny-secret/1.0.0"):
            answers.append(requests.get(hub["market_url"] + path, headers=headers, timeout=30).text)
        for body in ({"data": {"array": "[[1]]"}}, {"files": {"data": ("x.png", b"junk", "image/png")}}):
            answers.append(requests.post(f"{hub['market_url']}try/{NAME}/1.0.0/predict", headers=headers, timeout=60,
                                         **body).text)
    answers.append(register(hub, "alice", hub["service"]).text)  # a re-registration answers what a first one does
    answers.append(register(hub, "bob", hub["service"]).text)
    for text in answers:
        assert secret not in text and f":{port}" not in text and "127.0.0.1" not in text, text[:500]


IMPOSTOR = r'''
import http.server, json, sys

class Answer(http.server.BaseHTTPRequestHandler):
    def answer(self):
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        print(json.dumps({"method": self.command, "auth": self.headers.get("Authorization"), "body": len(body)}), flush=True)
        out = json.dumps({"name": "tiny-colours", "version": "1.0.0",
                          "predictions": [[{"label": "impostor", "probability": 1.0}]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass

print("listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
'''


def test_tryit_a_process_that_takes_the_port_of_an_ended_service_gets_no_input_and_no_token(tryit_hub):  # noqa: F811
    """Alice's service ends without withdrawing (killed); ``nobody`` binds its port and answers like
    DEEPaaS. Bob's upload never reaches it, it never sees the try token, and the registration goes."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.prereqs import require_program, require_root

    require_root()
    require_program("runuser")
    hub, service = tryit_hub, tryit_hub["service"]
    hub["process"].kill()
    hub["process"].wait(30)
    port = service["address"].rsplit(":", 1)[1]
    impostor = subprocess.Popen(["runuser", "-u", "nobody", "--", sys.executable, "-c", IMPOSTOR, port],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
                                start_new_session=True)
    try:
        assert impostor.stdout.readline().strip() == "listening", impostor.stderr.read()
        time.sleep(0.2)
        r = requests.post(f"{hub['market_url']}try/{NAME}/1.0.0/predict", headers=auth(hub["tokens"]["bob"]),
                          files={"data": ("x.png", b"\x89PNG secret pixels" * 100, "image/png")}, timeout=60)
        assert r.status_code == 502 and "gone" in r.json()["message"] and "impostor" not in r.text, r.text
        page = requests.get(f"{hub['market_url']}try/{NAME}/1.0.0", headers=auth(hub["tokens"]["bob"]), timeout=30)
        assert "Not served right now" in page.text  # the registration was dropped
    finally:
        os.killpg(impostor.pid, signal.SIGKILL)  # runuser and its python
        out, _ = impostor.communicate(timeout=30)
    seen = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert seen, "the marketplace never asked the impostor"
    assert all(s["method"] == "GET" and s["body"] == 0 for s in seen), seen  # the upload never went there
    assert all(service["token"] not in (s["auth"] or "") and s["auth"].startswith("tryit ") for s in seen), seen
