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


def test_diff_names_the_container_image_and_its_digest():
    image = "localhost/deepvre/singleuser-cpu:0.1.0"
    boxed = record(in_container=True, image=image, image_id="e" * 64)
    assert boxed["container"] == {"in_container": True, "image": image, "image_digest": "sha256:" + "e" * 64}
    assert platform.diff(boxed, record())["container"] == [{"image": image, "image_digest": "sha256:" + "e" * 64}, None]
    rebuilt = record(in_container=True, image=image, image_id="f" * 64)
    assert platform.diff(boxed, rebuilt)["container"][1]["image_digest"] == "sha256:" + "f" * 64
    assert not platform.same(platform.diff(boxed, rebuilt))
    assert platform.same(platform.diff(boxed, record(in_container=True, image=image, image_id="e" * 64)))
    # a record from before the container was recorded, and one outside a container: the same
    old = {k: v for k, v in record().items() if k != "container"}
    assert platform.diff(old, record())["container"] is None


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


def test_the_image_and_its_digest_from_the_spawners_variables(tmp_path):
    digest = "sha256:" + "e" * 64
    assert platform.image_digest("localhost/deepvre/singleuser-cpu:0.1.0", "e" * 64) == digest  # podman's bare ID
    assert platform.image_digest("localhost/deepvre/singleuser-cpu:0.1.0", digest) == digest
    assert platform.image_digest(f"ghcr.io/deepvre/singleuser-cpu@{digest}") == digest  # a digest-pinned reference
    for reference, image_id in (("ghcr.io/deepvre/singleuser-cpu:0.1.0", None), (None, None), ("x", "sha256:short"),
                                ("x@sha256:" + "E" * 64, "not-an-id")):
        assert platform.image_digest(reference, image_id) == "unknown", (reference, image_id)
    one = record(in_container=True, image="localhost/deepvre/singleuser-cpu:0.1.0", image_id=digest)
    assert one["container"] == {"in_container": True, "image": "localhost/deepvre/singleuser-cpu:0.1.0",
                                "image_digest": digest}
    # captured from the variables the container spawner and the Kubernetes profiles set
    here = platform.capture(environ={"DEEPVRE_IMAGE": "localhost/deepvre/singleuser-cpu:0.1.0",
                                     "DEEPVRE_IMAGE_ID": digest})
    assert here["container"]["image"] == "localhost/deepvre/singleuser-cpu:0.1.0"
    assert here["container"]["image_digest"] == digest
    assert "image" not in platform.capture(environ={})["container"]
    # the schema of a published version's record takes it
    from deepvre.training.documents import model_document

    doc = model_document("x-model", "1.0.0", "biology", "X", "An x.", [4], "probabilities", ["a", "b"])
    doc["deepvre"]["environment"] = json.loads(json.dumps(here))
    assert metadata.errors(doc) == []


def test_an_images_kept_lock_is_hashed_where_no_source_lock_is(tmp_path):
    """Images install their lock, then keep it in <venv>/share/deepvre/ (images/*/Dockerfile): the
    record hashes that one and names its path; a source install's own lock comes first."""
    from deepvre.checksums import file_sha256

    kept = tmp_path / "opt" / "share" / "deepvre" / "requirements.lock"
    kept.parent.mkdir(parents=True)
    kept.write_text("numpy==2.1.3 --hash=sha256:abc\n")
    source = tmp_path / "requirements.lock"
    assert platform.find_lock((source, kept)) == kept
    source.write_text("numpy==2.2.0\n")
    assert platform.find_lock((source, kept)) == source
    assert platform.find_lock((tmp_path / "none", tmp_path / "neither")) is None
    here = platform.capture(lock_file=kept)
    assert here["lock"] == {"file": str(kept), "sha256": file_sha256(kept)}
    assert platform.IMAGE_LOCK == platform.Path(sys.prefix) / "share" / "deepvre" / "requirements.lock"


def test_a_runs_record_gets_the_data_it_preprocessed(tmp_path):
    """The worker adds, once the notebook has stopped, the manifests of the preprocessing outputs in
    the run folder; ``data_manifest`` when there is one; the record still passes the catalog's
    schema (the panel publishes a run with it)."""
    from deepvre.checksums import file_sha256
    from deepvre.pipelines.manifest import MANIFEST, MARKER
    from deepvre.runs import store
    from deepvre.training.documents import model_document

    run = tmp_path / "run"
    data = run / "biology-output" / "data"
    data.mkdir(parents=True)
    (data / MANIFEST).write_text('{"shards": []}')
    (data / MARKER).write_text("{}")
    (run / "biology-output" / "not-data").mkdir()
    (run / "biology-output" / "not-data" / MANIFEST).write_text("{}")  # no marker: not a pipeline output
    assert platform.record_run_data(run) is None  # no environment.json: nothing written
    store.write_json(str(run / platform.ENVIRONMENT), platform.capture())
    found = platform.record_run_data(run)
    sha = file_sha256(data / MANIFEST)
    assert found["data_manifests"] == {"biology-output/data": sha} and found["data_manifest"] == sha
    assert json.loads((run / platform.ENVIRONMENT).read_text()) == found
    doc = model_document("x-model", "1.0.0", "biology", "X", "An x.", [4], "probabilities", ["a", "b"])
    doc["deepvre"]["environment"] = platform.of_run(run)
    assert metadata.errors(doc) == []
    # two outputs (a base and a fine-tuning set): both listed, and no single data manifest
    other = run / "out" / "b"
    other.mkdir(parents=True)
    (other / MANIFEST).write_text('{"shards": [1]}')
    (other / MARKER).write_text("{}")
    store.write_json(str(run / platform.ENVIRONMENT), platform.capture())
    found = platform.record_run_data(run)
    assert set(found["data_manifests"]) == {"biology-output/data", "out/b"} and found["data_manifest"] is None
