"""The try-it page of a served model, and the registration API its services use (:mod:`.tryit`).

- ``POST api/tryit`` ``{name, version, address, base_path, try_token}``: a user's server offers
  its service of that version (201 with what may be shown of it: never the address or token).
  Before it is stored, the marketplace asks the service for the model's metadata with the token:
  an address that is not a DEEPaaS serving that model is refused (400). Every
  ``--tryit-check-interval`` seconds (:func:`watch`) each registration's service is asked again,
  and one whose address no longer answers (nothing listens, or whatever does lacks the proof) is
  dropped, so a crashed service's page says "not served" without waiting for a caller.
- ``DELETE api/tryit/NAME/VERSION``: the caller's service of it is gone (204; 404: none).
- ``GET try/NAME/VERSION``: the page (hub login; any user who may see that version, else 404),
  built from the version's input spec: an image upload with top-k bars, or an array form.
- ``POST try/NAME/VERSION/predict``: the page's form, forwarded to the service's
  ``.../v2/models/NAME/predict/`` (body up to the launcher's 32 MiB, answer up to 1 MiB, within
  the marketplace's ``--tryit-timeout``, default ``TIMEOUT_S``), answered with the service's JSON re-serialised (never its raw body). Requests are
  signed with the try token, which never leaves the marketplace, and every answer must carry the
  service's proof (:func:`deepvre.serving.launch.signed_nonce`); the service proves itself on a
  metadata request before the input goes out, and a registration whose address answers without
  the proof (the service ended, another process took its port) is dropped.

These routes are in ``openapi.yaml`` like the rest of the API (``route``): each request is
checked against it before the handler runs.

gradio (AI4OS's try-me) is not used: it is not in requirements.lock, and adding it rebuilds both
image lock layers in CI (about 16 min); a server-rendered page with a little script does the job.
"""

import hmac
import ipaddress
import json
import os
import secrets
import time
from urllib.parse import quote, urlparse

from tornado import httpclient, ioloop, template, web

from ..errors import NotFound
from ..serving.launch import PROOF_HEADER, try_signature
from .catalog import Caller
from .contract import BadRequest
from .handlers import BaseHandler, log
from .tryit import Registrations

UPLOAD_LIMIT = 32 * 2**20  # the launcher's own (deepvre.serving.launch.UPLOAD_LIMIT)
ANSWER_LIMIT = 2**20
TIMEOUT_S = 60  # default of MarketplaceApp.tryit_timeout (marketplace.tryit_timeout)
CHECK_INTERVAL_S = 30  # default of MarketplaceApp.tryit_check_interval (marketplace.tryit_check_interval)
DEFAULT_PORTS = (8000, 8001, 8081)  # configurable-http-proxy's public and API ports, the hub's


def platform_ports(environ=None, host=""):
    """Ports of the platform a service may not claim: the hub's API, this service's, the public URL's
    (``$JUPYTERHUB_*``), the port ``host`` (a request's Host) names, and the usual defaults (pure)."""
    environ = os.environ if environ is None else environ
    ports = set(DEFAULT_PORTS)
    for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_PUBLIC_HUB_URL"):
        try:
            port = urlparse(environ.get(key) or "").port
        except ValueError:
            port = None
        ports.add(port) if port else None
    try:
        port = urlparse(f"//{host}").port
    except ValueError:
        port = None
    ports.add(port) if port else None
    return ports


def model_url(address, base_path, name, rest=""):
    """``http://ADDRESS BASE/v2/models/NAME/REST`` (the name escaped; the base path is a URL path)."""
    return f"http://{address}{base_path}/v2/models/{quote(name, safe='')}/{rest}"


class NotTheService(Exception):
    """The address answered without the registered service's proof: the service ended, and
    whatever listens there now is not it."""


