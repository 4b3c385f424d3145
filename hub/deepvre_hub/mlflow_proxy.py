"""The MLflow service process (``python -m deepvre_hub.mlflow_proxy``), run by the hub with ``mlflow.enabled``.

It starts MLflow's own tracking server (``mlflow server --app-name basic-auth``) on a free loopback
port, with MLflow's basic-auth app: every request to that port needs an MLflow account's password,
and the default permission is NO_PERMISSIONS, so an account sees only the experiments it made
(or was given). The server's databases, its artifacts (``--serve-artifacts``: uploads and
downloads go through the server, never a path a user names) and the secrets live in ``--folder``
(``<state_dir>/mlflow``, 0700; secrets 0600).

In front of it this tornado service authenticates the hub user (HubOAuth: a browser's login, or a
token with ``access:services!service=mlflow``), makes that user an MLflow account of the same name
on first sight (its password an HMAC of the user name under the folder's secret, never stored or
shown), and forwards the UI and REST requests with that account's credentials. MLflow's account
management (users, roles, sign-up) is refused: the service owns the accounts. Pages get a small
script that sends JupyterHub's XSRF token with the UI's own requests (JupyterHub refuses a
cookie-authenticated ``fetch`` without it).

Every setting is a trait with help text (``--help-all``).
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from tornado import httpclient, web
from traitlets import Float, Integer, Unicode
from traitlets.config import Application

from deepvre.site.addresses import free_loopback_port

log = logging.getLogger("deepvre.mlflow")

ADMIN = "deepvre-admin"
SECRET, ADMIN_PASSWORD, AUTH_CONFIG = "secret", "admin_password", "basic_auth.ini"
SITE = str(Path(__file__).with_name("mlflow_site"))  # its sitecustomize: graphene on graphql-core 3.3
STARTED = "started"  # made once MLflow's server first answered: its databases are whole
# MLflow's account management and what could reach out: the service owns the accounts
REFUSED = re.compile(
    r"^(signup|admin|users/|(ajax-)?api/[23]\.0/mlflow/(users/(?!current(/permissions)?$)|roles/|gateway-proxy))"
)
# where an experiment gets its name (create, rename): the names under "<user>/" are that user's, for
# ``deepvre run`` logs to "<user>/<notebook>", found by name (another's experiment there would get the runs)
NAMING = re.compile(r"^(ajax-)?api/2\.0/mlflow/experiments/(create|update)$")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length", "content-encoding"}
# what a page of MLflow's UI gets before its own scripts: its fetches and XHRs carry the XSRF token
XSRF_SCRIPT = """<script>(function(){var t=%s;var f=window.fetch;
window.fetch=function(r,o){o=o||{};var h=new Headers(o.headers||(r instanceof Request?r.headers:{}));
h.set('X-XSRFToken',t);o.headers=h;return f.call(this,r,o);};
var s=XMLHttpRequest.prototype.send;XMLHttpRequest.prototype.send=function(b){
try{this.setRequestHeader('X-XSRFToken',t);}catch(e){}return s.call(this,b);};})();</script>"""


def private_file(path, make):
    """The text of ``path``, made 0600 with ``make()`` when missing (never readable by others)."""
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
    return path.read_text().strip()


def account_password(secret, user):
    """The MLflow password of hub user ``user``: derived, so the service stores none."""
    return hmac.new(secret.encode(), f"user:{user}".encode(), hashlib.sha256).hexdigest()


def foreign_name(user, body):
    """The experiment name in a create's or rename's JSON ``body`` (``name``, ``new_name``) that is
    not ``user``'s to take: one with a ``/`` that does not begin with ``user/``; else None."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None  # MLflow refuses it too
    for key in ("name", "new_name"):
        name = data.get(key) if isinstance(data, dict) else None
        if isinstance(name, str) and "/" in name and not name.startswith(f"{user}/"):
            return name
    return None


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def method_is_page(request):
    """A browser's page view (the OAuth round trip is for it; an API call gets 401)."""
    return request.method in ("GET", "HEAD") and request.headers.get("Sec-Fetch-Mode", "navigate") == "navigate"


