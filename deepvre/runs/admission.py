"""A batch run's admission by the hub: quotas, the GPU queue and the usage accounting.

A local run with a profile (``deepvre run --profile SLUG``), started inside a user's server,
asks the hub before its notebook starts (``/hub/api/deepvre/runs``, ``deepvre_hub.run_admission``)
with the server's own API token (``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_API_URL``):

- refused by a quota, or a profile the machine cannot give: the run ends ``failed`` with the
  hub's message (which limit, when it frees up), and its notebook never starts;
- no free GPU: ``status.json`` says ``queued`` with ``gpu_queue`` (its place and the hub's
  line) until its turn; a cancel meanwhile gives its place up;
- admitted: ``CUDA_VISIBLE_DEVICES`` names the GPUs the hub gave it, and at the worker's exit
  they go back, with the run's final state as the reason in its usage row.

Outside a hub (no token), on Slurm (Slurm's own queue) or without a profile, nothing is asked.
"""

import atexit
import os
import sys
import time

from . import store

PATH = "deepvre/runs"  # under the hub API
POLL = 2.0  # seconds between the queued run's questions


def wanted(params, env=None):
    """Whether this run asks the hub: local, with a profile, inside a hub's server."""
    env = os.environ if env is None else env
    return bool(params.get("backend", "local") == "local" and (params.get("profile") or {}).get("slug")
                and env.get("JUPYTERHUB_API_TOKEN") and env.get("JUPYTERHUB_API_URL"))


class Hub:
    """The hub API as the run's server: its token, never put on a command line or in a file."""

    def __init__(self, env=None, timeout=30):
        import requests

        env = os.environ if env is None else env
        self.url = env["JUPYTERHUB_API_URL"].rstrip("/") + "/" + PATH
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {env['JUPYTERHUB_API_TOKEN']}"
        self.timeout = timeout

    def ask(self, method, run_id=None, **body):
        """``(status code, JSON answer)``; ``(0, {"message": why})`` when the hub does not answer."""
        import requests

        url = self.url + (f"/{run_id}" if run_id else "")
        try:
            r = self.session.request(method, url, json=body or None, timeout=self.timeout)
        except requests.RequestException as err:
            return 0, {"message": f"the hub did not answer ({type(err).__name__})"}
        try:
            answer = r.json() if r.content else {}
        except ValueError:
            answer = {"message": r.text[:300]}
        return r.status_code, answer if isinstance(answer, dict) else {"message": str(answer)}


def _refused(run_path, message):
    store.update_status(run_path, state="failed", finished=store.now(), gpu_queue=None,
                        error=f"Not started: {message}")
    print(f"deepvre run: not started: {message}", file=sys.stderr, flush=True)
    return False


def _cancelled(run_path):
    return store.read_json(os.path.join(run_path, store.STATUS), {}).get("cancel_requested")


def admit_run(run_path, params, hub=None, poll=POLL):
    """Before the notebook starts: True to go on (admitted with its GPUs, or nothing to ask);
    False when the run must not start (refused, or cancelled while it waited: ``status.json``
    says so)."""
    if not wanted(params):
        return True
    hub = hub or Hub()
    run_id = os.path.basename(os.path.abspath(run_path))
    code, answer = hub.ask("POST", run=run_id, profile=params["profile"]["slug"], pid=os.getpid())
    try:
        while code == 202:
            store.update_status(run_path, state="queued", gpu_queue={"place": answer.get("place"),
                                                                     "message": answer.get("message", "")})
            if _cancelled(run_path):
                hub.ask("DELETE", run_id, state="cancelled")
                store.update_status(run_path, state="cancelled", finished=store.now(), gpu_queue=None)
                return False
            time.sleep(poll)
            code, answer = hub.ask("GET", run_id)
    except BaseException:  # SIGTERM (a cancel: execute's RunCancelled), Ctrl-C: the place goes
        hub.ask("DELETE", run_id, state="cancelled")
        raise
    if code != 200:
        return _refused(run_path, answer.get("message") or f"the hub answered {code}")
    gpu_ids = [str(g) for g in answer.get("gpu_ids") or []]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)  # the kernel inherits it
    store.update_status(run_path, gpu_queue=None, gpu_ids=gpu_ids)
    print(f"deepvre run: admitted by the hub, GPUs [{','.join(gpu_ids)}]", file=sys.stderr, flush=True)
    atexit.register(release, run_path, run_id, hub)
    return True


def release(run_path, run_id, hub):
    """The worker's exit: the GPUs go back, the row closes with the run's final state."""
    state = store.read_json(os.path.join(run_path, store.STATUS), {}).get("state")
    code, answer = hub.ask("DELETE", run_id, state=state if state in ("done", "failed", "cancelled") else "failed")
    if code != 204:
        print(f"deepvre run: the hub did not take the GPUs back ({code}: {answer.get('message')})",
              file=sys.stderr, flush=True)
