"""The marketplace's tornado handlers: the REST API of ``openapi.yaml`` and a plain page.

Inside a hub the service runs at ``/services/marketplace/``: browsers log in with hub OAuth
(:class:`jupyterhub.services.auth.HubOAuthenticated`), API calls send a JupyterHub token
(``Authorization: token ...``; users' servers send ``$DEEPVRE_MARKET_TOKEN``, a token for this
service alone, ``deepvre_hub.market_token``). Either needs the scope
``access:services!service=marketplace`` (the ``user`` role has it; a token made without it,
such as a server's own, answers 403). The caller's groups and admin flag are read from the hub with the
service's own token (the ``read:users``/``read:groups`` scopes of
:func:`deepvre.market.service.hub_role`), the user name percent-escaped in the URL. Standalone it
serves the local catalog to the local user, who proves it with the token the service wrote at
start to a file only they can read (:func:`deepvre.market.app.write_token`); any other local
process gets 401.

REST API (``openapi.yaml`` beside this file, served at ``api/openapi.yaml``):

- ``GET api/models?q=&use_case=&task=&library=&category=&visibility=&sort=&limit=&offset=``
- ``POST api/models`` (body: a tar of ``metadata.json`` and the artifact files) -> 201
- ``GET|PATCH api/models/NAME`` (PATCH ``{"visibility", "groups"}``)
- ``GET api/models/NAME/versions``, ``GET api/models/NAME/versions/VERSION``
- ``GET api/models/NAME/versions/VERSION/files/FILE`` (checked before it streams)
- ``POST api/models/NAME/deprecate`` ``{"version": null, "deprecated": true}``
- ``GET|POST api/models/NAME/versions/VERSION/verifications``: signed verification records (:mod:`.verifications`)
- ``GET api/facets``: ``{facet: {value: count}}`` of the models the caller sees (the search's filters)

The document is the contract (:mod:`.contract`): each request is checked against it before a
handler runs (a parameter or body it does not allow answers 400, naming each problem), every
answer an operation gives is listed in it, and a method it does not list answers 405 with
``Allow``. ``tests/market/test_contract.py`` runs schemathesis over it with every check. Errors
answer the status of :mod:`deepvre.errors` (:func:`api_status`).

A publish is crash-safe: the upload is received and unpacked (:mod:`.uploads`) in a locked
staging folder of the store, each blob is fsynced and renamed into place, and only then does one
index transaction make the version visible. What a killed service left (staging folders, see
:meth:`.Catalog.recover`) is removed at the next start; blobs stored before the kill are reused by
a republish.
"""

import asyncio
import concurrent.futures
import hmac
import json
import logging
import os
import time
from urllib.parse import quote

from tornado import httpclient, template, web

from ..errors import http_status
from . import contract, metadata, seed, verifications
from .catalog import Caller
from .contract import OPENAPI_FILE, BadRequest
from .service import SERVICE_NAME
from .store import IntegrityError, UploadTooLarge
from .uploads import unpack_upload

log = logging.getLogger("deepvre.market")

PAGE = template.Template(
    """<!doctype html><html><head><meta charset="utf-8"><title>deepvre marketplace</title></head>
<body><h1>Models</h1><p>Signed in as {{ user }}</p><ul>
{% for e in entries %}<li><b>{{ e["title"] }}</b> <code>{{ e["name"] }}:{{ e["version"] }}</code>
 ({{ e["visibility"] }}) - {{ e["summary"] }}</li>
{% end %}</ul></body></html>""",
    autoescape="xhtml_escape",
)


# The plain Python errors that are a caller's mistake here: the service's disk and lookups are its
# own, so a FileNotFoundError, KeyError or PermissionError inside it is a 500.
SERVICE_BUILTINS = ((FileExistsError, 409), (ValueError, 400))


def api_status(err):
    """The status the service answers for ``err`` (:func:`deepvre.errors.http_status`); a damaged
    artifact (:class:`IntegrityError`) is a 500 with its message, logged; None: a bug, a 500."""
    if isinstance(err, IntegrityError):
        return 500
    return http_status(err, SERVICE_BUILTINS)


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
        elif exc is not None and api_status(exc):
            payload["message"] = str(exc)
        self.finish(json.dumps(payload))

    def log_exception(self, typ, value, tb):
        if api_status(value) and not isinstance(value, IntegrityError):
            return
        super().log_exception(typ, value, tb)

    def _handle_request_exception(self, err):
        status = api_status(err)
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


# The most a request body may be before its caller is known (JSON bodies; refusals drained).
SMALL_BODY = 2 * 1024 * 1024


