"""The catalog engine: validation, permissions, immutability, integrity, search."""

import json
import multiprocessing
from pathlib import Path

import pytest

from deepvre.market import metadata
from deepvre.market.catalog import Caller, Catalog, Conflict, Forbidden, NotFound
from deepvre.market.store import IntegrityError, UploadTooLarge

from .conftest import artifact_files, make_document

# The index tests run on every backend: SQLite with FTS5, SQLite without (whose substring fallback
# must give FTS5's answers here) and a real PostgreSQL server.
BACKENDS = pytest.mark.parametrize("catalog", ["sqlite", "sqlite-nofts", "postgresql"], indirect=True)


def ai4_example(name):
    import ai4_metadata

    return Path(ai4_metadata.__file__).parent / "assets" / "examples" / name


@BACKENDS
def test_publish_show_versions_pull(publish, catalog, tmp_path, tiny_model_dir):
    first = publish("alice")
    assert first["name"] == "tiny-colours" and first["version"] == "1.0.0" and first["owner"] == "alice"
    assert set(first["files"]) == {"model.keras", "preprocessing.json", "metrics.json", "training.ipynb"}
    publish("alice", version="1.1.0")
    assert catalog.show("bob", "tiny-colours")["version"] == "1.1.0"
    assert [v["version"] for v in catalog.versions("bob", "tiny-colours")] == ["1.1.0", "1.0.0"]
    entry = catalog.pull("bob", "tiny-colours", "1.0.0", tmp_path / "pulled")
    for name in entry["files"]:
        assert (tmp_path / "pulled" / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    assert json.loads((tmp_path / "pulled" / "metadata.json").read_text())["deepvre"]["version"] == "1.0.0"


@BACKENDS
def test_versions_are_immutable(publish):
    publish("alice")
    with pytest.raises(Conflict):
        publish("alice")


def test_schema_errors_are_listed(catalog, tiny_model_dir):
    doc = make_document()
    del doc["summary"]
    doc["tasks"] = ["Telepathy"]
    doc["deepvre"]["input"]["shape"] = "big"
    with pytest.raises(metadata.MetadataError) as err:
        catalog.publish(doc, artifact_files(tiny_model_dir), "alice")
    text = "\n".join(err.value.errors)
    assert "'summary' is a required property" in text
    assert "tasks[0]: 'Telepathy' is not one of" in text
    assert "deepvre.input.shape: 'big' is not of type 'array'" in text
    assert catalog.search("alice") == []


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "Upper", "-dash", "x" * 80, "a..b/c"])
def test_path_tricks_in_model_names_are_refused(catalog, tiny_model_dir, name):
    with pytest.raises(metadata.MetadataError, match="deepvre.name"):
        catalog.publish(make_document(name=name), artifact_files(tiny_model_dir), "alice")


@pytest.mark.parametrize("version", ["../1", "1.0/..", "1.0.0;rm"])
def test_path_tricks_in_versions_are_refused(catalog, tiny_model_dir, version):
    with pytest.raises(metadata.MetadataError, match="deepvre.version"):
        catalog.publish(make_document(version=version), artifact_files(tiny_model_dir), "alice")


@pytest.mark.parametrize("filename", ["../model.keras2", "sub/x.json", ".hidden", "weights.pkl", "state.pth"])
def test_bad_file_names_and_pickles_are_refused(catalog, tiny_model_dir, filename):
    files = artifact_files(tiny_model_dir)
    files[filename] = tiny_model_dir / "metrics.json"
    with pytest.raises(metadata.MetadataError, match="files"):
        catalog.publish(make_document(), files, "alice")


def test_oversized_upload_is_refused(tmp_path, tiny_model_dir):
    small = Catalog(database_url=f"sqlite:///{tmp_path / 'i.sqlite'}", store_url=str(tmp_path / "s"), upload_limit=1000)
    with pytest.raises(UploadTooLarge):
        small.publish(make_document(), artifact_files(tiny_model_dir), "alice")
    assert small.search("alice") == []


def lambda_model(path):
    import keras

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Flatten()])
    model.save(path)
    return path


