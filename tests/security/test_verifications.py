"""Attacks on the verification records (issue 18): a real JupyterHub 5.5 with the marketplace as its
service; alice owns models, bob is a second hub user, and a process with no token is anonymous.

A record is the service's word: whoever may see a version may add one (as themselves), nobody
chooses its verifier, time or signature, nobody changes or deletes one, and a private model's
records are its owner's alone.
"""

import json
import os
import subprocess
import sys

import pytest
import requests

from deepvre.runs import platform
from tests.hub.hubprocess import free_port, wait_for
from tests.market.conftest import make_document, stop_process
from tests.market.fuzz_hooks import MODEL, tar_of
from tests.market.markethub import market_answers, market_hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with market_hub(tmp_path_factory.mktemp("sec-verify")) as hub:
        for name, visibility in (("alice-private", "private"), ("alice-public", "public")):
            body = tar_of({"metadata.json": json.dumps(make_document(name, visibility=visibility)).encode(),
                           "model.keras": MODEL, "training.ipynb": b"{}"})
            r = requests.post(hub["market_url"] + "api/models", data=body, timeout=120, headers={
                "Content-Type": "application/x-tar", "Authorization": f"token {hub['tokens']['alice']}"})
            assert r.status_code == 201, r.text
        yield hub


def records_url(hub, name):
    return f"{hub['market_url']}api/models/{name}/versions/1.0.0/verifications"


def as_user(hub, who):
    return {"Authorization": f"token {hub['tokens'][who]}"} if who else {}


CLAIM = {"result": "verified", "reason": "", "environment": platform.capture(),
         "metrics": {"accuracy": {"published": 1.0, "reproduced": 1.0, "difference": 0.0, "tolerance": 0.02}}}


def test_a_second_user_cannot_see_or_add_records_of_a_private_model(hub):
    url = records_url(hub, "alice-private")
    made = requests.post(url, json=CLAIM, headers=as_user(hub, "alice"), timeout=30)
    assert made.status_code == 201 and made.json()["verifier"] == "alice" and made.json()["valid"], made.text
    for method, kwargs in (("GET", {}), ("POST", {"json": CLAIM})):
        r = requests.request(method, url, headers=as_user(hub, "bob"), timeout=30, **kwargs)
        assert r.status_code == 404, r.text  # the same as for a model that does not exist
        assert r.json()["message"] == "no model named 'alice-private'"  # nothing of its records or owner
        r = requests.request(method, url, timeout=30, **kwargs)  # anonymous
        assert r.status_code in (401, 403), r.text
    escaped = f"{hub['market_url']}api/models/alice%2Dprivate/versions/1.0.0/verifications"
    assert requests.get(escaped, headers=as_user(hub, "bob"), timeout=30).status_code == 404
    assert len(requests.get(url, headers=as_user(hub, "alice"), timeout=30).json()) == 1


def test_a_forged_record_is_refused(hub):
    url = records_url(hub, "alice-public")
    for forged in ({"verifier": "alice"}, {"signature": "ab" * 64}, {"time": "2020-01-01T00:00:00Z"},
                   {"valid": True}, {"id": 1}, {"name": "alice-private"}):
        r = requests.post(url, json={**CLAIM, **forged}, headers=as_user(hub, "bob"), timeout=30)
        assert r.status_code == 400 and list(forged)[0] in r.text, r.text
    r = requests.post(url, json={**CLAIM, "result": "verified!"}, headers=as_user(hub, "bob"), timeout=30)
    assert r.status_code == 400
    assert requests.get(url, headers=as_user(hub, "bob"), timeout=30).json() == []
    made = requests.post(url, json=CLAIM, headers=as_user(hub, "bob"), timeout=30).json()
    assert made["verifier"] == "bob" and made["valid"] and made["name"] == "alice-public"


def test_records_are_never_changed_or_deleted(hub):
    url = records_url(hub, "alice-public")
    made = requests.post(url, json={**CLAIM, "result": "drifted"}, headers=as_user(hub, "bob"), timeout=30).json()
    for who in ("alice", "bob", "root"):
        for method in ("PUT", "PATCH", "DELETE"):
            for target in (url, f"{url}/{made['id']}"):
                r = requests.request(method, target, json=CLAIM, headers=as_user(hub, who), timeout=30)
                assert r.status_code in (404, 405), (method, target, r.status_code)
    after = requests.get(url, headers=as_user(hub, "alice"), timeout=30).json()
    assert [r for r in after if r["id"] == made["id"]] == [made]
    # the version is unchanged, and the service's key stays its own
    entry = requests.get(f"{hub['market_url']}api/models/alice-public/versions/1.0.0", headers=as_user(hub, "bob"),
                         timeout=30).json()
    assert entry["metadata"]["deepvre"]["metrics"] == {"accuracy": 1.0}
    key = hub["state"] / "marketplace" / "verification-key"
    assert key.is_file() and key.stat().st_mode & 0o077 == 0


def test_the_standalone_service_refuses_records_to_other_local_processes(tmp_path):
    port = free_port()
    log = open(tmp_path / "service.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepvre.market", "--standalone", "--port", str(port),
         "--database-url", f"sqlite:///{tmp_path}/m.sqlite", "--store-url", str(tmp_path / "s"),
         "--token-file", str(tmp_path / "token")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ, DEEPVRE_MARKET_DIR=str(tmp_path)),
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: market_answers(proc, url, tmp_path / "service.log", "the standalone marketplace"), 60,
                 "the standalone marketplace")
        token = (tmp_path / "token").read_text().strip()
        body = tar_of({"metadata.json": json.dumps(make_document("mine", visibility="private")).encode(),
                       "model.keras": MODEL, "training.ipynb": b"{}"})
        assert requests.post(url + "api/models", data=body, headers={"Authorization": f"token {token}"},
                             timeout=120).status_code == 201
        target = url + "api/models/mine/versions/1.0.0/verifications"
        assert requests.post(target, json=CLAIM, headers={"Authorization": f"token {token}"}, timeout=30).status_code == 201
        for headers in ({}, {"Authorization": "token guess"}):
            assert requests.get(target, headers=headers, timeout=30).status_code == 401
            assert requests.post(target, json=CLAIM, headers=headers, timeout=30).status_code == 401
        assert len(requests.get(target, headers={"Authorization": f"token {token}"}, timeout=30).json()) == 1
    finally:
        stop_process(proc, log)


def test_a_malformed_environment_is_refused(hub):
    url = records_url(hub, "alice-public")
    for environment in ({"lock": {"sha256": "not a hash"}}, {"python": "3.12"}, {"typo": 1}, ["python"]):
        r = requests.post(url, json={**CLAIM, "environment": environment}, headers=as_user(hub, "bob"), timeout=30)
        assert r.status_code == 400 and "environment" in r.text, r.text