@web.stream_request_body
class ModelsHandler(BaseHandler):
    """GET: list and search. POST: publish (a tar of metadata.json plus the files).

    An upload is received and unpacked in a staging folder of the store (locked while this
    process lives: one a killed service left behind is removed at the next start).
    """

    route = "/api/models"

    # A request refused in prepare() is answered before tornado has read its body, and tornado
    # then closes the connection, without a "Connection: close" (even for a GET, which has no
    # body): the proxy's next request on that kept-alive socket, or one already on its way, hangs
    # up and the user sees the proxy's 503. So a refusal waits for the body (up to this size) and
    # is answered from get()/post(), on a connection that stays open.
    DRAIN_LIMIT = 1024 * 1024

    async def prepare(self):
        self.upload = self.staging = self.refused = None
        try:
            await super().prepare()
        except Exception as err:
            if not self.body_is_small():
                raise
            self.refused = err  # raised by answer_refusal(), once tornado has read the body
            return
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

    def body_is_small(self):
        """Whether the body (none, or a Content-Length up to DRAIN_LIMIT) can be read and dropped."""
        if "Transfer-Encoding" in self.request.headers:
            return False
        length = self.request.headers.get("Content-Length", "0")
        return length.isdigit() and int(length) <= self.DRAIN_LIMIT

    def answer_refusal(self):
        self.body_read = True  # tornado calls get()/post() once the whole body is in
        if self.refused is not None:
            raise self.refused

    def write_error(self, status_code, **kwargs):
        # Refused with a large body still unread: tornado closes the connection after this
        # answer. Saying so keeps the proxy from reusing that socket for its next request.
        if not getattr(self, "body_read", False):
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
        self.answer_refusal()
        p = self.params
        entries = await self.call(self.catalog.search, self.who, p.get("q", ""), _filters(p), p.get("sort"),
                                  p["limit"], p["offset"])
        self.json(entries)

    async def post(self):
        self.answer_refusal()
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


class FacetsHandler(BaseHandler):
    """GET: the values the caller's searches can filter by, with how many models have each."""

    route = "/api/facets"

    async def get(self):
        self.json(await self.call(self.catalog.facets, self.who))


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


class VerificationsHandler(BaseHandler):
    """GET: a version's verification records (signatures checked). POST: append the caller's, signed
    by the service (:mod:`.verifications`); records are never changed or deleted."""

    route = "/api/models/{name}/versions/{version}/verifications"

    async def get(self, name, version):
        self.json(await self.call(verifications.records, self.catalog, self.who, name, version))

    async def post(self, name, version):
        self.json(await self.call(verifications.add, self.catalog, self.who, name, version, self.payload), 201)


class DeprecateHandler(BaseHandler):
    route = "/api/models/{name}/deprecate"

    async def post(self, name):
        body = self.payload or {}
        entry = await self.call(self.catalog.deprecate, self.who, name, body.get("version"), body.get("deprecated", True))
        self.json(entry)


class StatusHandler(BaseHandler):
    """What the service is doing besides answering: the base model's seed (:mod:`.seed`)."""

    route = "/api/status"

    def get(self):
        path = self.settings.get("status_file")
        self.json({"seed": seed.status(path) if path else seed.status("")})


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
             standalone_token=None, status_file=None, tryit_timeout=None):
    """The tornado application. ``standalone_user``: no hub; whoever sends ``standalone_token``
    (required with it) is that user. ``tryit_timeout``: seconds a try-it request waits for the
    model's service (default :data:`deepvre.market.trypage.TIMEOUT_S`).

    ``cookie_secret``: the same in every process of one service (else a browser's login cookie
    from one process is refused by the next); default: a random one.
    """
    handlers = [
        (r"api/models/?", ModelsHandler),
        (r"api/models/([^/]+)/?", ModelHandler),
        (r"api/models/([^/]+)/versions/?", VersionsHandler),
        (r"api/models/([^/]+)/versions/([^/]+)/?", VersionHandler),
        (r"api/models/([^/]+)/versions/([^/]+)/files/([^/]+)", FileHandler),
        (r"api/models/([^/]+)/versions/([^/]+)/verifications/?", VerificationsHandler),
        (r"api/models/([^/]+)/deprecate/?", DeprecateHandler),
        (r"api/facets", FacetsHandler),
        (r"api/status", StatusHandler),
        (r"api/openapi.yaml", OpenAPIHandler),
        (r"/?", PageHandler),
    ]
    # SQLite and hashing release the GIL: more threads than cores only queue inside the pool
    executor = concurrent.futures.ThreadPoolExecutor(max(2, os.cpu_count() or 1), thread_name_prefix="catalog")
    settings = {"catalog": catalog, "standalone_user": standalone_user, "executor": executor,
                "status_file": status_file}
    from .trypage import routes as try_routes  # its handlers build on BaseHandler

    handlers[-1:-1] = try_routes(catalog, settings, tryit_timeout)  # api/tryit, try/NAME/VERSION (before the listing page)
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
        # the callback reads the login's next URL from this hub_auth (its default, HubOAuth.instance(), has none)
        handlers = mixed + [(r"oauth_callback", type("OAuthCallback", (HubOAuthCallbackHandler,), {"hub_auth": hub_auth}))]
        settings["hub_auth"] = hub_auth
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    return web.Application([(prefix + p.lstrip("/"), h) for p, h in handlers], **settings)
