"""The environment record of runs and published versions (deepvre.runs.platform)."""

import json
import sys

from deepvre.market import metadata
from deepvre.runs import platform


def record(**changes):
    values = {"packages": {"NumPy": "2.1.3", "keras": "3.6.0", "Jupyter_Server": "2.14.2"}, "python": ("CPython", "3.12.3"),
              "system": ("Linux", "6.8.0", "x86_64"), "lock_sha256": "a" * 64, "gpus": [("NVIDIA H200", "570.1")],
              "data_manifest": "b" * 64}
    values.update(changes)
    return platform.describe(**values)


def test_describe_is_pure_and_canonicalizes_names():
    one = record()
    assert one == record()
    assert one["packages"] == {"jupyter-server": "2.14.2", "keras": "3.6.0", "numpy": "2.1.3"}
    assert one["lock"] == {"file": "requirements.lock", "sha256": "a" * 64}
    assert one["gpus"] == [{"name": "NVIDIA H200", "driver": "570.1"}]
    assert one["container"] == {"in_container": False, "image_digest": "unknown"}
    unknown = record(lock_sha256=None, lock_why="no lock here")
    assert unknown["lock"] == {"sha256": "unknown", "why": "no lock here"}


def test_diff_names_packages_python_and_lock():
    old = record()
    new = record(packages={"numpy": "2.2.0", "scipy": "1.14.1"}, python=("CPython", "3.13.0"),
                 lock_sha256="c" * 64)
    found = platform.diff(old, new)
    assert found["packages"] == {"added": {"scipy": "1.14.1"}, "removed": {"jupyter-server": "2.14.2", "keras": "3.6.0"},
                                 "changed": {"numpy": ["2.1.3", "2.2.0"]}}
    assert found["python"] == ["3.12.3", "3.13.0"]
    assert found["lock"] == ["a" * 64, "c" * 64]
    assert found["platform"] is None and found["gpus"] is None
    assert not platform.same(found)
    assert platform.same(platform.diff(old, record()))
    assert platform.diff(old, record(gpus=[]))["gpus"] == [[{"name": "NVIDIA H200", "driver": "570.1"}], []]


def test_capture_here(tmp_path):
    here = platform.capture("d" * 64)
    assert here["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert here["packages"]["sqlalchemy"]  # from this venv
    assert here["data_manifest"] == "d" * 64
    if platform.LOCK_FILE.is_file():  # a source checkout
        from deepvre.checksums import file_sha256

        assert here["lock"]["sha256"] == file_sha256(platform.LOCK_FILE)
    missing = platform.capture(lock_file=tmp_path / "requirements.lock")
    assert missing["lock"]["sha256"] == "unknown" and "requirements.lock" in missing["lock"]["why"]
    # what a published version carries passes the catalog's schema, and a malformed one does not
    from deepvre.training.documents import model_document

    doc = model_document("x-model", "1.0.0", "biology", "X", "An x.", [4], "probabilities", ["a", "b"])
    doc["deepvre"]["environment"] = json.loads(json.dumps(here))
    assert metadata.errors(doc) == []
    doc["deepvre"]["environment"]["lock"]["sha256"] = "not a hash"
    doc["deepvre"]["environment"]["typo"] = 1
    problems = metadata.errors(doc)
    assert any("environment.lock.sha256" in p for p in problems) and any("typo" in p for p in problems), problems


def test_gpus_from_nvidia_smi(tmp_path, monkeypatch):
    """``nvidia-smi``'s CSV, read through a real process (no GPU here: a script in its place on PATH);
    a failing one, or none, is no GPU."""
    tool = tmp_path / "nvidia-smi"
    tool.write_text('#!/bin/sh\n[ "$1" = "--query-gpu=name,driver_version" ] || exit 9\n'
                    'echo "NVIDIA H200, 570.124.06"\necho "NVIDIA H200, 570.124.06"\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert platform.nvidia_gpus() == [("NVIDIA H200", "570.124.06")] * 2
    assert platform.capture()["gpus"][0] == {"name": "NVIDIA H200", "driver": "570.124.06"}
    tool.write_text("#!/bin/sh\nexit 9\n")
    assert platform.nvidia_gpus() == []
    monkeypatch.setenv("PATH", "/nonexistent")
    assert platform.nvidia_gpus() == []


def test_a_runs_environment_is_its_own_file_else_this_process(tmp_path):
    recorded = record()
    (tmp_path / platform.ENVIRONMENT).write_text(json.dumps(recorded))
    assert platform.of_run(str(tmp_path)) == recorded
    (tmp_path / platform.ENVIRONMENT).write_text("{not json")
    assert platform.of_run(str(tmp_path))["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert platform.of_run(str(tmp_path / "missing"))["packages"]
