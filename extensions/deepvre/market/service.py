"""The marketplace web service: a JupyterHub-managed service, or standalone for one user.

Inside a hub it runs at ``/services/marketplace/``: browsers log in with hub OAuth
(:class:`jupyterhub.services.auth.HubOAuthenticated`), API calls send a JupyterHub token
(``Authorization: token ...``; users' servers send ``$DEEPVRE_MARKET_TOKEN``, a token for this
service alone, ``deepvre_hub.market_token``). Either needs the scope
``access:services!service=marketplace`` (the ``user`` role has it; a token made without it,
such as a server's own, answers 403). The caller's groups and admin flag are read from the hub with the
service's own token (the ``read:users``/``read:groups`` scopes of :func:`hub_role`), the user name
percent-escaped in the URL. Standalone (``--standalone``) it serves the local catalog to the local
user, who proves it with the token the service writes at start to a file only they can read
(``--token-file``); any other local process gets 401.

REST API (``openapi.yaml`` beside this file, served at ``api/openapi.yaml``):

- ``GET api/models?q=&use_case=&task=&library=&category=&visibility=&sort=&limit=&offset=``
- ``POST api/models`` (body: a tar of ``metadata.json`` and the artifact files) -> 201
- ``GET|PATCH api/models/NAME`` (PATCH ``{"visibility", "groups"}``)
- ``GET api/models/NAME/versions``, ``GET api/models/NAME/versions/VERSION``
- ``GET api/models/NAME/versions/VERSION/files/FILE`` (checked before it streams)
- ``POST api/models/NAME/deprecate`` ``{"version": null, "deprecated": true}``

The document is the contract (:mod:`.contract`): each request is checked against it before a
handler runs (a parameter or body it does not allow answers 400, naming each problem), every
answer an operation gives is listed in it, and a method it does not list answers 405 with
``Allow``. ``tests/market/test_contract.py`` runs schemathesis over it with every check.

A publish is crash-safe: the upload is received and unpacked in a locked staging folder of the
store, each blob is fsynced and renamed into place, and only then does one index transaction make
the version visible. What a killed service left (staging folders, see :meth:`.Catalog.recover`)
is removed at the next start; blobs stored before the kill are reused by a republish.

Processes: one by default, with a thread pool per core (SQLite releases the GIL), so that every
request waits in one queue; ``marketplace.processes`` (:class:`ServiceSettings`) adds processes
for throughput on larger machines, at the cost of a queue per process (a kept-alive connection
stays with the process that accepted it). The
socket is bound once, then tornado's ``fork_processes`` forks the children, each with its own
catalog (SQLAlchemy engine) made after the fork; SQLite runs in WAL mode, so readers do not block
each other. tornado restarts a child that dies; the parent forwards SIGTERM/SIGINT to the children
and exits 0 once they have stopped.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import hmac
import json
import logging
import os
import signal
import socket
import sys
import tarfile
import time
from pathlib import Path
from urllib.parse import quote

from tornado import httpclient, httpserver, ioloop, netutil, process, template, web
from traitlets import Integer
from traitlets.config import Configurable

from . import contract, metadata
from .catalog import Caller, Catalog, Conflict, Forbidden, NotFound
from .contract import OPENAPI_FILE, BadRequest
from .store import IntegrityError, UploadTooLarge

log = logging.getLogger("deepvre.market")
SERVICE_NAME = "marketplace"
DEFAULT_PORT = 10101
# An upload's limits before anything is unpacked: members, and the size of metadata.json.
MAX_MEMBERS = 1000
METADATA_LIMIT = 1024 * 1024

PAGE = template.Template(
    """<!doctype html><html><head><meta charset="utf-8"><title>deepvre marketplace</title></head>
