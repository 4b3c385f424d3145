"""The run's provenance record, written by the worker once the notebook has stopped.

A notebook publishes its model before its last cells have run, so the executed notebook inside
the catalog entry is a snapshot (catalog versions are immutable). ``RUN_DIR/provenance.json``
closes the loop without touching the entry: the sha256 of the FINAL ``output.ipynb``, the run's
end state, and the models the run published (``RUN_DIR/published.json``, appended by
``deepvre.training.lineage``, whose entries carry a ``run.json`` pointing back here)::

    {"run": "lattice-qcd-20261123-...", "state": "done", "finished": "...",
     "notebook": {"path": "/home/u/runs/ID/output.ipynb", "sha256": "..."},
     "published": [{"name": "lattice-u1-beta-large", "version": "1.0.0",
                    "notebook_snapshot": {"file": "output.ipynb", "sha256": "..."}}]}
"""

import os

from ..checksums import file_sha256
from . import store

PROVENANCE, PUBLISHED = "provenance.json", "published.json"


def write_provenance(run_path, state):
    """Write ``RUN_DIR/provenance.json`` for a run that ended in ``state``; return the record."""
    output = os.path.join(run_path, store.OUTPUT)
    try:
        published = store.read_json(os.path.join(run_path, PUBLISHED), [])
    except ValueError:
        published = []
    record = {
        "run": os.path.basename(run_path), "state": state, "finished": store.now(),
        "notebook": {"path": output, "sha256": file_sha256(output)} if os.path.isfile(output) else None,
        "published": published if isinstance(published, list) else [],
    }
    store.write_json(os.path.join(run_path, PROVENANCE), record)
    return record