class MLflowServer:
    """MLflow's server with the basic-auth app, on loopback, in a process group of its own."""

    def __init__(self, folder, port):
        self.folder, self.port = Path(folder), port
        self.url = f"http://127.0.0.1:{port}"
        self.process, self.ready = None, False

    def prepare(self):
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self.secret = private_file(self.folder / SECRET, lambda: secrets.token_hex(32))
        self.admin_password = private_file(self.folder / ADMIN_PASSWORD, lambda: secrets.token_urlsafe(32))
        # MLflow reads the admin's password from this file when it makes the account (first start)
        config = (f"[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                  f"database_uri = sqlite:///{self.folder / 'auth.sqlite'}\n"
                  f"admin_username = {ADMIN}\nadmin_password = {self.admin_password}\n"
                  "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        path = self.folder / AUTH_CONFIG
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(config)
        (self.folder / "artifacts").mkdir(mode=0o700, exist_ok=True)
        if not (self.folder / STARTED).exists():  # a first start cut short leaves half-made databases
            for name in ("mlflow.sqlite", "auth.sqlite"):  # that MLflow cannot migrate: nothing was in them yet
                if (self.folder / name).exists():
                    (self.folder / name).rename(self.folder / f"{name}.incomplete-{int(time.time())}")

    def start(self):
        self.prepare()
        command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                   "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.sqlite'}",
                   "--artifacts-destination", str(self.folder / "artifacts"), "--serve-artifacts"]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")},
               "HOME": str(self.folder), "MLFLOW_AUTH_CONFIG_PATH": str(self.folder / AUTH_CONFIG),
               "MLFLOW_FLASK_SERVER_SECRET_KEY": hmac.new(self.secret.encode(), b"flask", hashlib.sha256).hexdigest(),
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               "PYTHONPATH": os.pathsep.join(filter(None, [SITE, os.environ.get("PYTHONPATH")]))}
        log.info("starting MLflow's server on %s", self.url)
        self.process = subprocess.Popen(command, env=env, cwd=self.folder, start_new_session=True, umask=0o077)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    async def wait_ready(self, timeout):
        """Until the server answers (401 without credentials: its auth app is up)."""
        client = httpclient.AsyncHTTPClient()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"MLflow's server exited ({self.process.returncode}); see the log above")
            try:
                await client.fetch(f"{self.url}/health", request_timeout=5)
                return
            except httpclient.HTTPClientError:
                return  # it answers
            except OSError:
                await asyncio.sleep(1)
        raise RuntimeError(f"MLflow's server did not answer within {timeout:.0f} s")


class Accounts:
    """Hub users as MLflow accounts, made (or their password set again) once per process."""

    def __init__(self, server):
        self.server, self.ready = server, set()
        self.lock = asyncio.Lock()

    async def credentials(self, user):
        password = account_password(self.server.secret, user)
        if user not in self.ready:
            async with self.lock:
                if user not in self.ready:
                    await self._ensure(user, password)
                    self.ready.add(user)
        return basic(user, password)

    async def _ensure(self, user, password):
        if user == ADMIN:
            raise web.HTTPError(403, f"the MLflow account {ADMIN!r} is the service's own")
        client = httpclient.AsyncHTTPClient()
        admin = basic(ADMIN, self.server.admin_password)
        body = json.dumps({"username": user, "password": password})
        answer = await client.fetch(f"{self.server.url}/api/2.0/mlflow/users/create", method="POST", body=body,
                                    headers={"Authorization": admin, "Content-Type": "application/json"},
                                    raise_error=False, request_timeout=30)
        if answer.code == 200:
            log.info("made the MLflow account of %r", user)
            return
        # there already (an earlier start): the password may have been changed, so set it again
        answer = await client.fetch(f"{self.server.url}/api/2.0/mlflow/users/update-password", method="PATCH",
                                    body=body, headers={"Authorization": admin, "Content-Type": "application/json"},
                                    raise_error=False, request_timeout=30)
        if answer.code != 200:
            raise web.HTTPError(502, f"MLflow refused the account of {user!r}: {answer.code}")


