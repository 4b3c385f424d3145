"""Run folders: safe ids, never overwritten, default location."""

import os

import pytest

from deepvre import runs
from deepvre.runs import store
from tests.runs.conftest import read_text


@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "/etc", "", ".hidden", "a..b", "x" * 200, "a\nb"])
def test_unsafe_ids_are_refused(bad, runs_dir):
    with pytest.raises(ValueError, match="invalid run id"):
        runs.get(bad, runs_dir)


def test_missing_run_is_not_found(runs_dir):
    with pytest.raises(runs.RunNotFound):
        runs.get("nothing-here", runs_dir)


def test_new_ids_are_safe_and_fresh():
    ids = {store.new_run_id("../../weird name!.ipynb") for _ in range(50)}
    assert len(ids) == 50
    for run_id in ids:
        assert store.check_run_id(run_id) and run_id.startswith("weird-name-")


def test_create_run_never_reuses_a_folder(runs_dir, notebook, monkeypatch):
    first = store.create_run(runs_dir, notebook("metrics"), {}, "local")
    monkeypatch.setattr(store, "new_run_id", lambda nb: first.id)
    with open(first.file("output.ipynb"), "w") as f:
        f.write("precious")
    with pytest.raises(FileExistsError):
        store.create_run(runs_dir, notebook("metrics"), {}, "local")
    assert read_text(first.file("output.ipynb")) == "precious"


def test_default_runs_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPVRE_RUNS_DIR", str(tmp_path / "r"))
    assert store.default_runs_dir() == str(tmp_path / "r")
    monkeypatch.delenv("DEEPVRE_RUNS_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store.default_runs_dir() == os.path.join(str(tmp_path), "runs")


def test_show_refuses_path_tricks_on_the_cli(cli, runs_dir):
    code, out, _ = cli("runs", "show", "../../etc")
    assert code != 0 and "invalid run id" in out
