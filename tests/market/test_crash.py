"""A marketplace service killed in the middle of a publish leaves nothing half-visible.

The real service runs as a subprocess in its own process group, stopped dead at one moment of a
publish (:mod:`.crashing_service`), checked on disk at that moment, and SIGKILLed. The next start
of the plain service must show the version complete (every file downloads with its checksums) or
not at all, leave no temporary file behind, satisfy ``deepvre market fsck``, and take the
publish again.
"""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.hub.hubprocess import free_port, wait_for

from .conftest import make_document
from .fuzz_hooks import MODEL, tar_of

DEEPVRE = str(Path(sys.executable).parent / "deepvre")
# the moments a publish passes (see crashing_service), and whether the version is visible after a kill there
MOMENTS = [("upload", False), ("blob", False), ("stored", False), ("committed", True)]


class Service:
    """The service on a free port over the catalog in ``root`` (``pause_at``: the crashing one)."""

    def __init__(self, root, pause_at=None):
        self.root, self.url = root, None
        self.events = root / "events"
        port = free_port()
        args = ["--standalone", "--port", str(port), "--database-url", f"sqlite:///{root}/market.sqlite",
                "--store-url", str(root / "store"), "--token-file", str(root / "token")]
        if pause_at:
            self.events.write_text("")
            cmd = [sys.executable, "-m", "tests.market.crashing_service", pause_at, str(self.events), "--", *args]
        else:
            cmd = [sys.executable, "-m", "deepvre.market", *args]
        self.log = open(root / "service.log", "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=Path(__file__).resolve().parents[2])
        self.url = f"http://127.0.0.1:{port}/"
        try:
            wait_for(self.answers, 60, "the marketplace service")
        except BaseException:
            self.kill()
            raise

    def answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"service exited {self.proc.returncode}: {(self.root / 'service.log').read_text()[-3000:]}")
        try:
            return requests.get(self.url + "api/openapi.yaml", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def headers(self):
        """The standalone service's token (written afresh at each start)."""
        return {"Authorization": f"token {(self.root / 'token').read_text().strip()}"}

    def reached(self, moment):
        self.answers()  # raises if the service died
        return moment in self.events.read_text().split()

    def kill(self):
        """SIGKILL the service's process group: no handler, no cleanup, as a crash."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self):
        self.proc.terminate()
        try:
            assert self.proc.wait(30) == 0
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.log.close()


def upload(name, files):
    return tar_of({"metadata.json": json.dumps(make_document(name)).encode(), **files})


def version_rows(root, name):
    with sqlite3.connect(root / "market.sqlite") as db:
        return db.execute("SELECT count(*) FROM versions WHERE name = ?", (name,)).fetchone()[0]


def staged(root, filename):
    """Files named ``filename`` in the store's staging folders."""
    return list((root / "store" / "tmp").glob(f"*/{filename}"))


def on_disk_at(moment, root, name, large):
    """What must be true on disk when the publish stands at ``moment``."""
    blob = root / "store" / "sha256" / large[:2] / large
    if moment == "upload":
        return bool(staged(root, "upload.tar")) and version_rows(root, name) == 0
    if moment == "blob":
        return bool(staged(root, "blob")) and not blob.exists() and version_rows(root, name) == 0
    if moment == "stored":
        return blob.exists() and version_rows(root, name) == 0
    return version_rows(root, name) == 1


def fsck(root):
    out = subprocess.run([DEEPVRE, "market", "fsck", "--database-url", f"sqlite:///{root}/market.sqlite",
                          "--store-url", str(root / "store"), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def check_complete(service, name, files):
    entry = requests.get(service.url + f"api/models/{name}", headers=service.headers(), timeout=30).json()
    assert set(entry["files"]) == set(files)
    for filename, data in files.items():
        r = requests.get(service.url + f"api/models/{name}/versions/1.0.0/files/{filename}", headers=service.headers(), timeout=60)
        assert r.status_code == 200 and r.content == data, filename
        assert r.headers["X-Checksum-Sha256"] == entry["files"][filename]["sha256"] == hashlib.sha256(data).hexdigest()
    assert name in {e["name"] for e in requests.get(service.url + "api/models", headers=service.headers(), timeout=30).json()}


@pytest.mark.parametrize(("moment", "visible"), MOMENTS)
def test_killed_publish_leaves_nothing_half_visible(tmp_path, moment, visible):
    name = f"crash-{moment}"
    files = {"model.keras": MODEL, "training.ipynb": b"{}", "weights.bin": os.urandom(6 << 20)}
    large = hashlib.sha256(files["weights.bin"]).hexdigest()
    body = upload(name, files)

    crashing = Service(tmp_path, pause_at=moment)
    answers = []
    publish = threading.Thread(target=lambda: answers.append(_post(crashing, body)))
    try:
        publish.start()
        wait_for(lambda: crashing.reached(moment), 60, f"the publish to reach {moment!r}", interval=0.02)
        assert on_disk_at(moment, tmp_path, name, large), sorted(p.name for p in (tmp_path / "store").rglob("*"))
    finally:
        crashing.kill()
    publish.join(60)
    assert answers and not isinstance(answers[0], int), answers  # the publish got no answer

    service = Service(tmp_path)
    try:
        assert list((tmp_path / "store" / "tmp").iterdir()) == []  # the next start removed what the kill left
        shown = requests.get(service.url + f"api/models/{name}", headers=service.headers(), timeout=30)
        if visible:
            assert shown.status_code == 200, shown.text
            check_complete(service, name, files)
        else:
            assert shown.status_code == 404, shown.text
            assert requests.get(service.url + f"api/models/{name}/versions", headers=service.headers(), timeout=30).status_code == 404
            assert name not in {e["name"] for e in requests.get(service.url + "api/models", headers=service.headers(), timeout=30).json()}
        report = fsck(tmp_path)
        assert report["temporary"] == [], report
        # a republish completes a publish the kill stopped; a completed one is immutable (409)
        again = _post(service, body)
        assert again == (409 if visible else 201)
        check_complete(service, name, files)
        assert fsck(tmp_path) == {"ok": True, "temporary": [], "unreferenced": []}
    finally:
        service.stop()


def _post(service, body):
    """The status of a publish, or the exception that ended it."""
    try:
        return requests.post(service.url + "api/models", data=body,
                             headers={"Content-Type": "application/x-tar", **service.headers()}, timeout=60).status_code
    except requests.RequestException as err:
        return err


def test_staging_folders_of_dead_writers_are_leftovers(tmp_path):
    from deepvre.market.store import ArtifactStore

    store = ArtifactStore(str(tmp_path / "store"))
    live = store.staging()
    (live.path / "upload.tar").write_bytes(b"x")
    # a writer killed with its folder open: the lock dies with it
    code = "import os, sys; from deepvre.market.store import ArtifactStore as S; " \
           "s = S(sys.argv[1]).staging(); open(s.path / 'blob', 'wb').write(b'y'); print(s.path); os._exit(0)"
    dead = Path(subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], capture_output=True, text=True,
                               check=True).stdout.strip())
    assert dead.exists() and store.leftovers() == [str(dead)]
    assert store.recover() == [str(dead)]
    assert not dead.exists() and (live.path / "upload.tar").exists() and store.leftovers() == []
    live.close()
    assert list((tmp_path / "store" / "tmp").iterdir()) == []
