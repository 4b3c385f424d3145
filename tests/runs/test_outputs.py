"""What a run left behind: its trained models (not pulled ones, not checkpoints), its log's tail, the cell executing."""

import json

import pytest

from deepvre.errors import Conflict, NotFound
from deepvre.runs import outputs


def test_models_are_model_keras_files_the_run_wrote(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"k")
    (tmp_path / "bio-output" / "base-model").mkdir(parents=True)
    (tmp_path / "bio-output" / "model.keras").write_bytes(b"kk")
    (tmp_path / "bio-output" / "metrics.json").write_text("{}")
    (tmp_path / "bio-output" / "published.json").write_text("null")
    (tmp_path / "bio-output" / "transfer-s0.keras").write_bytes(b"checkpoint")
    (tmp_path / "bio-output" / "base-model" / "model.keras").write_bytes(b"pulled")
    (tmp_path / "bio-output" / "base-model" / "metadata.json").write_text("{}")
    (tmp_path / "bio-output" / "x-backup").mkdir()
    (tmp_path / "bio-output" / "x-backup" / "model.keras").write_bytes(b"backup")
    (tmp_path / "a" / "b" / "c" / "d").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "d" / "model.keras").write_bytes(b"too deep")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "model.keras").write_bytes(b"through a link")
    found = outputs.find_models(tmp_path)
    assert [(m["folder"], m["files"], m["size"], m["published"]) for m in found] == [
        (".", ["model.keras"], 1, None),
        ("bio-output", ["model.keras", "metrics.json", "published.json"], 2, None),
        ("elsewhere", ["model.keras"], 14, None),
    ]


def test_choosing_never_guesses_between_several(tmp_path):
    with pytest.raises(NotFound, match="run r wrote no model.keras"):
        outputs.choose_model(tmp_path, "r")
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "model.keras").write_bytes(b"1")
    assert outputs.choose_model(tmp_path, "r") == str((tmp_path / "one").resolve())
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "model.keras").write_bytes(b"2")
    with pytest.raises(Conflict, match="run r wrote 2 models, in one, two: choose one"):
        outputs.choose_model(tmp_path, "r")
    assert outputs.choose_model(tmp_path, "r", "two") == str((tmp_path / "two").resolve())
    for bad in ("..", "../two", "/etc", "three"):
        with pytest.raises(NotFound, match="no model in"):
            outputs.choose_model(tmp_path, "r", bad)


def test_log_tail_keeps_the_last_whole_lines(tmp_path):
    log = tmp_path / "run.log"
    assert outputs.log_tail(log) == ""
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    assert outputs.log_tail(log, lines=3) == "line 4997\nline 4998\nline 4999"
    tail = outputs.log_tail(log, lines=10_000, max_bytes=100)
    assert tail.endswith("line 4999") and all(line.startswith("line ") for line in tail.splitlines())


def test_the_executing_cell_is_named_by_its_first_lines(tmp_path):
    nb = tmp_path / "input.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["\n", "model.fit(x)\n", "print(1)"]}]}))
    assert outputs.executing_cell(nb, 0) == {"index": 0, "source": "model.fit(x)\nprint(1)"}
    assert outputs.executing_cell(nb, 5) is None and outputs.executing_cell(nb, None) is None
