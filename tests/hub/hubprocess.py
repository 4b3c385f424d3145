"""Start a real deepvre hub (JupyterHub + configurable-http-proxy) for a test.

Reusable by any test folder::

    from tests.hub.hubprocess import HubProcess, free_port

    hub = HubProcess({"profiles": [...]}, tmp_path / "state")
    hub.start()                         # `deepvre hub up` on free loopback ports; waits until ready
    admin = hub.login(hub.admin, hub.admin_password)
    hub.signup("alice", "pw"); hub.authorize(admin, "alice"); alice = hub.login("alice", "pw")
    token = hub.token(alice)            # an API token of alice (via the hub's own API)
    hub.spawn(token, "alice", profile="gpu-1", server="gpu")   # waits until ready
    run_code(hub.server_url("alice", "gpu"), token, "print(1 + 1)")  # -> "2\\n"
    terminal_output(hub.server_url("alice"), token, "which deepvre")  # in a JupyterLab terminal
    hub.restart(); hub.stop()           # hub.log_text() holds the hub's output
    hub.accounts.append("alice"); hub.teardown()   # stop servers and hub, delete those OS accounts

``settings`` is merged over a minimal local-mode file (ports filled in; the marketplace seeds no
base model unless ``marketplace: {seed_base_models: true}``); ``env`` adds
environment variables (e.g. a PATH with a fake ``nvidia-smi``); ``prefix`` goes before the
command (tests/slurm/test_two_nodes.py runs the hub on a node in a network namespace, and talks
to it from a thread in that namespace: ``tests.slurmnodes.netns``).

In a fixture, ``with hub.running(): yield hub`` starts it, tears it down after (and stops it
in any case); ``cpu_only(**sections)`` is the settings of a hub with one CPU profile;
``hub_folder(prefix, owner)`` a folder outside pytest's for its files.

``personal_hub_process()`` is a hub in personal mode (under an ordinary OS account made for it);
tests/conftest.py shares one as the session fixture ``personal_hub``.
"""

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import websocket
import yaml

from tests.prereqs import HUB_TMP, hub_tmpdir

REPO = Path(__file__).resolve().parents[2]
DEEPVRE = Path(sys.executable).parent / "deepvre"


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout, what, interval=0.25):
    """Poll ``check()`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def hub_xsrf(session):
    """The hub's ``_xsrf`` cookie (a visited single-user server sets its own under /user/NAME/)."""
    found = [c for c in session.cookies if c.name == "_xsrf"]
    hub = [c for c in found if c.path.startswith("/hub")] or found
    return hub[0].value if hub else ""


