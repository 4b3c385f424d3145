"""Attacks on the batch runs' admission (``/hub/api/deepvre/runs``, deepvre_hub.run_admission) on a
real local hub as root: bob, from his own server with its own token and knowing alice's run id
and worker pid, cannot end her run, read it, take its GPUs or record a run in her name; an
anonymous local process and a token without ``users:activity`` get nothing; nobody fills the queue
with waiting runs (at most 10 each)."""

import json

import pytest
import requests

from deepvre_hub import usage
from tests.hub.hubprocess import run_code, wait_for
from tests.hub.test_run_admission_hub import start_run, start_runs_hub, status
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process, names = start_runs_hub(tmp_path_factory.mktemp("runs-attack-hub"))
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        users = {role: (name, *process.approved_user(admin, name, "attack-runs-pw")) for role, name in names.items()}
        yield process, users


def as_server(process, user, token, calls):
    """``calls``: ``[(method, path, body)]`` made from a kernel of ``user``'s server with the
    server's own token (a body's ``"$PID"``: the kernel's own pid); returns ``[(status, answer text)]``."""
    code = f"""
import json, os, requests
out = []
for method, path, body in {calls!r}:
    body = body and {{k: os.getpid() if v == '$PID' else v for k, v in body.items()}}
    r = requests.request(method, os.environ['JUPYTERHUB_API_URL'] + '/deepvre/runs' + path,
                         headers={{'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}},
                         json=body, timeout=30)
    out.append((r.status_code, r.text))
print(json.dumps(out))
"""
    return json.loads(run_code(process.server_url(user), token, code).strip().splitlines()[-1])


def test_another_user_cannot_end_take_or_forge_a_run(hub):
    process, users = hub
    (alice, _, alice_t), (bob, _, bob_t) = users["alice"], users["bob"]
    for name, token in ((alice, alice_t), (bob, bob_t)):
        assert process.spawn(token, name, profile="cpu").status_code in (201, 202)
    run = start_run(process, alice, alice_t, 45, "a")
    held = wait_for(lambda: status(run).get("state") == "running" and status(run), 90, "alice's run admitted")
    assert held["gpu_ids"] == ["0"]
    run_id, pid = run.name, held["pid"]

    answers = as_server(process, bob, bob_t, [
        ("DELETE", f"/{run_id}", {"state": "done"}),  # end alice's run: her GPU would be free
        ("GET", f"/{run_id}", None),  # read it
        ("POST", "", {"run": run_id, "profile": "gpu-1", "pid": pid}),  # claim her worker as his
        ("POST", "", {"run": "forged", "profile": "gpu-1", "pid": pid, "user": alice}),  # in her name
    ])
    assert [a[0] for a in answers] == [404, 404, 403, 403], answers
    assert "not a running process of" in answers[2][1]
    # a "user" field is ignored: bob's own run is bob's, and waits behind alice's like anyone's
    own = as_server(process, bob, bob_t, [("POST", "", {"run": "own", "profile": "gpu-1", "pid": "$PID",
                                                         "user": alice}),
                                          ("DELETE", "/own", {"state": "cancelled"})])
    assert [a[0] for a in own] == [202, 204], own
    assert json.loads(own[0][1])["place"] == 1
    log = process.log_text()
    assert f"{bob}/run:own waits for 1 GPU(s)" in log
    # nor can he fill the queue: at most 10 of his runs wait at once
    flood = as_server(process, bob, bob_t, [("POST", "", {"run": f"flood{i}", "profile": "gpu-1", "pid": "$PID"})
                                            for i in range(11)]
                      + [("DELETE", f"/flood{i}", {"state": "cancelled"}) for i in range(10)])
    assert [a[0] for a in flood] == [202] * 10 + [429] + [204] * 10, flood
    assert "at most 10" in flood[10][1]
    assert f"{alice}/run:forged" not in log and f"{alice}/run:own" not in log

    # an anonymous local process, a forged token and a token without users:activity get nothing
    for headers in ({}, {"Authorization": "token not-a-token"}):
        for method, path in (("POST", ""), ("DELETE", f"/{run_id}"), ("GET", f"/{run_id}")):
            r = requests.request(method, f"{process.url}/hub/api/deepvre/runs{path}", headers=headers,
                                 json={"run": run_id, "profile": "gpu-1", "pid": pid}, timeout=30)
            assert r.status_code == 403, (method, path, headers, r.status_code, r.text)
    r = process.api(bob_t, "POST", f"/users/{bob}/tokens", json={"scopes": [f"read:servers!user={bob}"]})
    assert r.status_code == 201, r.text
    narrow = r.json()["token"]
    r = requests.post(f"{process.url}/hub/api/deepvre/runs", headers={"Authorization": f"token {narrow}"},
                      json={"run": "narrow", "profile": "gpu-1", "pid": pid}, timeout=30)
    assert r.status_code == 403 and "users:activity" in r.json()["message"], r.text

    # alice's run kept its GPU throughout and ends as done, in her name
    assert status(run)["state"] == "running"
    wait_for(lambda: status(run).get("state") == "done", 120, "alice's run's end")
    book = usage.UsageBook(usage.default_url(process.state_dir))
    rows = wait_for(lambda: [r for r in book.rows(users=[alice, bob]) if r["kind"] == "run" and r["end"]], 30,
                    "the closed row")
    assert [(r["user"], r["server"], r["reason"]) for r in rows] == [(alice, run_id, "done")]
    for name, token in ((alice, alice_t), (bob, bob_t)):
        process.stop_server(token, name)
