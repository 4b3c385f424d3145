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