class HubProcess:
    """A deepvre hub run by ``deepvre hub up`` in a child process, on free loopback ports."""

    def __init__(self, settings, state_dir, env=None, admin="admin", run_as=None, prefix=()):
        self.run_as = run_as  # an OS account to run the hub under (personal mode), else this process's
        self.prefix = list(prefix)  # runs the hub elsewhere, e.g. tests/slurmnodes.py's Node.command([])
        self.state_dir = Path(state_dir)
        self.settings_file = self.state_dir.parent / f"{self.state_dir.name}-settings.yaml"
        self.log_file = self.state_dir.parent / f"{self.state_dir.name}-hub.log"
        if os.geteuid() == 0 and not run_as:  # its marketplace and culler run under their own accounts
            self.state_dir = Path(hub_tmpdir()) / "state"
        self.admin = admin
        self.admin_password = None
        self.extra_env = dict(env or {})
        self.settings = {"mode": "local", "culling": {"enabled": False}, **settings}
        # the base model's seed (20 s of TensorFlow) only where a test asks for it
        self.settings["marketplace"] = {"seed_base_models": False, **settings.get("marketplace", {})}
        hub = {"admin": admin, "port": free_port(), "hub_port": free_port(), "proxy_api_port": free_port()}
        self.settings["hub"] = {**hub, **settings.get("hub", {})}
        self.url = f"http://127.0.0.1:{self.settings['hub']['port']}"
        self.process = None
        self.accounts = []  # OS accounts the test made: deleted by teardown()

    # --- life cycle ------------------------------------------------------------------

    def start(self, timeout=120):
        """Run ``deepvre hub up``; wait until the hub answers through the proxy."""
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        self.settings_file.parent.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(yaml.safe_dump(self.settings))
        env = dict(os.environ, **self.extra_env)
        env.pop("DEEPVRE_STATE_DIR", None)
        account = {}
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            account = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            env.update(HOME=entry.pw_dir, USER=self.run_as, LOGNAME=self.run_as)
        with open(self.log_file, "a") as log:
            self.process = subprocess.Popen(
                [*self.prefix, str(DEEPVRE), "hub", "up", "--settings", str(self.settings_file),
                 "--state-dir", str(self.state_dir)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True, **account,
            )
        wait_for(self._ready, timeout, f"the hub at {self.url}\n{self.log_text()[-3000:]}")
        match = re.search(r"created with password: (\S+)", self.log_text())
        if match and self.admin_password is None:
            self.admin_password = match.group(1)
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"the hub exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/hub/api/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, timeout=60):
        """Ctrl-C the hub (SIGINT), as a person at the terminal would; wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @contextlib.contextmanager
    def running(self):
        """``with hub.running(): yield hub`` in a fixture: started for the block, then
        :meth:`teardown`; stopped in any case (a failed start or setup skips teardown's logins)."""
        try:
            self.start()
            yield self
            self.teardown()
        finally:
            self.stop()

    def teardown(self):
        """End of a test module: stop every server, then the hub; print its log tail; delete ``accounts``."""
        try:
            if self.process is not None and self.process.poll() is None and self.admin_password:
                admin = self.token(self.login(self.admin, self.admin_password))
                for user in self.api(admin, "GET", "/users").json():
                    for server in user.get("servers", {}):
                        self.stop_server(admin, user["name"], server)
        finally:
            self.stop()
            print(self.log_text()[-5000:])
            for name in self.accounts:
                subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
            if self.state_dir.parent.parent == Path(HUB_TMP):
                shutil.rmtree(self.state_dir.parent, ignore_errors=True)

    def restart(self, timeout=120):
        self.stop()
        return self.start(timeout)

    def log_text(self):
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # --- people ------------------------------------------------------------------------

    def session(self):
        """A browser-like session with the hub's ``_xsrf`` cookie."""
        s = requests.Session()
        s.get(f"{self.url}/hub/login", timeout=30)
        return s

    def _form(self, session, path, data):
        data = {"_xsrf": hub_xsrf(session), **data}
        return session.post(f"{self.url}{path}", data=data, timeout=60)

    def signup(self, name, password):
        """Sign up through NativeAuthenticator's form; returns the response."""
        s = self.session()
        return self._form(s, "/hub/signup", {
            "username": name, "signup_password": password, "signup_password_confirmation": password,
        })

    def login(self, name, password, check=True):
        """Log in through the form; returns the session (with its hub cookie)."""
        s = self.session()
        r = self._form(s, "/hub/login", {"username": name, "password": password})
        s.last_response = r
        if check and not any(c.name.startswith("jupyterhub-session") or c.name == "jupyterhub-hub-login" for c in s.cookies):
            raise AssertionError(f"login of {name} failed ({r.status_code}): {r.text[:500]}")
        return s

    def authorize(self, admin_session, name):
        """The admin approves ``name`` (NativeAuthenticator's /hub/authorize/NAME toggles: call once)."""
        r = admin_session.get(f"{self.url}/hub/authorize/{name}", timeout=30)
        r.raise_for_status()
        return r

    def approved_user(self, admin_session, name, password):
        """Sign ``name`` up, approve it as the admin, log in: returns (session, API token).
        ``name`` is added to ``accounts`` (its OS account is deleted by :meth:`teardown`)."""
        self.accounts.append(name)
        r = self.signup(name, password)
        assert r.status_code == 200, r.text[:500]
        self.authorize(admin_session, name)
        session = self.login(name, password)
        return session, self.token(session, name)

    def token(self, session, name=None):
        """A new API token of the logged-in user, made through the hub API with the cookie."""
        name = name or self._whoami(session)
        r = session.post(
            f"{self.url}/hub/api/users/{name}/tokens", json={"note": "tests", "expires_in": 3600},
            headers={"X-XSRFToken": hub_xsrf(session)}, timeout=30,
        )
        r.raise_for_status()
        return r.json()["token"]

    def _whoami(self, session):
        r = session.get(f"{self.url}/hub/api/user", headers={"X-XSRFToken": hub_xsrf(session)}, timeout=30)
        r.raise_for_status()
        return r.json()["name"]

    # --- servers -----------------------------------------------------------------------

    def api(self, token, method, path, **kwargs):
        """A hub API call with ``token``, e.g. ``api(t, "GET", "/users/alice")``."""
        return requests.request(method, f"{self.url}/hub/api{path}", headers={"Authorization": f"token {token}"},
                                timeout=kwargs.pop("timeout", 60), **kwargs)

    def server_model(self, token, user, server=""):
        r = self.api(token, "GET", f"/users/{user}")
        r.raise_for_status()
        return r.json().get("servers", {}).get(server)

    def spawn(self, token, user, profile=None, server="", timeout=180, wait=True):
        """Start a server with ``profile`` through the API; wait until ready. Returns the response."""
        path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
        r = self.api(token, "POST", path, json={"profile": profile} if profile else {})
        if wait and r.status_code in (201, 202):
            self.wait_ready(token, user, server, timeout)
        return r

    def wait_ready(self, token, user, server="", timeout=180):
        """Wait until ``user``'s server is ready in the hub API (the hub's log tail if it is not)."""
        wait_for(lambda: (self.server_model(token, user, server) or {}).get("ready"), timeout,
                 f"{user}/{server} to be ready\n{self.log_text()[-3000:]}", interval=0.5)

    def spawn_form(self, session, user, profile, server=""):
        """Submit the spawn page (``/hub/spawn/USER[/SERVER]``) as a browser would; returns the response."""
        path = f"/hub/spawn/{user}/{server}" if server else f"/hub/spawn/{user}"
        return self._form(session, path, {"profile": profile})

    def stop_server(self, token, user, server="", timeout=120):
        path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
        r = self.api(token, "DELETE", path)
        if r.status_code not in (202, 204):
            r.raise_for_status()
        wait_for(lambda: self.server_model(token, user, server) is None, timeout, f"{user}/{server} to stop", 0.5)

    def server_url(self, user, server=""):
        return f"{self.url}/user/{user}/{server + '/' if server else ''}"

    def server_status(self, session, user, server="", **kwargs):
        """GET the single-user server's ``api/status`` through the proxy with ``session``."""
        return session.get(f"{self.server_url(user, server)}api/status", timeout=60, **kwargs)

    def check_browser_reaches(self, session, user, server=""):
        """Through the proxy with a browser's cookies, after the single-user OAuth handshake: the
        server's page and its ``api/status`` answer ``session``."""
        page = session.get(self.server_url(user, server), timeout=60)
        assert page.status_code == 200, f"{user}'s server page: {page.status_code} {page.url}"
        status = self.server_status(session, user, server)
        assert status.status_code == 200 and "kernels" in status.json(), f"{user}'s api/status: {status.text[:300]}"


def cpu_only(**sections):
    """Settings of a hub with one CPU profile and no GPU discovery, plus ``sections``
    (e.g. ``culling={"enabled": True}``)."""
    return {"profiles": [{"slug": "cpu", "display_name": "CPU", "default": True}], "gpus": {"discovery": "none"},
            **sections}


@contextlib.contextmanager
def hub_folder(prefix, owner=None):
    """A new folder for a hub's files outside pytest's temporary folder (which other pytest
    sessions make 0700 again while the hub's services, under their own accounts, use it), given
    to the OS account ``owner`` if named; removed after."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if owner:
            shutil.chown(folder, owner, owner)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def personal_hub_process():
    """A started hub in personal mode: ``deepvre hub up`` under a new ordinary OS account (the
    way a person runs it on a laptop), with ``hub.personal_user`` = ``hub.person``; removed after.
    ``hub.account`` is the OS account it runs as. Needs root (to make that account)."""
    account = f"hubp{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "-K", "HOME_MODE=0700", account], check=True, capture_output=True)
    person = f"hubp{secrets.token_hex(3)}me"
    try:
        with hub_folder("deepvre-hub-personal-", owner=account) as folder:
            hub = HubProcess(cpu_only(hub={"personal_user": person}), folder / "state", run_as=account)
            hub.account, hub.person = account, person
            with hub.running():
                yield hub
    finally:
        subprocess.run(["userdel", "-r", account], capture_output=True, check=False)


def terminal_output(server_url, token, command, timeout=60):
    """Run ``command`` in a new JupyterLab terminal of a single-user server (REST + websocket);
    return what the terminal showed until the command ended."""
    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{server_url}api/terminals", headers=headers, timeout=60)
    r.raise_for_status()
    name = r.json()["name"]
    ws = websocket.create_connection(f"{server_url.replace('http://', 'ws://')}terminals/websocket/{name}",
                                     header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        ws.send(json.dumps(["stdin", f"{command}; echo END-$((40+2))\r"]))  # END-42 only in the output
        text, deadline = "", time.monotonic() + timeout
        while "END-42" not in text and time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                text += message[1]
        return text
    finally:
        ws.close()
        requests.delete(f"{server_url}api/terminals/{name}", headers=headers, timeout=60)


def run_code(server_url, token, code, timeout=120):
    """Run ``code`` in a new kernel of a single-user server (REST + websocket); return its stdout.

    Raises AssertionError with the traceback when the code fails.
    """
    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{server_url}api/kernels", json={}, headers=headers, timeout=60)
    r.raise_for_status()
    kernel_id = r.json()["id"]
    try:
        return execute(server_url, token, kernel_id, code, timeout)
    finally:
        requests.delete(f"{server_url}api/kernels/{kernel_id}", headers=headers, timeout=60)


def execute(server_url, token, kernel_id, code, timeout=120, stdout_only=False):
    """Run ``code`` in the server's kernel ``kernel_id`` over its websocket; return its output
    (streams and results; ``stdout_only``: what it printed to stdout). Raises AssertionError with
    the traceback when the code fails."""
    ws_url = f"{server_url.replace('http://', 'ws://')}api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out, error = [], None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and not (stdout_only and content["name"] != "stdout"):
                out.append(content["text"])
            elif kind == "execute_result" and not stdout_only:
                out.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                error = "\n".join(content.get("traceback", [])) or content.get("evalue")
            elif kind == "status" and content["execution_state"] == "idle":
                break
        else:
            raise TimeoutError(f"no result from the kernel within {timeout}s")
    finally:
        ws.close()
    if error:
        raise AssertionError(f"code failed in the kernel:\n{error}")
    return "".join(out)