async def ask_service(row, method, rest="", body=None, content_type=None, timeout=TIMEOUT_S):
    """``(status, JSON)`` of the service of registration ``row``; ``(502|504, {"message"})`` when it
    does not answer JSON within the limits (``timeout`` seconds). Redirects are not followed. The request is signed with
    the try token, never sent, and the answer must carry the service's proof (else NotTheService)."""
    url = model_url(row.address, row.base_path, row.name, rest)
    nonce = f"{int(time.time())}.{secrets.token_hex(8)}"
    signature = try_signature(row.token, nonce, method, urlparse(url).path)
    client = httpclient.AsyncHTTPClient(force_instance=True, max_body_size=ANSWER_LIMIT)
    headers = {"Authorization": f"tryit {nonce} {signature}", "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        resp = await client.fetch(url, method=method, body=body,
                                  headers=headers, request_timeout=timeout, connect_timeout=min(10, timeout),
                                  follow_redirects=False, raise_error=False)
    except ConnectionRefusedError:  # nothing listens there any more: the service ended
        raise NotTheService(f"nothing listens at {row.address}, where {row.server_user}'s service was") from None
    except Exception as err:  # noqa: BLE001  (reset, too large, timed out: the page says so)
        timeout = isinstance(err, httpclient.HTTPClientError) and err.code == 599
        return (504 if timeout else 502), {"message": f"the model's service did not answer: {type(err).__name__}"}
    finally:
        client.close()
    if resp.code == 599:
        return 504, {"message": "the model's service did not answer in time"}
    proof = resp.headers.get(PROOF_HEADER, "")
    if not hmac.compare_digest(proof.encode(), try_signature(row.token, nonce, "answer", "").encode()):
        raise NotTheService(f"{row.address} answered without the proof of {row.server_user}'s service")
    try:
        data = json.loads(resp.body or b"")
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        data = None
    if not isinstance(data, dict):
        return 502, {"message": f"the model's service answered {resp.code} without JSON"}
    if resp.code == 400:
        return 400, {"message": str(data.get("message", "bad input"))[:2000]}
    if resp.code != 200:
        return 502, {"message": f"the model's service answered {resp.code}"}
    return 200, data


async def check_registrations(registrations, executor, timeout):
    """Ask every registered service for its model's metadata (signed, as before a forward) and drop
    the registrations whose service is gone (:class:`NotTheService`: refused, or no proof); a
    service that is slow or answers an error keeps its registration. Returns the dropped rows."""
    loop = ioloop.IOLoop.current()
    dropped = []
    for row in await loop.run_in_executor(executor, registrations.all):
        try:
            await ask_service(row, "GET", timeout=timeout)
        except NotTheService as err:
            if await loop.run_in_executor(executor, registrations.drop, row):
                log.warning("try-it: %s; its registration is dropped", err)
                dropped.append(row)
    return dropped


def watch(app, interval):
    """Start :func:`check_registrations` every ``interval`` seconds on this process's loop (0: never);
    returns the PeriodicCallback, or None."""
    if not interval or interval <= 0:
        return None
    settings = app.settings
    running = []

    async def check():
        if running:  # the last round still waits on a slow service
            return
        running.append(1)
        try:
            await check_registrations(settings["tryit"], settings["executor"], min(10.0, settings["tryit_timeout"]))
        except Exception:  # noqa: BLE001  (the database or the loop: the next round tries again)
            log.exception("try-it: checking the registered services failed")
        finally:
            running.clear()

    callback = ioloop.PeriodicCallback(check, interval * 1000, jitter=0.1)
    callback.start()
    return callback


class TryBase(BaseHandler):
    """The try-it routes of ``openapi.yaml``: each request is checked against it (:class:`BaseHandler`)."""

    @property
    def registrations(self):
        return self.settings["tryit"]

    async def ask(self, row, method, rest="", body=None, content_type=None):
        """:func:`ask_service` within this marketplace's try-it timeout."""
        return await ask_service(row, method, rest, body, content_type, self.settings["tryit_timeout"])

    async def server_hosts(self, caller, address):
        """The hosts of ``caller``'s servers as the hub routes them (``GET api/proxy``), only asked for
        a non-loopback ``address``; none when the hub does not say (this service lacks its scope)."""
        host = address.rsplit(":", 1)[0].strip("[]")
        try:
            if ipaddress.ip_address(host).is_loopback:
                return ()
        except ValueError:
            return ()
        hub = self.settings.get("hub_users")
        if hub is None:
            return ()
        resp = await httpclient.AsyncHTTPClient().fetch(f"{hub.api_url}/proxy", headers={"Authorization": f"token {hub.token}"},
                                                        raise_error=False, request_timeout=30)
        if resp.code != 200:
            log.warning("try-it: the hub's routes are not readable (%s): non-loopback services are refused", resp.code)
            return ()
        routes = json.loads(resp.body).values()
        return tuple(urlparse(r.get("target", "")).hostname for r in routes
                     if (r.get("data") or {}).get("user") == caller.name and r.get("target"))


class RegisterHandler(TryBase):
    route = "/api/tryit"

    async def post(self):
        who, body = self.who, self.payload  # checked against openapi.yaml: the five strings
        hosts = await self.server_hosts(who, body["address"])
        ports = platform_ports(host=self.request.host)
        entry = await self.call(self.registrations.check, who, body["name"], body["version"], body["address"],
                                body["base_path"], body["try_token"], hosts, ports)
        row = self.registrations.row(who, entry, body["address"], body["base_path"], body["try_token"])
        try:
            status, meta = await self.ask(row, "GET")
        except NotTheService:
            status, meta = 502, {}
        if status != 200 or meta.get("name") != entry["name"] or meta.get("version") != entry["version"]:
            raise web.HTTPError(400, f"{body['address']} did not answer as the DEEPaaS service of {entry['name']} "
                                "with this try_token")
        self.json(await self.call(self.registrations.register, who, entry, body["address"], body["base_path"],
                                  body["try_token"]), 201)


