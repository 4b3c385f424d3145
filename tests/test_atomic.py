import json
import os

import pytest

from deepvre import atomic


def test_write_json_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "status.json"
    atomic.write_json(path, {"state": "queued"})
    atomic.write_json(path, {"state": "running"}, indent=1)
    assert json.loads(path.read_text()) == {"state": "running"}
    assert os.listdir(tmp_path) == ["status.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError), atomic.replacing(path, suffix=".keras") as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise RuntimeError("killed")
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["model.keras"]


def test_leftovers_are_the_temp_files_of_one_target(tmp_path):
    target = tmp_path / "run.keras"
    mine, other = atomic.temp_beside(target, ".keras"), atomic.temp_beside(tmp_path / "run2.keras", ".keras")
    for path in (mine, other):
        open(path, "w").close()
    assert atomic.leftovers(target) == [mine]