<body><h1>Models</h1><p>Signed in as {{ user }}</p><ul>
{% for e in entries %}<li><b>{{ e["title"] }}</b> <code>{{ e["name"] }}:{{ e["version"] }}</code>
 ({{ e["visibility"] }}) - {{ e["summary"] }}</li>
{% end %}</ul></body></html>""",
    autoescape="xhtml_escape",
)


def error_status(err):
    """HTTP status and message for a catalog exception (None: not ours)."""
    for kind, status in (
        (NotFound, 404), (Forbidden, 403), (Conflict, 409), (metadata.MetadataError, 422),
        (UploadTooLarge, 413), (IntegrityError, 500), (FileExistsError, 409), (ValueError, 400),
    ):
        if isinstance(err, kind):
            return status
    return None


# -- hub integration (pure builders, called by hub/jupyterhub_config.py) -----------------------


_chosen_port = None


def service_port(settings):
    """The configured port, else one free loopback port chosen once per process (the hub's)."""
    global _chosen_port
    port = ((settings or {}).get("marketplace") or {}).get("port")
    if port:
        return int(port)
    if _chosen_port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            _chosen_port = s.getsockname()[1]
    return _chosen_port


DATABASE_URL_ENV = "DEEPVRE_MARKET_DATABASE_URL"


def hub_service(settings, state_dir=None):
    """The ``c.JupyterHub.services`` entry that runs the marketplace under the hub.

    The catalog lives under ``<state_dir>/marketplace`` (the hub's state; default
    ``$DEEPVRE_STATE_DIR``) unless the ``marketplace:`` settings name a database and store.
    """
    section = (settings or {}).get("marketplace") or {}
    command = [sys.executable, "-m", "deepvre.market.service"]
    for key in ("store_url", "upload_limit", "processes"):
        if section.get(key):
            command += [f"--{key.replace('_', '-')}", str(section[key])]
    port = service_port(settings)
    environment = {}
    if section.get("database_url"):  # may hold a password: other accounts can read a command line
        environment[DATABASE_URL_ENV] = section["database_url"]
    state_dir = state_dir or os.environ.get("DEEPVRE_STATE_DIR")
    if state_dir:
        environment["DEEPVRE_MARKET_DIR"] = str(Path(state_dir) / "marketplace")
    elif os.environ.get("DEEPVRE_MARKET_DIR"):
        environment["DEEPVRE_MARKET_DIR"] = os.environ["DEEPVRE_MARKET_DIR"]
    return {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{port}",
        "command": command + ["--port", str(port)],
        "oauth_no_confirm": True,
        "display": True,
        "environment": environment,
    }


def hub_role(settings=None):
    """The ``c.JupyterHub.load_roles`` entry for the service: read users and their groups."""
    return {
        "name": "deepvre-marketplace",
        "description": "The marketplace reads who is asking: their groups and admin flag.",
        "scopes": ["read:users", "read:users:groups", "read:groups"],
        "services": [SERVICE_NAME],
    }


def user_scopes(settings=None):
    """Scopes to add to the hub's ``user`` role so that browsers may open the marketplace."""
    return [f"access:services!service={SERVICE_NAME}"]


def singleuser_environment(settings):
    """Environment for the users' servers: where the client finds the service."""
    return {"DEEPVRE_MARKET_URL": f"http://127.0.0.1:{service_port(settings)}/services/{SERVICE_NAME}/"}


# -- handlers ------------------------------------------------------------------------------------


class BaseHandler(web.RequestHandler):
    """An API handler: ``route`` is its path in ``openapi.yaml``, and every request is checked
    against that document (credentials first, then parameters and JSON body) before it runs."""

    route = None

    @property
    def catalog(self):
        return self.settings["catalog"]

    async def prepare(self):
        op = contract.operation(self.route, self.request.method) if self.route else None
        if op is None:  # an undocumented method: tornado answers 405 (write_error adds Allow)
            return
        self.who = await self.caller() if op.secured else None
        names = contract.path_names(self.route)
        self.params = contract.parameters(op, dict(zip(names, self.path_args)), self.request.query_arguments)
        self.payload = contract.json_body(op, self.request.body) if op.body is not None else None

    async def call(self, func, *args, **kwargs):
        """Run a (blocking) catalog call in the catalog's thread pool (one thread per core)."""
        return await asyncio.get_running_loop().run_in_executor(self.settings["executor"], lambda: func(*args, **kwargs))

    async def caller(self):
        """The :class:`Caller`, or a 401 error (403: a token without the service's access scope)."""
        if self.settings.get("standalone_user"):
            if not self.standalone_token_ok():
                raise web.HTTPError(401, "the standalone marketplace needs its token (Authorization: token ...)")
            return Caller(self.settings["standalone_user"], (), True)
        user = self.current_user
        if not user:
            if self.hub_auth.get_user(self):  # known to the hub, but HubAuthenticated refused it
                raise web.HTTPError(403, f"the token lacks the scope {sorted(self.hub_auth.access_scopes)[0]}")
            raise web.HTTPError(401, "a JupyterHub token or login is required")
        if user.get("kind", "user") != "user":  # a service token: reads public models only
            return Caller(f"service:{user['name']}", (), False)
        return await self.settings["hub_users"].lookup(user)

    def standalone_token_ok(self):
        """Standalone: the request carries the service's token (header, or ``?token=`` for a browser)."""
        header = self.request.headers.get("Authorization", "")
        given = header[len("token "):].strip() if header.lower().startswith("token ") else ""
        given = given or self.get_query_argument("token", "")
        return hmac.compare_digest(given.encode(), self.settings["standalone_token"].encode())

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        payload = {"status": status_code, "message": message}
        if status_code == 405:  # the methods this handler has (for an API one: those openapi.yaml lists)
            unimplemented = web.RequestHandler._unimplemented_method
            self.set_header("Allow", ", ".join(m for m in self.SUPPORTED_METHODS
                                               if getattr(type(self), m.lower(), unimplemented) is not unimplemented))
        if isinstance(exc, web.HTTPError) and exc.log_message:
            payload["message"] = exc.log_message % exc.args if exc.args else exc.log_message
        if isinstance(exc, (metadata.MetadataError, BadRequest)):
            payload["errors"] = exc.errors
            payload["message"] = "; ".join(exc.errors)
        elif exc is not None and error_status(exc):
            payload["message"] = str(exc)
        self.finish(json.dumps(payload))

    def log_exception(self, typ, value, tb):
        if error_status(value) and not isinstance(value, IntegrityError):
            return
        super().log_exception(typ, value, tb)

    def _handle_request_exception(self, err):
        status = error_status(err)
        if status and not isinstance(err, web.HTTPError):
            if isinstance(err, IntegrityError):
                log.error("integrity check failed: %s", err)
            if self._headers_written:
                self.request.connection.close()
                return
            self.send_error(status, exc_info=(type(err), err, err.__traceback__))
            return
        super()._handle_request_exception(err)

    def json(self, data, status=200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, separators=(",", ":")))


