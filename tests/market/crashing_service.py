"""The marketplace service, stopped dead at one moment of a publish, for the crash tests.

``python -m tests.market.crashing_service MOMENT EVENTS -- SERVICE ARGS`` runs the real service
(``deepvre.market.app.main``) with one pause: the first publish that reaches ``MOMENT`` writes
the moment's name to the file ``EVENTS`` and blocks there for good, so that a test can check the
state on disk and SIGKILL the service exactly then. Moments, in the order a publish meets them:

- ``upload``: half the request body received into the staging folder;
- ``blob``: the first chunk of the large artifact file in its temporary blob file;
- ``stored``: every blob in place, the index transaction not begun;
- ``committed``: the index transaction committed, the answer not sent.
"""

import sys
import threading

from deepvre.market import app, handlers, store
from deepvre.market.catalog import Catalog

LARGE = 2 * store.CHUNK


def pause(moment, wanted, events):
    """At the ``wanted`` moment: record it and block this thread until the process is killed."""
    if moment != wanted:
        return
    with open(events, "a") as out:
        out.write(moment + "\n")
    threading.Event().wait()


def install(wanted, events):
    data_received, put, commit = handlers.ModelsHandler.data_received, store.ArtifactStore._put, Catalog._commit_version

    def receiving(self, chunk):
        data_received(self, chunk)
        if self.upload is not None and self.received * 2 >= int(self.request.headers["Content-Length"]):
            self.upload.flush()
            pause("upload", wanted, events)

    def putting(self, src, tmp, limit):
        large = src.seek(0, 2) >= LARGE
        src.seek(0)
        return put(self, Halting(src) if large else src, tmp, limit)

    class Halting:
        def __init__(self, src):
            self.src = src

        def read(self, size=-1):
            if self.src.tell() > 0:  # a chunk is in the temporary file
                pause("blob", wanted, events)
            return self.src.read(size)

    def committing(self, caller, document, stored):
        pause("stored", wanted, events)
        commit(self, caller, document, stored)
        pause("committed", wanted, events)

    handlers.ModelsHandler.data_received = receiving
    store.ArtifactStore._put = putting
    Catalog._commit_version = committing


if __name__ == "__main__":
    moment, events, dashes, *args = sys.argv[1:]
    assert dashes == "--", "usage: MOMENT EVENTS -- SERVICE ARGS"
    install(moment, events)
    app.main(args)