def test_lambda_layer_is_refused_at_publish_and_load(catalog, tiny_model_dir, tmp_path):
    from deepvre.market import modelfile

    bad = lambda_model(tmp_path / "model.keras")
    files = artifact_files(tiny_model_dir)
    files["model.keras"] = bad
    with pytest.raises(metadata.MetadataError, match="Lambda layers carry code"):
        catalog.publish(make_document(), files, "alice")
    with pytest.raises(ValueError, match="safe_mode"):
        modelfile.load(bad)


def tamper(catalog, digest):
    blob = Path(catalog.store.path(digest))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))


def forget_blake3(catalog):
    """Make every version look published before BLAKE3 digests were recorded."""
    import sqlalchemy as sa

    from deepvre.market.tables import VersionRow

    with catalog.Session.begin() as session:
        for ver in session.scalars(sa.select(VersionRow)):
            ver.files = json.dumps({k: {"sha256": v["sha256"], "size": v["size"]} for k, v in json.loads(ver.files).items()})


@pytest.mark.parametrize("verify", ["blake3", "sha256", "legacy-entry"])
def test_tampered_artifact_fails_loudly(publish, catalog, tmp_path, verify):
    entry = publish("alice")
    info = entry["files"]["model.keras"]
    assert len(info["blake3"]) == 64  # recorded at publish
    if verify == "legacy-entry":  # no BLAKE3 digest: the fast path falls back to sha256
        forget_blake3(catalog)
    tamper(catalog, info["sha256"])
    mode = "sha256" if verify == "sha256" else "blake3"
    algorithm = "blake3" if verify == "blake3" else "sha256"
    with pytest.raises(IntegrityError, match=f"{info['sha256']} is corrupt: its bytes hash to {algorithm} "):
        catalog.pull("bob", "tiny-colours", None, tmp_path / "out", verify=mode)
    assert not (tmp_path / "out" / "model.keras").exists()