class HubUsers:
    """Groups and admin flag of hub users, from the hub API with the service's token (cached)."""

    def __init__(self, api_url, token, max_age=30):
        self.api_url, self.token, self.max_age = api_url.rstrip("/"), token, max_age
        self.cache = {}

    async def lookup(self, model):
        name = model["name"]
        hit = self.cache.get(name)
        if hit and time.monotonic() - hit[0] < self.max_age:
            return hit[1]
        client = httpclient.AsyncHTTPClient()
        # escaped: a name with '?', '#' or '/' must never reach another user's record
        resp = await client.fetch(
            f"{self.api_url}/users/{quote(name, safe='')}", headers={"Authorization": f"token {self.token}"},
            raise_error=False,
        )
        info = json.loads(resp.body) if resp.code == 200 else model
        if info.get("name") != name:  # not this user's record: trust nothing in it
            info = model
        caller = Caller(name, tuple(info.get("groups") or ()), bool(info.get("admin")))
        self.cache[name] = (time.monotonic(), caller)
        return caller


def _filters(params):
    keys = ("use_case", "task", "library", "category", "visibility", "owner", "deprecated")
    return {k: params[k] for k in keys if params.get(k)}


@web.stream_request_body
class ModelsHandler(BaseHandler):
    """GET: list and search. POST: publish (a tar of metadata.json plus the files).

    An upload is received and unpacked in a staging folder of the store (locked while this
    process lives: one a killed service left behind is removed at the next start).
    """

    route = "/api/models"

    async def prepare(self):
        self.upload = self.staging = None
        await super().prepare()
        if self.request.method != "POST":
            return
        # An oversized body is read and dropped, then answered 413: closing the connection early
        # would reach the user as the proxy's 503 instead.
        length = int(self.request.headers.get("Content-Length", 0) or 0)
        self.request.connection.set_max_body_size(max(length, self.catalog.upload_limit) + 1024 * 1024)
        self.received = 0
        self.staging = self.catalog.store.staging()
        self.upload = open(self.staging.path / "upload.tar", "wb")

    def too_big(self):
        return self.received > self.catalog.upload_limit + 1024 * 1024

    def write_error(self, status_code, **kwargs):
        # Refused before post() (credentials, parameters): tornado drops the unread body and closes
        # the connection after this answer. Saying so keeps the proxy from reusing that socket for
        # its next request, which would then fail as a 503.
        if self.request.method == "POST" and not getattr(self, "body_read", False):
            self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)

    def data_received(self, chunk):
        if self.upload is None:
            return
        self.received += len(chunk)
        if not self.too_big():
            self.upload.write(chunk)

    def on_finish(self):
        self._release()

    def on_connection_close(self):
        if not getattr(self, "publishing", False):  # else post() releases once the publish is over
            self._release()

    def _release(self):
        if getattr(self, "upload", None) is not None:
            self.upload.close()
        if getattr(self, "staging", None) is not None:
            self.staging.close()
        self.upload = self.staging = None

    async def get(self):
        p = self.params
        entries = await self.call(self.catalog.search, self.who, p.get("q", ""), _filters(p), p.get("sort"),
                                  p["limit"], p["offset"])
        self.json(entries)

    async def post(self):
        self.body_read = True  # tornado calls post() once the whole body is in
        if self.too_big():
            raise UploadTooLarge(f"upload over the limit of {self.catalog.upload_limit} bytes")
        self.upload.close()
        self.publishing = True
        try:
            folder = self.staging.path / "files"
            folder.mkdir()
            document, files = await self.call(unpack_upload, self.staging.path / "upload.tar", folder,
                                              self.catalog.upload_limit)
            entry = await self.call(self.catalog.publish, document, files, self.who)
        finally:
            self._release()
        where = "/".join(quote(part, safe="") for part in (entry["name"], "versions", entry["version"]))
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{where}")
        self.json(entry, 201)


