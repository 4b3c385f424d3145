"""The runs page's API (``GET /deepvre/api/compare``) in a real jupyter_server, over real runs:
a sweep started by ``deepvre run --sweep`` and a single run of the same notebook. Several runs
side by side in one call (parameters that differ, final metrics, curves), a whole sweep, and the
refusals: ids that are not plain folder names (no path leaves the runs folder), unknown runs and
sweeps, no credentials."""

import json
import shutil

import pytest
from click.testing import CliRunner

from .conftest import make_notebook

# a cheap "training": per-epoch logs through deepvre's progress file (as the Keras callback writes
# it), and final metrics that depend on the learning rate
SWEEP_BODY = """\
import json, os
from deepvre.training import progress

state = progress.start_fit(None, "fake", epochs)
for epoch in range(epochs):
    state = progress.end_epoch(state, epoch, {"loss": 1 / (1 + lr * 10 * (epoch + 1)), "accuracy": lr * (epoch + 1)})
progress.write(os.environ["DEEPVRE_RUN_DIR"], state)
json.dump({"accuracy": lr * epochs, "loss": 1 / (1 + lr * 10 * epochs), "detail": {"seconds": 1 / lr}},
          open("metrics.json", "w"))
"""


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory):
    """A workspace with ``work/sweep.ipynb`` and its runs: a sweep by ``deepvre run --sweep`` of two
    runs and a lone run (real papermill runs, made once for this module)."""
    from deepvre import runs
    from deepvre.cli.run import run_command  # `deepvre run` (the group would load the hub's commands too)

    root = tmp_path_factory.mktemp("compare-root")
    nb = make_notebook(root / "work" / "sweep.ipynb", parameters="lr = 0.1\nepochs = 3\n", body=SWEEP_BODY)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DEEPVRE_RUNS_DIR", str(root / "runs"))
        for args in (["--sweep", "lr=0.1,0.02"], ["-p", "lr", "0.05", "-p", "epochs", "2"]):
            result = CliRunner().invoke(run_command, [str(nb), *args], catch_exceptions=False)
            assert result.exit_code == 0, result.output
    found = runs.list_runs(str(root / "runs"))
    swept = [r for r in found if r.params.get("sweep")]
    [lone] = [r for r in found if not r.params.get("sweep")]
    return root, swept[0].params["sweep"]["id"], [r.id for r in swept], lone.id


@pytest.fixture
def sweep_runs(made_runs, jp_root_dir):
    """``(sweep id, its run ids, the lone run's id)``, the workspace copied into the server's root."""
    root, *ids = made_runs
    shutil.copytree(root, jp_root_dir, dirs_exist_ok=True)
    return ids


def on_disk(jp_root_dir, run_id, name):
    return json.loads((jp_root_dir / "runs" / run_id / name).read_text())


def test_a_sweep_side_by_side_in_one_call(api, jp_root_dir, sweep_runs):
    sweep, ids, lone = sweep_runs
    status, data = api("GET", "compare", params={"sweep": sweep})
    assert status == 200, data
    assert data["sweep"] == {"id": sweep, "axes": ["lr"]}
    assert [r["id"] for r in data["runs"]] == ids and len(ids) == 2
    assert data["parameters"] == {"differ": ["lr"], "same": {"epochs": 3}}
    assert [r["parameters"]["lr"] for r in data["runs"]] == [0.1, 0.02]
    assert data["metrics"] == [{"name": "accuracy", "better": "higher"}, {"name": "loss", "better": "lower"},
                               {"name": "detail.seconds", "better": "lower"}]
    for row in data["runs"]:
        metrics = on_disk(jp_root_dir, row["id"], "metrics.json")
        assert row["metrics"] == {"accuracy": metrics["accuracy"], "loss": metrics["loss"],
                                  "detail.seconds": metrics["detail"]["seconds"]}
        history = on_disk(jp_root_dir, row["id"], "progress.json")["history"]
        assert row["curves"]["fit"] == "fake"
        assert row["curves"]["series"]["loss"] == [[h["epoch"], h["logs"]["loss"]] for h in history]
        assert [p[0] for p in row["curves"]["series"]["accuracy"]] == [1, 2, 3]
        assert row["state"] == "done" and row["sweep"] == sweep and row["notebook"] == "sweep.ipynb"  # its path lies outside this server's root: the name only
    assert data["curves"] == ["loss", "accuracy"]
    # the runs list names each run's sweep (the panel groups them)
    status, listed = api("GET", "runs")
    assert {r["id"]: r["sweep"] for r in listed["runs"]} == {**dict.fromkeys(ids, sweep), lone: None}


def test_named_runs_side_by_side(api, sweep_runs):
    sweep, ids, lone = sweep_runs
    status, data = api("GET", "compare", params=[("run", ids[0]), ("run", lone), ("run", ids[0])])  # counted once
    assert status == 200, data
    assert [r["id"] for r in data["runs"]] == [ids[0], lone] and data["sweep"] is None
    assert data["parameters"] == {"differ": ["epochs", "lr"], "same": {}}
    assert len(data["runs"][1]["curves"]["series"]["loss"]) == 2


@pytest.mark.parametrize("query", [
    [], [("run", "")], [("run", "..")], [("run", "../../etc")], [("run", "/etc/passwd")], [("run", "a/b")],
    [("run", ".hidden")], [("run", "a\x00b")], [("sweep", "..")], [("sweep", "x/../..")],
    [("run", "a"), ("sweep", "b")],
])
def test_ids_that_are_not_plain_names_are_refused(api, query):
    status, data = api("GET", "compare", params=query)
    assert status == 400, (query, data)
    assert "invalid run id" in data["message"] or "name the runs" in data["message"], data


def test_unknown_runs_and_sweeps(api, sweep_runs):
    sweep, ids, _ = sweep_runs
    status, data = api("GET", "compare", params=[("run", ids[0]), ("run", "no-such-run")])
    assert status == 404 and "no run 'no-such-run'" in data["message"], data
    status, data = api("GET", "compare", params={"sweep": ids[0]})  # a run's id is no sweep
    assert status == 404 and f"no runs of sweep {ids[0]!r}" in data["message"], data
    status, data = api("GET", "compare", params=[("run", f"r{i}") for i in range(25)])
    assert status == 400 and "at most 24" in data["message"]


def test_no_credentials_no_runs(api, sweep_runs):
    status, _ = api("GET", "compare", params={"sweep": sweep_runs[0]}, headers={"Authorization": ""})
    assert status == 403
