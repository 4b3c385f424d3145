"""The hostile review of the hub's MLflow service (issue 19 item 4), on a real local hub.

The service makes every hub user an MLflow account of the same name and keeps one MLflow admin of
its own, ``deepvre-admin`` (:data:`deepvre_hub.mlflow_proxy.ADMIN`). ``deepvre-admin`` is a valid hub
user name in every mode; without the service's refusal of that name, a user who signed up with it
would get the service's ``update-password`` of the existing admin account (its password set to the
one the service derives for that user): MLflow's admin over every user's experiments, runs and
artifacts, and the service's own admin login broken (nobody new would get an account). Held: the
service refuses that name (found here and in the service's own review at the same time; this test
keeps it); the admin and every other account stay as they were.
"""

import pytest

from tests.hub.mlflowhub import PASSWORD, call, experiments, log_directly, mlflow_hub

pytestmark = [pytest.mark.hub, pytest.mark.root]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with mlflow_hub(tmp_path_factory.mktemp("mlflow-review"), "mr") as (process, users):
        alice, _, alice_t = users["alice"]
        eid, rid = log_directly(process, alice_t, f"{alice}/private")
        yield process, users, eid, rid


def test_a_user_named_like_the_services_mlflow_admin_is_not_its_admin(hub):
    from deepvre_hub.mlflow_proxy import ADMIN

    process, users, eid, rid = hub
    alice = users["alice"][0]
    admin = process.login(process.admin, process.admin_password)
    _, token = process.approved_user(admin, ADMIN, PASSWORD)  # a hub user may have this name
    r = call(process, token, "GET", "api/2.0/mlflow/users/current")
    assert r.status_code == 403 and '"is_admin": true' not in r.text.replace("True", "true"), r.text[:300]
    r = call(process, token, "POST", "api/2.0/mlflow/experiments/search", json={"max_results": 1000})
    assert r.status_code == 403 and alice not in r.text, r.text[:300]
    for path, kwargs in (("api/2.0/mlflow/runs/get", {"params": {"run_id": rid}}),
                         ("get-artifact", {"params": {"path": "secret.txt", "run_uuid": rid}})):
        r = call(process, token, "GET", path, **kwargs)
        assert r.status_code == 403 and "alice's secret" not in r.text and rid not in r.text, (path, r.text[:300])
    # the service's own admin still works: a user it has not seen yet gets an account
    _, carol_t = process.approved_user(admin, f"mr{rid[:6]}carol", PASSWORD)
    assert experiments(process, carol_t) is not None
    assert not [n for n in experiments(process, carol_t) if n.startswith(alice)]
    # and alice still has all of hers
    assert f"{alice}/private" in experiments(process, users["alice"][2])
    assert call(process, users["alice"][2], "GET", "get-artifact",
                params={"path": "secret.txt", "run_uuid": rid}).text == "alice's secret"


def test_nobody_squats_another_users_experiment_names(hub):
    """Was an open hole: ``deepvre run`` logs to the experiment ``<user>/<notebook>``, found by name.
    bob made ``alice/train`` before alice's first run and gave her EDIT on it (his own experiment,
    his to share), so her runs' parameters, metrics and artifacts went into his experiment, where he
    reads them all (or, without the grant, her logging failed). Now a name with a ``/`` must begin
    with the caller's own name (create and rename, REST and the UI's ajax API)."""
    process, users, _, _ = hub
    (alice, _, alice_t), (bob, _, bob_t) = users["alice"], users["bob"]
    squats = [("api/2.0/mlflow/experiments/create", {"name": f"{alice}/train"}),
              ("ajax-api/2.0/mlflow/experiments/create", {"name": f"{alice}/train"}),
              ("api/2.0/mlflow/experiments/create", {"name": f"{alice}/train", "artifact_location": ""}),
              ("api/2.0/mlflow/experiments/create", {"name": f"/{alice}/x"})]
    for path, body in squats:
        r = call(process, bob_t, "POST", path, json=body)
        if r.status_code == 200:  # the squat worked: share it with alice, as an attacker would
            call(process, bob_t, "POST", "api/2.0/mlflow/experiments/permissions/create",
                 json={"experiment_id": r.json()["experiment_id"], "username": alice, "permission": "EDIT"})
        assert r.status_code == 403 and "own name" in r.text, (path, body, r.status_code, r.text[:300])
    r = call(process, bob_t, "POST", "api/2.0/mlflow/experiments/create", json={"name": f"{bob}/mine"})
    assert r.status_code == 200, r.text[:300]
    mine = r.json()["experiment_id"]
    for path in ("api/2.0/mlflow/experiments/update", "ajax-api/2.0/mlflow/experiments/update"):
        r = call(process, bob_t, "POST", path, json={"experiment_id": mine, "new_name": f"{alice}/train"})
        assert r.status_code == 403, (path, r.status_code, r.text[:300])
    assert call(process, bob_t, "POST", "api/2.0/mlflow/experiments/create", json={"name": "no-slash"}).status_code == 200

    # alice's run logs into an experiment of her own (found by name as deepvre.runs.tracking does), which
    # bob cannot read
    name = f"{alice}/train"
    r = call(process, alice_t, "GET", "api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
    assert r.status_code == 404, r.text[:300]  # nobody made it before her
    r = call(process, alice_t, "POST", "api/2.0/mlflow/experiments/create", json={"name": name})
    assert r.status_code == 200, r.text[:300]
    eid = r.json()["experiment_id"]
    r = call(process, alice_t, "POST", "api/2.0/mlflow/runs/create", json={"experiment_id": eid, "run_name": "r"})
    run_id = r.json()["run"]["info"]["run_id"]
    r = call(process, alice_t, "POST", "api/2.0/mlflow/runs/log-batch",
             json={"run_id": run_id, "params": [{"key": "secret_param", "value": "42"}]})
    assert r.status_code == 200, r.text[:300]
    r = call(process, bob_t, "GET", "api/2.0/mlflow/runs/get", params={"run_id": run_id})
    assert r.status_code in (403, 404) and "secret_param" not in r.text, r.text[:300]
    r = call(process, bob_t, "POST", "api/2.0/mlflow/runs/search", json={"experiment_ids": [eid]})
    assert "secret_param" not in r.text, r.text[:300]