def upload_members(archive, limit):
    """The members of an uploaded tar, checked before anything is written: at most
    :data:`MAX_MEMBERS`, their expanded sizes (a sparse member's real size) at most ``limit`` in
    all. Raises :class:`UploadTooLarge`."""
    members, total = [], 0
    for member in archive:
        members.append(member)
        total += max(member.size, 0)
        if len(members) > MAX_MEMBERS:
            raise UploadTooLarge(f"upload: more than {MAX_MEMBERS} members")
        if total > limit:
            raise UploadTooLarge(f"upload: its files expand past the limit of {limit} bytes")
        if member.name == "metadata.json" and member.size > METADATA_LIMIT:
            raise UploadTooLarge(f"upload: metadata.json is over {METADATA_LIMIT} bytes")
    return members


def unpack_upload(tar_path, folder, limit):
    """``(document, {name: path})`` from an uploaded tar; names, kinds and sizes are checked before
    anything is written (only plain, non-sparse files; no links or devices)."""
    try:
        archive = tarfile.open(tar_path, "r:")
    except tarfile.TarError as err:
        raise metadata.MetadataError([f"upload: not a tar archive ({err})"]) from None
    with archive:
        try:
            members = upload_members(archive, limit)
        except tarfile.TarError as err:
            raise metadata.MetadataError([f"upload: not a tar archive ({err})"]) from None
        plain = [m for m in members if m.isreg() and not m.issparse()]
        problems = [f"upload: {m.name!r} is not a regular file" for m in members if m not in plain]
        names = [m.name for m in plain]
        problems += metadata.check_file_names([n for n in names if n != "metadata.json"])
        if "metadata.json" not in names:
            problems.append("upload: metadata.json is missing")
        if len(set(names)) < len(names):
            problems.append("upload: a file name appears twice")
        if problems:
            raise metadata.MetadataError(problems)
        files = {}
        for member in members:
            target = folder / member.name  # a checked plain name: stays in folder
            with archive.extractfile(member) as src, open(target, "wb") as out:
                left = member.size
                while left > 0 and (chunk := src.read(min(1 << 20, left))):
                    out.write(chunk)
                    left -= len(chunk)
            files[member.name] = target
    try:
        document = json.loads(files.pop("metadata.json").read_text())
    except (ValueError, RecursionError) as err:
        raise metadata.MetadataError([f"metadata.json: not JSON ({err})"]) from None
    return document, files


class ModelHandler(BaseHandler):
    route = "/api/models/{name}"

    async def get(self, name):
        self.json(await self.call(self.catalog.show, self.who, name, self.params.get("version")))

    async def patch(self, name):
        body = self.payload
        self.json(await self.call(self.catalog.set_visibility, self.who, name, body["visibility"], body.get("groups")))


class VersionsHandler(BaseHandler):
    route = "/api/models/{name}/versions"

    async def get(self, name):
        self.json(await self.call(self.catalog.versions, self.who, name))


class VersionHandler(BaseHandler):
    route = "/api/models/{name}/versions/{version}"

    async def get(self, name, version):
        self.json(await self.call(self.catalog.show, self.who, name, version))