class RegistrationHandler(TryBase):
    route = "/api/tryit/{name}/{version}"

    async def delete(self, name, version):
        if not await self.call(self.registrations.deregister, self.who, name, version):
            raise NotFound(f"you offer no try-it service of {name} {version}")
        self.set_status(204)
        self.finish()


PAGE = template.Template(
    """<!doctype html><html><head><meta charset="utf-8"><title>Try {{ entry["name"] }} {{ entry["version"] }}</title>
<style nonce="{{ nonce }}">
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
.note{color:#555;font-size:.9rem}.error{color:#b00020}
.bar{display:grid;grid-template-columns:14rem 1fr 4rem;gap:.5rem;align-items:center;margin:.25rem 0}
.bar .fill{background:#1976d2;height:1rem;border-radius:2px}.bar .track{background:#e3e8ef;border-radius:2px}
textarea{width:100%;font-family:monospace}img{max-width:16rem;display:block;margin:.5rem 0}
</style></head><body data-testid="tryit-page">
<h1>Try {{ entry["title"] or entry["name"] }}</h1>
<p><code>{{ entry["name"] }}:{{ entry["version"] }}</code> by {{ entry["owner"] }} ({{ entry["visibility"] }}).
 {{ entry["summary"] }}</p>
<p class="note">Signed in as {{ user }}.</p>
{% if service %}
<p class="note" data-testid="tryit-service">Answered by the model service of <b>{{ service["server_user"] }}</b>:
 what you send here goes to that service (through this marketplace), and is not kept.</p>
<form id="try-form" action="{{ predict }}" method="post" enctype="multipart/form-data" data-xsrf="{{ xsrf }}">
{% if kind == "image" %}
<label>Image <input type="file" name="data" accept="image/*" required data-testid="tryit-file"></label>
<img id="preview" alt="">
{% else %}
<label>Input as JSON, a list of samples of shape {{ shape }}<br>
<textarea name="array" rows="6" required data-testid="tryit-array"></textarea></label>
{% end %}
<label>Top <input type="number" name="top_k" min="1" max="{{ top_max }}" value="{{ min(5, top_max) }}"></label>
<button type="submit" data-testid="tryit-submit">Predict</button>
<p class="note">Uploads up to {{ limit_mib }} MiB.</p>
</form>
<p id="status" role="status" data-testid="tryit-status"></p>
<div id="answer" data-testid="tryit-answer"></div>
<script nonce="{{ nonce }}">
const form = document.getElementById("try-form"), status = document.getElementById("status");
const answer = document.getElementById("answer"), file = form.querySelector("input[type=file]");
if (file) file.addEventListener("change", () => {
  const img = document.getElementById("preview");
  if (file.files[0]) img.src = URL.createObjectURL(file.files[0]);
});
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (file && file.files[0] && file.files[0].size > {{ limit }}) {
    status.textContent = "The image is over {{ limit_mib }} MiB."; status.className = "error"; return;
  }
  status.textContent = "Asking the service…"; status.className = ""; answer.replaceChildren();
  let response, body;
  try {
    response = await fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
                                         headers: {"X-XSRFToken": form.dataset.xsrf, "Accept": "application/json"}});
    body = await response.json();
  } catch (err) {
    status.textContent = "No answer: " + err; status.className = "error"; return;
  }
  if (!response.ok) { status.textContent = body.message || ("Error " + response.status); status.className = "error"; return; }
  status.textContent = "The service's answer:";
  for (const p of ((body.predictions || [])[0] || [])) {
    const row = document.createElement("div"), label = document.createElement("span");
    const track = document.createElement("div"), fill = document.createElement("div"), value = document.createElement("span");
    row.className = "bar"; row.dataset.testid = "tryit-bar"; track.className = "track"; fill.className = "fill";
    label.textContent = String(p.label); value.textContent = (100 * Number(p.probability)).toFixed(1) + " %";
    fill.style.width = Math.max(0, Math.min(100, 100 * Number(p.probability))) + "%";
    track.append(fill); row.append(label, track, value); answer.append(row);
  }
});
</script>
{% else %}
<p data-testid="tryit-none"><b>Not served right now.</b> {{ who_can }} can start it: open the model in the Models
 panel of JupyterLab and press Serve; this page then answers through that service.</p>
{% end %}
</body></html>""",
    autoescape="xhtml_escape",
)


