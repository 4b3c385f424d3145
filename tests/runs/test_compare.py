"""Runs side by side (deepvre.runs.compare): differing parameters, flattened metrics with their
better direction, curves from progress.json, and a sweep's runs."""

import json

import pytest

from deepvre.runs import compare, store
from deepvre.training import progress


def make_run(runs_dir, notebook, parameters, metrics=None, epochs=(), sweep=None):
    """A run folder as the runner leaves it: params.json (with ``sweep``), metrics.json and the
    progress.json the training callback writes (``epochs``: one logs dict per epoch)."""
    run = store.create_run(str(runs_dir), str(notebook), parameters, "local")
    if sweep:
        store.write_json(run.file(store.PARAMS), {**run.params, "sweep": sweep})
    if metrics is not None:
        (runs_dir / run.id / "metrics.json").write_text(json.dumps(metrics))
    if epochs:
        state = progress.start_fit(None, "tiny", len(epochs), now=100.0)
        for i, logs in enumerate(epochs):
            state = progress.end_epoch(state, i, logs, now=101.0 + i)
        progress.write(run.path, state)
    return run


@pytest.fixture
def notebook(tmp_path):
    path = tmp_path / "train.ipynb"
    path.write_text("{}")
    return path


def test_metrics_flattened_to_finite_numbers():
    metrics = {"accuracy": 0.9, "transfer": {"accuracy": 0.8, "seeds": 5, "gain": float("nan")},
               "curve": [1, 2], "label": "x", "ok": True}
    assert compare.scalar_metrics(metrics) == {"accuracy": 0.9, "transfer.accuracy": 0.8, "transfer.seeds": 5}
    assert compare.scalar_metrics(None) == {}


@pytest.mark.parametrize(("name", "direction"), [
    ("accuracy", "higher"), ("val_loss", "lower"), ("transfer.mae", "lower"), ("train_seconds", "lower"),
    ("f1", "higher"), ("loss.accuracy", "higher"),  # the last part decides
])
def test_better_direction_from_the_name(name, direction):
    assert compare.better(name) == direction


def test_comparison_side_by_side(tmp_path, notebook):
    runs_dir = tmp_path / "runs"
    a = make_run(runs_dir, notebook, {"lr": 0.1, "epochs": 2, "label": "x"}, {"accuracy": 0.7, "loss": 0.9},
                 [{"loss": 1.2, "accuracy": 0.5, "learning_rate": 0.1}, {"loss": 0.9, "accuracy": 0.7}])
    b = make_run(runs_dir, notebook, {"lr": 0.01, "epochs": 2, "label": "x", "extra": 1},
                 {"accuracy": 0.8, "val": {"loss": 0.5}}, [{"loss": 1.0, "val_loss": float("inf")}])
    c = make_run(runs_dir, notebook, {"lr": 0.01, "epochs": 2, "label": "x"})  # no metrics, no epochs
    result = compare.comparison([a, b, c])
    assert [r["id"] for r in result["runs"]] == [a.id, b.id, c.id]
    assert result["parameters"] == {"differ": ["lr", "extra"], "same": {"epochs": 2, "label": "x"}}
    assert result["metrics"] == [{"name": "accuracy", "better": "higher"}, {"name": "loss", "better": "lower"},
                                 {"name": "val.loss", "better": "lower"}]
    ra, rb, rc = result["runs"]
    assert ra["curves"] == {"fit": "tiny", "fits": 1,
                            "series": {"loss": [[1, 1.2], [2, 0.9]], "accuracy": [[1, 0.5], [2, 0.7]]}}
    assert rb["curves"]["series"] == {"loss": [[1, 1.0]]}  # inf is no point (progress writes None)
    assert rc["curves"] is None and rc["metrics"] == {} and rc["state"] == "queued"
    assert result["curves"] == ["loss", "accuracy"]
    assert ra["notebook"] == str(notebook) and ra["sweep"] is None


def test_sweep_runs_are_those_with_its_id(tmp_path, notebook):
    runs_dir = tmp_path / "runs"
    sweep = {"id": "sweep-train-1", "axes": ["lr"]}
    first = make_run(runs_dir, notebook, {"lr": 0.1}, sweep=sweep)
    make_run(runs_dir, notebook, {"lr": 0.1})
    second = make_run(runs_dir, notebook, {"lr": 0.2}, sweep=sweep)
    make_run(runs_dir, notebook, {"lr": 0.3}, sweep={"id": "sweep-train-2", "axes": ["lr"]})
    found = compare.sweep_runs(store.scan(str(runs_dir)), "sweep-train-1")
    assert {r.id for r in found} == {first.id, second.id}
    assert compare.run_row(found[0])["sweep"] == "sweep-train-1"


def test_too_many_runs_is_refused(tmp_path, notebook, monkeypatch):
    monkeypatch.setattr(compare, "MAX_RUNS", 1)
    runs = [make_run(tmp_path / "runs", notebook, {}) for _ in range(2)]
    with pytest.raises(ValueError, match="at most 1 runs"):
        compare.comparison(runs)