class FileHandler(BaseHandler):
    """A download. The blob is checked (its recorded BLAKE3 digest, else sha256) before the first
    byte goes out (a corrupt blob answers 500, not a truncated file a proxy might keep open); the
    client checks it again."""

    route = "/api/models/{name}/versions/{version}/files/{file}"

    async def get(self, name, version, filename):
        info, chunks = await self.call(self.catalog.iter_file, self.who, name, version, filename)
        await self.call(lambda: [None for _ in chunks])  # raises IntegrityError on a mismatch
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(info["size"]))
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.set_header("X-Checksum-Sha256", info["sha256"])
        if info.get("blake3"):
            self.set_header("X-Checksum-Blake3", info["blake3"])
        store = self.catalog.store
        with store.fs.open(store.path(info["sha256"]), "rb") as src:
            while chunk := await self.call(src.read, 1 << 20):
                self.write(chunk)
                await self.flush()
        self.finish()


class DeprecateHandler(BaseHandler):
    route = "/api/models/{name}/deprecate"

    async def post(self, name):
        body = self.payload or {}
        entry = await self.call(self.catalog.deprecate, self.who, name, body.get("version"), body.get("deprecated", True))
        self.json(entry)


class OpenAPIHandler(BaseHandler):
    route = "/api/openapi.yaml"

    def get(self):
        self.set_header("Content-Type", "application/yaml")
        self.finish(OPENAPI_FILE.read_bytes())


class PageHandler(BaseHandler):
    """A plain listing for browsers (the Models panel of the lab extension is the real UI)."""

    async def get(self):
        if self.settings.get("standalone_user") and not self.standalone_token_ok():
            raise web.HTTPError(401, "the standalone marketplace needs its token (?token=...)")
        if not self.settings.get("standalone_user") and not self.current_user:
            self.redirect(self.get_login_url())
            return
        caller = await self.caller()
        entries = await self.call(self.catalog.search, caller, self.get_argument("q", ""))
        self.finish(PAGE.generate(user=caller.name, entries=entries))


def make_app(catalog, prefix="/", standalone_user=None, hub_api_url=None, hub_token=None, cookie_secret=None,
             standalone_token=None):
    """The tornado application. ``standalone_user``: no hub; whoever sends ``standalone_token``
    (required with it) is that user.

    ``cookie_secret``: the same in every process of one service (else a browser's login cookie
    from one process is refused by the next); default: a random one.
    """
    handlers = [
        (r"api/models/?", ModelsHandler),
        (r"api/models/([^/]+)/?", ModelHandler),
        (r"api/models/([^/]+)/versions/?", VersionsHandler),
        (r"api/models/([^/]+)/versions/([^/]+)/?", VersionHandler),
        (r"api/models/([^/]+)/versions/([^/]+)/files/([^/]+)", FileHandler),
        (r"api/models/([^/]+)/deprecate/?", DeprecateHandler),
        (r"api/openapi.yaml", OpenAPIHandler),
        (r"/?", PageHandler),
    ]
    # SQLite and hashing release the GIL: more threads than cores only queue inside the pool
    executor = concurrent.futures.ThreadPoolExecutor(max(2, os.cpu_count() or 1), thread_name_prefix="catalog")
    settings = {"catalog": catalog, "standalone_user": standalone_user, "executor": executor}
    if standalone_user is not None:
        if not standalone_token:
            raise ValueError("a standalone marketplace needs a token")
        settings["standalone_token"] = standalone_token
    else:
        from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated

        # a token (or login) without access to this service is refused (403), whatever its owner
        name = os.environ.get("JUPYTERHUB_SERVICE_NAME") or SERVICE_NAME
        hub_auth = HubOAuth(access_scopes={f"access:services!service={name}"}, cache_max_age=60)
        settings["cookie_secret"] = cookie_secret or os.urandom(32)
        settings["hub_users"] = HubUsers(hub_api_url or hub_auth.api_url, hub_token or hub_auth.api_token)
        mixed = []
        for pattern, handler in handlers:
            cls = type(handler.__name__, (HubOAuthenticated, handler), {"hub_auth": hub_auth})
            mixed.append((pattern, cls))
        handlers = mixed + [(r"oauth_callback", HubOAuthCallbackHandler)]
        settings["hub_auth"] = hub_auth
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    return web.Application([(prefix + p.lstrip("/"), h) for p, h in handlers], **settings)


