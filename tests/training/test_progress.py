"""``progress.json``: what a run's fits report after every epoch (the run page's epochs, curves and estimate)."""

import json

import numpy as np

from deepvre.training import checkpoints, progress

from .conftest import tiny_classifier


def _data():
    rng = np.random.default_rng(2)
    x = rng.random((24, 16, 16, 3)).astype("float32")
    return x, (x.mean(axis=(1, 2, 3)) > 0.5).astype("int64")


def test_every_fit_under_a_run_reports_its_epochs(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setenv("DEEPVRE_RUN_DIR", str(run_dir))
    x, y = _data()
    model = tiny_classifier()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
                        callbacks=checkpoints.resume_callbacks(tmp_path / "out", "first"))
    data = json.loads((run_dir / "progress.json").read_text())
    assert (data["fit"], data["fits"], data["epoch"], data["epochs"]) == ("first", 1, 3, 3)
    assert [h["epoch"] for h in data["history"]] == [1, 2, 3]
    # the curves are Keras' own numbers, per epoch
    np.testing.assert_allclose([h["logs"]["loss"] for h in data["history"]], history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([h["logs"]["val_accuracy"] for h in data["history"]], history.history["val_accuracy"])
    assert all(h["seconds"] >= 0 for h in data["history"]) and data["updated"] >= data["fit_started"]
    assert progress.remaining_seconds(data) == 0

    # a second fit in the same run starts its own curves and counts as the run's second
    model.fit(x, y, epochs=2, verbose=0, callbacks=checkpoints.resume_callbacks(tmp_path / "out", "second"))
    data = progress.read(str(run_dir))
    assert (data["fit"], data["fits"], data["epoch"], data["epochs"]) == ("second", 2, 2, 2)
    assert len(data["history"]) == 2


def test_outside_a_run_nothing_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPVRE_RUN_DIR", raising=False)
    callbacks = checkpoints.resume_callbacks(tmp_path, "plain")
    assert [type(c).__name__ for c in callbacks] == ["SaveModel", "Checkpoint"]
    assert progress.callbacks("plain") == []


def test_a_fit_without_checkpoints_reports_too(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPVRE_RUN_DIR", str(tmp_path))
    x, y = _data()
    model = tiny_classifier()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0, callbacks=progress.callbacks("seed-1"))
    data = progress.read(str(tmp_path))
    assert (data["fit"], data["epoch"], data["epochs"], len(data["history"])) == ("seed-1", 2, 2, 2)


def test_the_estimate_is_the_mean_epoch_time_times_the_epochs_left():
    state = progress.start_fit(None, "fit", 10, now=100.0)
    assert progress.remaining_seconds(state) is None  # no epoch yet: no estimate
    state = progress.end_epoch(state, 0, {"loss": np.float32(0.5), "lr": "x"}, now=110.0)
    state = progress.end_epoch(state, 1, {"loss": float("nan")}, now=130.0)
    assert [h["seconds"] for h in state["history"]] == [10.0, 20.0]
    assert progress.remaining_seconds(state) == 8 * 15.0
    # numbers stay numbers; what is not one (or NaN) is null, so the file stays JSON
    assert state["history"][0]["logs"] == {"loss": 0.5, "lr": None}
    assert state["history"][1]["logs"] == {"loss": None}
    assert progress.start_fit(state, "next", 3, now=140.0)["fits"] == 2


def test_a_missing_or_damaged_file_reads_as_none(tmp_path):
    assert progress.read(str(tmp_path)) is None
    (tmp_path / "progress.json").write_text("{not json")
    assert progress.read(str(tmp_path)) is None
