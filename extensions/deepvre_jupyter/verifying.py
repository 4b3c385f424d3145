"""The model page's "Verify": ``deepvre market verify`` run by this server, one at a time per version.

:func:`start` re-runs a version's lineage (:func:`deepvre.runs.reproduce.reproduce`, its run in the
server's runs folder) in a thread and appends the outcome to the catalog entry as the marketplace's
signed record; :func:`state` is what the page polls: ``{"state": "running"|"done"|"failed",
"result", "reason", "run", "error"}`` or None. The record itself is the catalog's; this is only
this server's view of its own attempt (gone with the server).
"""

import threading

from deepvre.errors import Conflict

_lock = threading.Lock()
_jobs = {}  # (name, version) -> state


def state(name, version):
    with _lock:
        found = _jobs.get((name, version))
        return dict(found) if found else None


def _work(market, name, version, runs_dir):
    from deepvre.runs import reproduce

    try:
        outcome = reproduce.reproduce(market, name, version, runs_dir=runs_dir)
        market.add_verification(name, version, reproduce.claim(outcome))
        done = {"state": "done", "result": outcome["result"], "reason": outcome["reason"], "run": outcome["run"]}
    except Exception as err:  # noqa: BLE001  (the page shows why; nothing else waits for it)
        done = {"state": "failed", "error": f"{type(err).__name__}: {err}"}
    with _lock:
        _jobs[(name, version)] = done


def start(market, name, version, runs_dir):
    """Verify ``name:version`` in a thread; Conflict while this server verifies it already."""
    with _lock:
        if (_jobs.get((name, version)) or {}).get("state") == "running":
            raise Conflict(f"{name}:{version} is being verified already")
        _jobs[(name, version)] = {"state": "running"}
    threading.Thread(target=_work, args=(market, name, version, runs_dir), daemon=True,
                     name=f"verify-{name}-{version}").start()
    return state(name, version)