class ServiceSettings(Configurable):
    """Settings of the service process (``marketplace:`` in the site settings)."""

    processes = Integer(
        1,
        config=True,
        help="Service processes sharing the port, e.g. 4. One process (the default) serves every "
        "request from one queue with a thread per core; more processes raise throughput (the "
        "Python part of a request holds the GIL) but each has its own queue, which lengthens the "
        "slowest answers (docs/benchmarks.md: p99 at concurrency 16 on 2 cores).",
    )


def forward_signals(parent_pid):
    """In the parent: SIGTERM/SIGINT go on to the children as SIGTERM; tornado's
    ``fork_processes`` then sees them exit normally and exits 0 itself."""
    import psutil

    def forward(signum, _frame):
        if os.getpid() != parent_pid:  # a child that has not installed its own handler yet
            sys.exit(0)
        log.info("%s: stopping the service processes", signal.Signals(signum).name)
        for child in psutil.Process().children():
            try:
                child.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)


def stop_on_signals(loop):
    """SIGTERM/SIGINT stop ``loop`` (a clean exit 0, no KeyboardInterrupt traceback)."""

    def stop(signum, _frame):
        loop.add_callback_from_signal(loop.stop)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    if sys.platform == "linux":  # a child outlives no parent killed with SIGKILL
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def write_token(path=None):
    """A fresh standalone token, written to ``path`` (default: ``standalone-token`` in the catalog
    folder) readable by this account only; returns it."""
    import secrets

    from deepvre.private_dirs import untrusted_parent

    from .catalog import default_root

    path = Path(path) if path else default_root() / "standalone-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    unsafe = untrusted_parent(path)
    if unsafe:  # someone else could swap the token file for one they can read
        raise SystemExit(f"--token-file {path}: the folder {unsafe} is another account's or writable by others")
    token = secrets.token_hex(32)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.replace(tmp, path)
    log.info("standalone: callers send the token in %s", path)
    return token


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deepvre.market.service", description=__doc__.split("\n")[0])
    parser.add_argument("--standalone", action="store_true", help="no hub: serve the local catalog to the local user")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: from $JUPYTERHUB_SERVICE_URL, else a free port")
    parser.add_argument("--database-url", default=os.environ.get(DATABASE_URL_ENV),
                        help=f"default: ${DATABASE_URL_ENV} (the hub passes it there: a command line is public)")
    parser.add_argument("--store-url")
    parser.add_argument("--upload-limit", type=int)
    parser.add_argument("--processes", type=int, help="service processes (default: 1)")
    parser.add_argument("--token-file", help="standalone: where to write the token callers must send "
                        "(mode 0600; default: standalone-token in the catalog folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s marketplace] %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # jupyterhub's import of alembic logs its plugins
    processes = args.processes or ServiceSettings().processes
    kwargs = {k: v for k, v in (("database_url", args.database_url), ("store_url", args.store_url), ("upload_limit", args.upload_limit)) if v}
    port = args.port
    if not port and os.environ.get("JUPYTERHUB_SERVICE_URL"):
        from urllib.parse import urlparse

        port = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"]).port
    # tables, indexes and the FTS catch-up once, before any fork; each process opens its own engine
    Catalog(**kwargs).engine.dispose()
    standalone_token = write_token(args.token_file) if args.standalone else None
    sockets = netutil.bind_sockets(port or 0, args.ip, family=socket.AF_INET)
    print(f"deepvre marketplace ({processes} process{'es' if processes > 1 else ''}) listening on "
          f"http://{args.ip}:{sockets[0].getsockname()[1]}", flush=True)  # the URL last: scripts read it
    cookie_secret = os.urandom(32)  # one for all processes
    if processes > 1:
        forward_signals(os.getpid())
        process.fork_processes(processes)  # returns in the children only
    catalog = Catalog(**kwargs)
    catalog.recover()  # what a killed process left (a sibling's live staging folders stay: locked)
    if args.standalone:
        import getpass

        app = make_app(catalog, "/", standalone_user=getpass.getuser(), standalone_token=standalone_token)
    else:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
        app = make_app(catalog, prefix, cookie_secret=cookie_secret)
    server = httpserver.HTTPServer(app, max_body_size=catalog.upload_limit + 1024 * 1024)
    server.add_sockets(sockets)
    loop = ioloop.IOLoop.current()
    stop_on_signals(loop)
    loop.start()
    server.stop()
    app.settings["executor"].shutdown(wait=False, cancel_futures=True)
    catalog.engine.dispose()


if __name__ == "__main__":
    main()