def make_app(server, accounts, prefix, upload_limit):
    from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated

    name = os.environ.get("JUPYTERHUB_SERVICE_NAME") or "mlflow"
    hub_auth = HubOAuth(access_scopes={f"access:services!service={name}"}, cache_max_age=60)

    class Forward(HubOAuthenticated, web.RequestHandler):
        """Any path: the hub user's request, forwarded to MLflow as their own account."""

        SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

        def write_error(self, status_code, **kwargs):
            """The service's own refusals as MLflow's errors are: JSON with the reason (its UI shows it)."""
            err = (kwargs.get("exc_info") or (None, None))[1]
            message = getattr(err, "log_message", None) or self._reason
            code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 503: "TEMPORARILY_UNAVAILABLE"}.get(
                status_code, "INTERNAL_ERROR")
            self.finish({"error_code": code, "message": message})

        async def forward(self, path):
            user = self.current_user
            if not user and method_is_page(self.request) and "Authorization" not in self.request.headers:
                self.redirect(self.get_login_url())  # a browser: the hub's login, then back here
                return
            if not user:
                raise web.HTTPError(401, "a JupyterHub login or token with access to this service is required")
            if user.get("kind", "user") != "user":
                raise web.HTTPError(403, "MLflow accounts are for hub users, not services")
            if user["name"] == ADMIN:  # a hub user of that name must never get the admin's account
                raise web.HTTPError(403, f"the MLflow account {ADMIN!r} is the service's own; this hub user has none")
            if not server.ready:
                self.set_header("Retry-After", "10")
                raise web.HTTPError(503, "MLflow's server is starting; try again in a minute")
            raw = self.request.path[len(self.settings["service_prefix"]):]  # forwarded as it came
            route = re.sub(r"/+", "/", unquote(raw)).lstrip("/")
            if REFUSED.match(route):
                raise web.HTTPError(403, "MLflow's account management is the hub's")
            if NAMING.match(route) and (taken := foreign_name(user["name"], self.request.body)):
                raise web.HTTPError(403, f"experiment {taken!r}: a name with '/' begins with your own name "
                                    f"({user['name']}/...); the others are other users'")
            headers = {k: v for k, v in self.request.headers.get_all()
                       if k.lower() not in HOP_BY_HOP | {"authorization", "cookie", "host", "x-xsrftoken"}}
            headers["Authorization"] = await accounts.credentials(user["name"])
            query = f"?{self.request.query}" if self.request.query else ""
            method = self.request.method
            body = self.request.body if method in ("POST", "PUT", "PATCH") else None
            if body is None and method in ("POST", "PUT", "PATCH"):
                body = b""
            answer = await httpclient.AsyncHTTPClient().fetch(
                f"{server.url}/{raw}{query}", method=method, headers=headers, body=body,
                allow_nonstandard_methods=True, follow_redirects=False, raise_error=False,
                decompress_response=True, request_timeout=600)
            if answer.code == 599:
                raise web.HTTPError(502, f"MLflow's server did not answer: {answer.error}")
            self.set_status(answer.code, answer.reason)
            given = set()
            for key, value in answer.headers.get_all():  # MLflow's, replacing tornado's defaults (Content-Type)
                if key.lower() not in HOP_BY_HOP | {"set-cookie", "www-authenticate", "server"}:
                    (self.add_header if key.lower() in given else self.set_header)(key, value)
                    given.add(key.lower())
            content = answer.body or b""
            if answer.headers.get("Content-Type", "").startswith("text/html") and b"<head>" in content:
                token = json.dumps(self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token)
                content = content.replace(b"<head>", b"<head>" + (XSRF_SCRIPT % token).encode(), 1)
            if method != "HEAD":
                self.write(content)

        get = head = post = put = patch = delete = forward

    handlers = [
        (r"oauth_callback", type("OAuthCallback", (HubOAuthCallbackHandler,), {"hub_auth": hub_auth})),
        (r"(.*)", type("Forward", (Forward,), {"hub_auth": hub_auth})),
    ]
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    return web.Application([(prefix + p, h) for p, h in handlers], hub_auth=hub_auth, service_prefix=prefix,
                           cookie_secret=os.urandom(32), max_body_size=upload_limit)


class MLflowServiceApp(Application):
    """The hub's MLflow service."""

    name = "deepvre-mlflow"
    description = __doc__.split("\n")[0]

    folder = Unicode(config=True, help="The service's folder (made 0700): MLflow's databases, artifacts and the "
                     "secrets, e.g. /var/lib/deepvre/mlflow.")
    mlflow_port = Integer(0, config=True, help="The loopback port of MLflow's own server; 0: a free one.")
    start_timeout = Float(600, config=True, help="Seconds to wait for MLflow's server to answer at start.")
    upload_limit = Integer(1 << 30, config=True, help="The largest request body forwarded (artifact uploads), "
                           "in bytes.")
    aliases = {"folder": "MLflowServiceApp.folder", "mlflow-port": "MLflowServiceApp.mlflow_port",
               "start-timeout": "MLflowServiceApp.start_timeout", "upload-limit": "MLflowServiceApp.upload_limit"}

    def start(self):
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s deepvre-mlflow %(message)s")
        for name in ("deepvre.mlflow", "tornado.access"):  # not the INFO of every library it imports
            logging.getLogger(name).setLevel(logging.INFO)
        if not self.folder:
            self.exit("--folder is required")
        from deepvre.orphans import exit_with_parent

        exit_with_parent()  # a hub that dies without stopping its services leaves no MLflow server behind
        service_url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:0"))
        server = MLflowServer(self.folder, self.mlflow_port or free_loopback_port())
        server.start()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        def stop(*_):
            server.stop()
            loop.call_soon_threadsafe(loop.stop)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)

        async def when_ready():  # the hub wants the service's port at once: 503 until MLflow answers
            try:
                await server.wait_ready(self.start_timeout)
            except RuntimeError as err:
                log.error("%s", err)
                stop()
                return
            server.ready = True
            (server.folder / STARTED).touch(mode=0o600)
            log.info("MLflow's server answers; serving it at %s for the hub's users", service_url.geturl())

        try:
            app = make_app(server, Accounts(server), os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/mlflow/"),
                           self.upload_limit)
            app.listen(service_url.port, address=service_url.hostname or "127.0.0.1", max_body_size=self.upload_limit)
            loop.create_task(when_ready())
            loop.run_forever()
            if not server.ready:
                self.exit(1)
        finally:
            server.stop()


def main(argv=None):
    MLflowServiceApp.launch_instance(argv)


if __name__ == "__main__":
    main()