@pytest.mark.parametrize("verify", ["blake3", "sha256", "legacy-entry"])
def test_intact_pull_under_each_check(publish, catalog, tmp_path, tiny_model_dir, verify):
    publish("alice")
    if verify == "legacy-entry":
        forget_blake3(catalog)
    entry = catalog.pull("bob", "tiny-colours", None, tmp_path / "out", verify="sha256" if verify == "sha256" else "blake3")
    for name in entry["files"]:
        assert (tmp_path / "out" / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    with pytest.raises(ValueError, match="verify"):
        catalog.pull("bob", "tiny-colours", None, tmp_path / "other", verify="md5")


def test_fsck_rehashes_every_blob(publish, catalog):
    entry = publish("alice")
    assert catalog.fsck() == []
    # a blob whose BLAKE3 record is wrong but whose sha256 name still holds: fsck checks both
    import sqlalchemy as sa

    from deepvre.market.tables import VersionRow

    with catalog.Session.begin() as session:
        ver = session.scalars(sa.select(VersionRow)).one()
        files = json.loads(ver.files)
        files["metrics.json"]["blake3"] = "0" * 64
        ver.files = json.dumps(files)
    tamper(catalog, entry["files"]["model.keras"]["sha256"])
    problems = catalog.fsck()
    assert len(problems) == 2, problems
    assert any(p.startswith("tiny-colours:1.0.0/model.keras: ") and "hash to sha256" in p for p in problems)
    assert any(p.startswith("tiny-colours:1.0.0/metrics.json: ") and "hash to blake3" in p for p in problems)


@BACKENDS
def test_permissions(publish, catalog):
    publish("alice")
    publish("alice", name="alice-private", visibility="private")
    publish("alice", name="alice-lab", visibility="group", groups=["lab"])
    bob, carol, admin = Caller("bob"), Caller("carol", ("lab",)), Caller("root", (), True)
    # Another user cannot publish into alice's public model ...
    with pytest.raises(Forbidden):
        publish("bob", version="2.0.0")
    with pytest.raises(Forbidden):
        catalog.deprecate(bob, "tiny-colours")
    # ... and learns no more of her private or group models than that the name is taken.
    for name in ("alice-private", "alice-lab"):
        with pytest.raises(NotFound):
            catalog.show(bob, name)
        with pytest.raises(Forbidden, match="is taken") as refused:
            publish("bob", name=name, version="9.0.0")
        assert "alice" not in str(refused.value).replace(name, "")
    assert {e["name"] for e in catalog.search(bob)} == {"tiny-colours"}
    assert {e["name"] for e in catalog.search(carol)} == {"tiny-colours", "alice-lab"}
    assert catalog.show(carol, "alice-lab")["groups"] == ["lab"]
    # Admins see and curate everything.
    assert {e["name"] for e in catalog.search(admin)} == {"tiny-colours", "alice-lab", "alice-private"}
    catalog.deprecate(admin, "alice-private")
    catalog.set_visibility(admin, "alice-lab", "public")
    assert {e["name"] for e in catalog.search(bob)} == {"tiny-colours", "alice-lab"}
    assert catalog.search(admin, filters={"deprecated": True, "owner": "alice", "visibility": "private"})[0]["deprecated"]


@BACKENDS
def test_search_filter_sort(publish, catalog):
    publish("alice")
    publish("alice", name="cell-nuclei", title="Nuclei segmentation", summary="Finds nuclei in fluorescence images",
            tags=["biology", "microscopy"], tasks=["Computer Vision"])
    publish("bob", name="flow-anomalies", title="Network flow anomalies", summary="Scores Zeek conn.log flows",
            tags=["security"], tasks=["Anomaly Detection"], libraries=["Keras"])
    names = lambda hits: [h["name"] for h in hits]  # noqa: E731
    assert names(catalog.search("x", "nuclei")) == ["cell-nuclei"]
    assert names(catalog.search("x", "fluoresc")) == ["cell-nuclei"]  # prefix match
    assert names(catalog.search("x", "zeek flows")) == ["flow-anomalies"]
    assert names(catalog.search("x", "\"); DROP TABLE models; --")) == []
    assert names(catalog.search("x", filters={"task": "Anomaly Detection"})) == ["flow-anomalies"]
    assert names(catalog.search("x", filters={"library": "TensorFlow"})) == ["cell-nuclei", "tiny-colours"]
    assert names(catalog.search("x", filters={"use_case": "base", "category": "AI4 inference"})) == [
        "cell-nuclei", "flow-anomalies", "tiny-colours"]
    assert names(catalog.search("x", sort="-name")) == ["tiny-colours", "flow-anomalies", "cell-nuclei"]
    assert names(catalog.search("x", sort="updated"))[0] == "flow-anomalies"
    assert names(catalog.search("x", sort="name", limit=1, offset=1)) == ["flow-anomalies"]
    with pytest.raises(ValueError, match="sort"):
        catalog.search("x", sort="size")


def test_v1_import_through_ai4_migrate(tmp_path):
    doc = metadata.migrate_v1(ai4_example("sample-v1.mods.json"))
    assert doc["metadata_version"] == "2.3.0" and doc["title"] == "DEEP OC Massive Online Data Streams"
    assert metadata.errors(doc) == ["deepvre: missing (deepvre's section: name, version, use_case, input, output, visibility)"]
    doc["deepvre"] = make_document()["deepvre"]
    assert metadata.errors(doc) == []
    bad = tmp_path / "bad-v1.json"
    bad.write_text(json.dumps({"title": 3}))
    with pytest.raises(metadata.MetadataError, match="AI4OS v1"):
        metadata.migrate_v1(bad)


def test_real_ai4_v2_example_passes_ai4_part():
    doc = metadata.load(ai4_example("sample-v2.mods.json"))
    assert [e for e in metadata.errors(doc) if "AI4OS" in e] == []


def _publish_in_process(db, store, folder, barrier, results):
    catalog = Catalog(database_url=db, store_url=store)
    files = artifact_files(Path(folder))
    barrier.wait(timeout=120)  # both processes publish at the same moment
    try:
        catalog.publish(make_document(), files, "alice")
        results.put("won")
    except Conflict:
        results.put("conflict")


def test_concurrent_publish_one_wins(tmp_path, tiny_model_dir):
    db, store = f"sqlite:///{tmp_path / 'i.sqlite'}", str(tmp_path / "s")
    Catalog(database_url=db, store_url=store)  # create the tables once
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_publish_in_process, args=(db, store, str(tiny_model_dir), barrier, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    outcome = sorted(results.get(timeout=180) for _ in procs)
    for proc in procs:
        proc.join(60)
    assert outcome == ["conflict", "won"]
    catalog = Catalog(database_url=db, store_url=store)
    entry = catalog.show(Caller("x", (), True), "tiny-colours")
    assert [v["version"] for v in entry["versions"]] == ["1.0.0"]
    for info in entry["files"].values():  # every file of the winner is complete and intact
        assert len(catalog.store.read_bytes(info["sha256"])) == info["size"]
    assert not list((tmp_path / "s" / "tmp").iterdir())  # no half-written blob left behind


def test_tests_never_touch_the_users_catalog(private_market_dir):
    from deepvre.market.catalog import default_root

    assert default_root() == private_market_dir / "market"
    assert Catalog().database_url == f"sqlite:///{private_market_dir / 'market' / 'catalog.sqlite'}"


@pytest.mark.parametrize("kernel", [True, False], ids=["copy_file_range", "pread-fallback"])
@pytest.mark.parametrize("verify", ["blake3", "sha256"])
def test_copy_over_many_blocks_checks_every_block(tmp_path, monkeypatch, verify, kernel):
    import errno
    import os

    from deepvre.market import store as store_module

    monkeypatch.setattr(store_module, "COPY_CHUNK", 4096)  # 13 blocks for the fallback copy
    monkeypatch.setattr(store_module, "HASH_CHUNK", 4096)  # and 13 for the hash
    if not kernel:  # as on file systems without copy_file_range between them

        def refused(*args):
            raise OSError(errno.EXDEV, "cross-device")

        monkeypatch.setattr(os, "copy_file_range", refused)
    store = store_module.ArtifactStore(tmp_path / "s")
    data = os.urandom(4096 * 12 + 100)
    (tmp_path / "blob").write_bytes(data)
    blob = store.put_file(tmp_path / "blob")
    store.copy_to(blob.sha256, tmp_path / "copy", blob.blake3, verify)
    assert (tmp_path / "copy").read_bytes() == data
    stored = Path(store.path(blob.sha256))
    for position in (0, len(data) - 1):  # the first block changed, then only the last
        changed = bytearray(data)
        changed[position] ^= 1
        stored.write_bytes(changed)
        with pytest.raises(IntegrityError, match=f"hash to {verify} "):
            store.copy_to(blob.sha256, tmp_path / "bad", blob.blake3, verify)
        assert not (tmp_path / "bad").exists()


def test_blob_changed_during_the_copy_is_caught(tmp_path, monkeypatch):
    """Bytes written into the blob while the kernel copies it: the copy is refused, even
    when the hash happened to read the old bytes."""
    import os
    import time

    from deepvre.market import store as store_module

    store = store_module.ArtifactStore(tmp_path / "s")
    data = os.urandom(1 << 20)
    (tmp_path / "blob").write_bytes(data)
    blob = store.put_file(tmp_path / "blob")
    # file times tick coarsely: wait until the file system's clock has moved past the blob's, so the
    # racing write below lands in a later tick (a state, not a fixed sleep)
    stamped = os.stat(store.path(blob.sha256)).st_mtime_ns
    probe = tmp_path / "tick"
    while (probe.write_bytes(b"."), os.stat(probe).st_mtime_ns)[1] <= stamped:
        time.sleep(0.001)
    real_copy = store_module.kernel_copy

    def racing(src_fd, dst_fd, size):
        copied = real_copy(src_fd, dst_fd, size)
        with open(store.path(blob.sha256), "r+b") as f:  # same bytes back: only the write shows
            f.write(data[:1])
        return copied

    monkeypatch.setattr(store_module, "kernel_copy", racing)
    with pytest.raises(IntegrityError, match="changed while it was copied"):
        store.copy_to(blob.sha256, tmp_path / "raced", blob.blake3)
    assert not (tmp_path / "raced").exists()
    monkeypatch.setattr(store_module, "kernel_copy", real_copy)
    store.copy_to(blob.sha256, tmp_path / "calm", blob.blake3)  # unchanged bytes: the copy is fine
    assert (tmp_path / "calm").read_bytes() == data
