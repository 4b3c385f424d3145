"""The try-it page of a served model: a second user predicts through alice's service, by way of the
marketplace (a real hub, the real marketplace service, a real DEEPaaS launched as the panel does)."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from deepvre.market.tryit import check_address
from deepvre.market.trypage import platform_ports

from .conftest import colour_images, stop_process
from .test_serving import png_bytes
from .tryithub import BASE, auth, register, start_service, tryit_hub  # noqa: F401  (a fixture)

TRYIT_MARKETPLACE = {"tryit_check_interval": 2}  # the marketplace asks each registered service every 2 s


def predict(hub, user, name="tiny-colours", version="1.0.0", **kw):
    return requests.post(f"{hub['market_url']}try/{name}/{version}/predict", headers=auth(hub["tokens"][user]),
                         timeout=120, **kw)


def test_a_second_user_predicts_through_the_try_it_page(tryit_hub):  # noqa: F811
    hub = tryit_hub
    page = requests.get(f"{hub['market_url']}try/tiny-colours/1.0.0", headers=auth(hub["tokens"]["bob"]), timeout=30)
    assert page.status_code == 200, page.text
    assert "Answered by the model service of <b>alice</b>" in page.text and 'name="data"' in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    images, truth = colour_images(3, seed=5)
    colours = ["red", "green", "blue"]
    for pixels, label in zip(images, truth):
        r = predict(hub, "bob", files={"data": ("x.png", png_bytes(pixels), "image/png")}, data={"top_k": "2"})
        assert r.status_code == 200, r.text
        [top] = r.json()["predictions"]
        assert len(top) == 2 and top[0]["label"] == colours[label], top
    # an array, as the array form sends it
    x = (np.full((1, 8, 8, 3), [0.0, 0.0, 0.95])).tolist()
    r = predict(hub, "carol", data={"array": json.dumps(x)})
    assert r.status_code == 200 and r.json()["predictions"][0][0]["label"] == "blue", r.text
    # bad input: the service's 400 and its reason come through, re-serialised
    r = predict(hub, "bob", files={"data": ("x.png", b"junk", "image/png")})
    assert r.status_code == 400 and "not an image" in r.json()["message"], r.text


def test_who_may_not_see_the_model_gets_404(tryit_hub):  # noqa: F811
    hub = tryit_hub
    for user in ("bob", "carol"):
        for name in ("tiny-secret", "no-such-model"):
            page = requests.get(f"{hub['market_url']}try/{name}/1.0.0", headers=auth(hub["tokens"][user]), timeout=30)
            assert page.status_code == 404, (user, name, page.status_code)
            r = predict(hub, user, name, data={"array": "[]"})
            assert r.status_code == 404, (user, name, r.status_code, r.text)
    # the owner sees it, not served right now, with who can start it
    page = requests.get(f"{hub['market_url']}try/tiny-secret/1.0.0", headers=auth(hub["tokens"]["alice"]), timeout=30)
    assert page.status_code == 200 and "Not served right now" in page.text and "alice" in page.text
    assert predict(hub, "alice", "tiny-secret", data={"array": "[]"}).status_code == 404
    # no login: the page sends the browser to the hub's login; predict is refused
    r = requests.get(f"{hub['market_url']}try/tiny-colours/1.0.0", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/hub/" in r.headers["Location"]
    assert requests.post(f"{hub['market_url']}try/tiny-colours/1.0.0/predict", data={"array": "[]"},
                         timeout=30).status_code in (401, 403)


def test_registration_of_someone_elses_model_is_refused(tryit_hub):  # noqa: F811
    hub = tryit_hub
    r = register(hub, "bob", hub["service"])
    assert r.status_code == 403 and "alice" in r.json()["message"], r.text
    r = register(hub, "bob", hub["service"], name="tiny-secret")
    assert r.status_code == 404, r.text
    r = requests.delete(hub["service_url"] + "api/tryit/tiny-colours/1.0.0", headers=auth(hub["tokens"]["bob"]), timeout=30)
    assert r.status_code == 404  # bob offers none; alice's stays
    page = requests.get(f"{hub['market_url']}try/tiny-colours/1.0.0", headers=auth(hub["tokens"]["bob"]), timeout=30)
    assert "<b>alice</b>" in page.text


def test_bad_registrations_are_refused(tryit_hub):  # noqa: F811
    hub = tryit_hub
    for overrides, words in (({"try_token": "short"}, "try_token"), ({"base_path": "not/a/path"}, "base_path"),
                             ({"base_path": "/user/alice/../bob"}, "base_path"),
                             ({"address": hub["service"]["address"], "try_token": "x" * 40}, "did not answer")):
        r = register(hub, "alice", hub["service"], **overrides)
        assert r.status_code == 400 and words in r.json()["message"], (overrides, r.text)
    r = requests.post(hub["service_url"] + "api/tryit", json={"name": "tiny-colours"},
                      headers=auth(hub["tokens"]["alice"]), timeout=30)
    assert r.status_code == 400 and "try_token" in r.json()["message"]


def test_addresses_are_ip_literals_of_the_owners_server():
    assert check_address("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert check_address("[::1]:5000") == ("::1", 5000)
    assert check_address("10.0.0.7:5000", server_hosts=("10.0.0.7",)) == ("10.0.0.7", 5000)
    for address, words in (("localhost:5000", "IP:port literal"), ("hub:8081", "IP:port literal"),
                           ("127.0.0.1", "IP:port literal"), ("10.0.0.8:5000", "not loopback"),
                           ("0.0.0.0:5000", "not a service"), ("169.254.169.254:80", "not a service"),
                           ("127.0.0.1:8081", "platform"), ("127.0.0.1:99999", "out of range"),
                           ("http://127.0.0.1:5000", "IP:port literal")):
        with pytest.raises(ValueError, match=words):
            check_address(address, server_hosts=("10.0.0.7",), refused_ports=platform_ports({}))
    ports = platform_ports({"JUPYTERHUB_API_URL": "http://127.0.0.1:18081/hub/api"}, "127.0.0.1:18000")
    assert {18081, 18000, 8000, 8001, 8081} <= ports


def test_a_browser_that_logs_in_from_the_link_lands_on_the_try_it_page(tryit_hub):  # noqa: F811
    """The hub's login, started from the try-it link, ends on that page (was: on the marketplace's
    listing, the OAuth callback having lost the link)."""
    import re

    hub = tryit_hub
    browser = requests.Session()
    login = browser.get(f"{hub['market_url']}try/tiny-colours/1.0.0", timeout=30)
    assert "/hub/login" in login.url
    action = re.search(r'action="([^"]+)"', login.text).group(1).replace("&amp;", "&")
    page = browser.post(hub["url"] + action, data={"username": "carol", "password": "any",
                                                   "_xsrf": browser.cookies.get("_xsrf") or ""}, timeout=60)
    assert page.url == f"{hub['market_url']}try/tiny-colours/1.0.0", page.url
    assert "Answered by the model service of <b>alice</b>" in page.text


def page_text(hub, user, name):
    page = requests.get(f"{hub['market_url']}try/{name}/1.0.0", headers=auth(hub["tokens"][user]), timeout=30)
    assert page.status_code == 200, page.text
    return page.text


def test_a_crashed_service_loses_its_registration_before_anyone_tries_it(tryit_hub, tmp_path):  # noqa: F811
    """alice's second service ends without withdrawing (SIGKILL, as the OOM killer would). Nobody
    tries it: the marketplace's periodic check finds nothing listening there, drops the registration,
    and the page says the model is not being served. Live services keep theirs through the checks."""
    hub = tryit_hub
    proc, log, service = start_service(hub, tmp_path, model="tiny-secret")
    try:
        assert register(hub, "alice", service, name="tiny-secret").status_code == 201
        time.sleep(5)  # two checks or more: a live service stays registered
        assert "model service of <b>alice</b>" in page_text(hub, "alice", "tiny-secret")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        killed = time.monotonic()
        while "Not served right now" not in (text := page_text(hub, "alice", "tiny-secret")):
            assert time.monotonic() - killed < 30, text
            time.sleep(0.5)
    finally:
        stop_process(proc, log)
    assert "model service of" not in text and 'name="array"' not in text  # no form to a gone service
    assert "where alice's service was; its registration is dropped" in Path(hub["log"]).read_text()
    # alice's first service lives: still registered, still answering
    assert "model service of <b>alice</b>" in page_text(hub, "bob", "tiny-colours")
    r = predict(hub, "bob", data={"array": json.dumps(np.full((1, 8, 8, 3), [0.95, 0.0, 0.0]).tolist())})
    assert r.status_code == 200 and r.json()["predictions"][0][0]["label"] == "red", r.text