class TryPageHandler(TryBase):
    route = "/try/{name}/{version}"

    async def prepare(self):
        if self.request.method == "GET" and not self.settings.get("standalone_user") and not self.current_user:
            self.redirect(self.get_login_url())  # a browser without a hub login: the page after it
            return
        await super().prepare()

    async def get(self, name, version):
        who = self.who
        entry = await self.call(self.catalog.show, who, name, version)  # NotFound: 404 (a private name stays unknown)
        row = await self.call(self.registrations.answering, entry["name"], entry["version"], entry["owner"], who.name)
        spec = (entry["metadata"].get("deepvre") or {}).get("input") or {}
        labels = spec.get("labels") or (entry["metadata"].get("deepvre") or {}).get("labels") or []
        from .catalog import SYSTEM_ACCOUNT

        who_can = "Any user" if entry["owner"] == SYSTEM_ACCOUNT else f"Its owner, {entry['owner']},"
        nonce = secrets.token_urlsafe(16)
        self.set_header("Content-Security-Policy", f"default-src 'none'; script-src 'nonce-{nonce}'; "
                        f"style-src 'nonce-{nonce}'; img-src blob:; connect-src 'self'; form-action 'self'; "
                        "frame-ancestors 'self'; base-uri 'none'")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(PAGE.generate(
            entry=entry, user=who.name, service=Registrations.public(row) if row else None, nonce=nonce,
            kind=spec.get("kind", "array"), shape=json.dumps(spec.get("shape")), top_max=max(1, min(len(labels) or 20, 20)),
            predict=self.request.path.rstrip("/") + "/predict", xsrf=self.xsrf_token.decode() if not
            self.settings.get("standalone_user") else "", limit=UPLOAD_LIMIT, limit_mib=UPLOAD_LIMIT // 2**20,
            who_can=who_can))

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = str(exc) if isinstance(exc, NotFound) else self._reason
        if status_code == 405:
            self.set_header("Allow", "GET")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(template.Template("<!doctype html><title>{{ s }}</title><h1>{{ s }}</h1><p>{{ m }}</p>",
                                      autoescape="xhtml_escape").generate(s=status_code, m=message))


@web.stream_request_body
class TryPredictHandler(TryBase):
    """The page's form, forwarded: the caller is checked before the body is read, which is capped."""

    route = "/try/{name}/{version}/predict"

    async def prepare(self):
        self.chunks, self.received, self.refused = [], 0, None
        try:
            await super().prepare()  # the caller, then the path (the body is a form: not checked there)
        except BadRequest as err:  # answered from post(), once the body is read: a refusal before it
            self.refused = err  # would close the connection, and the proxy's next request on it fails (503)
        length = self.request.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > UPLOAD_LIMIT:
            raise web.HTTPError(413, f"the upload must have a Content-Length of at most {UPLOAD_LIMIT} bytes")
        self.request.connection.set_max_body_size(UPLOAD_LIMIT)

    def data_received(self, chunk):
        self.received += len(chunk)
        if self.received <= UPLOAD_LIMIT and not self.refused:
            self.chunks.append(chunk)

    async def post(self, name, version):
        if self.refused:
            raise self.refused
        entry = await self.call(self.catalog.show, self.who, name, version)
        row = await self.call(self.registrations.answering, entry["name"], entry["version"], entry["owner"],
                              self.who.name)
        if row is None:
            raise NotFound(f"{entry['name']} {entry['version']} is not served right now")
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            raise web.HTTPError(400, "send the form: multipart/form-data")
        try:  # the service proves it is the registered one before it gets the caller's input
            status, data = await self.ask(row, "GET")
        except NotTheService as err:  # it ended and something else has its port: the registration goes
            log.warning("try-it: %s; its registration is dropped", err)
            await self.call(self.registrations.deregister, Caller(row.server_user), row.name, row.version)
            status, data = 502, {"message": f"{row.server_user}'s service of {row.name} {row.version} is gone"}
        if status == 200:
            try:
                status, data = await self.ask(row, "POST", "predict/", b"".join(self.chunks), content_type)
            except NotTheService:  # proven a moment ago: an answer without its proof is only refused
                status, data = 502, {"message": "the model's service gave an answer without its proof"}
        self.json(data, status)


def routes(catalog, settings, timeout=None):
    """The try-it routes for :func:`deepvre.market.handlers.make_app`; puts the registrations and
    the forwarding ``timeout`` (seconds; default ``TIMEOUT_S``) in ``settings``. The periodic
    check of the registered services is :func:`watch`'s, started by the service process."""
    settings["tryit"] = Registrations(catalog)
    settings["tryit_timeout"] = float(timeout or TIMEOUT_S)
    return [
        (r"api/tryit", RegisterHandler),
        (r"api/tryit/([^/]+)/([^/]+)", RegistrationHandler),
        (r"try/([^/]+)/([^/]+)/predict", TryPredictHandler),
        (r"try/([^/]+)/([^/]+)/?", TryPageHandler),
    ]
