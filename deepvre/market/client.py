"""The one marketplace client: the CLI, notebooks, the server extension and the DEEPaaS adapter use it.

:func:`connect` picks the transport:

- inside a hub (``$DEEPVRE_MARKET_URL`` or an explicit ``url``, with ``$DEEPVRE_MARKET_TOKEN``):
  :class:`HTTPMarket`, the REST API with ``Authorization: token ...``;
- otherwise :class:`LocalMarket`, the local catalog opened directly, as the local user.

Inside a hub (``$JUPYTERHUB_API_TOKEN`` set) there is no silent fallback: without
``$DEEPVRE_MARKET_URL``, or when the marketplace does not answer, :func:`connect` raises
:class:`~deepvre.errors.Unavailable` rather than hand out a private catalog nobody else sees.

Both have the same methods: ``search``, ``facets``, ``show``, ``versions``, ``pull``, ``publish``,
``deprecate``, ``set_visibility``, ``verifications`` and ``add_verification`` (the signed
records of :mod:`.verifications`). ``pull`` checks every file on both paths: against the BLAKE3
digest recorded at publish (``verify="blake3"``, sha256 for older entries) or its sha256 name
(``verify="sha256"``).
"""

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import quote

from ..errors import NotFound, Unavailable, for_status
from ..site.environment import MARKET_URL, Environment
from . import metadata
from .catalog import Caller, Catalog
from .store import IntegrityError, checker


def model_path(name, *rest):
    """``api/models/NAME/...`` with every part percent-escaped (a name with ``/``, ``?`` or ``#``
    stays one path segment)."""
    return "/".join(["api/models", *(quote(str(part), safe="") for part in (name, *rest))])


def in_hub(environ=None):
    """Whether this process runs in a hub's server (the hub gave it ``$JUPYTERHUB_API_TOKEN``)."""
    return bool((os.environ if environ is None else environ).get("JUPYTERHUB_API_TOKEN"))


# Marketplaces that answered a check in this process (a later outage: the requests' own errors).
_ANSWERED = set()


def connect(url=None, token=None, catalog=None):
    """A client for the marketplace at ``url`` (with ``token``), else the local catalog.

    Inside a hub, the hub's marketplace or :class:`~deepvre.errors.Unavailable`: none configured
    (``$DEEPVRE_MARKET_URL``), or it does not answer; an explicit ``catalog`` is local there too."""
    env = Environment()
    url = url or env.market_url
    # in a hub: the server's marketplace-only token (deepvre_hub.market_token), never the
    # server's own $JUPYTERHUB_API_TOKEN, which opens the user's server
    token = token or env.market_token
    if url:
        market = HTTPMarket(url, token)
        if in_hub() and market.url not in _ANSWERED:  # once per process: the panel connects per request
            market.check()
            _ANSWERED.add(market.url)
        return market
    if in_hub() and catalog is None:
        raise Unavailable(
            f"this server runs in a hub ($JUPYTERHUB_API_TOKEN is set) but has no marketplace: "
            f"${MARKET_URL} is unset. The hub gives it to every server it starts (deepvre's hub "
            f"settings or Kubernetes values); restart the server, or ask the hub's admin. (Outside a "
            f"hub the local catalog would open; inside one it would be private to this server.)")
    return LocalMarket(catalog)


def parse_ref(ref):
    """``name[:version]`` -> ``(name, version or None)``."""
    name, _, version = str(ref).partition(":")
    return name, (version or None)


def artifact_folder(path):
    """``(document, files)`` from a folder holding ``metadata.json``/``.yaml`` and the files."""
    path = Path(path)
    for candidate in ("metadata.json", "metadata.yaml", "metadata.yml"):
        if (path / candidate).is_file():
            document = metadata.load(path / candidate)
            break
    else:
        raise metadata.MetadataError([f"{path}: no metadata.json or metadata.yaml"])
    files = {p.name: p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith("metadata.")}
    return document, files


class LocalMarket:
    """The local catalog, as the local user (who curates it)."""

    def __init__(self, catalog=None, caller=None):
        self.catalog = catalog or Catalog()
        self.caller = caller or Caller.local()

    def search(self, query="", sort=None, limit=50, offset=0, **filters):
        return self.catalog.search(self.caller, query, filters, sort, limit, offset)

    def show(self, name, version=None):
        return self.catalog.show(self.caller, name, version)

    def facets(self):
        return self.catalog.facets(self.caller)

    def status(self):
        """A local catalog seeds nothing (``deepvre weights convert --publish`` fills it)."""
        from . import seed

        return {"seed": seed.status("")}

    def versions(self, name):
        return self.catalog.versions(self.caller, name)

    def pull(self, name, version, dest, overwrite=False, verify="blake3"):
        return self.catalog.pull(self.caller, name, version, dest, overwrite, verify)

    def read_file(self, entry, filename, verify="blake3"):
        """One file of the version ``entry`` (from :meth:`show`), checked, as bytes."""
        _, chunks = self.catalog.iter_file(self.caller, entry["name"], entry["version"], filename, verify)
        return b"".join(chunks)

    def publish(self, document, files, visibility=None, groups=None):
        return self.catalog.publish(document, files, self.caller, visibility, groups)

    def deprecate(self, name, version=None, deprecated=True):
        return self.catalog.deprecate(self.caller, name, version, deprecated)

    def set_visibility(self, name, visibility, groups=None):
        return self.catalog.set_visibility(self.caller, name, visibility, groups)

    def verifications(self, name, version):
        from . import verifications

        return verifications.records(self.catalog, self.caller, name, version)

    def add_verification(self, name, version, claim):
        from . import verifications

        return verifications.add(self.catalog, self.caller, name, version, claim)


class HTTPMarket:
    """The marketplace REST API (a hub service or a standalone server)."""

    def __init__(self, url, token=None, timeout=300):
        import requests

        self.url = url.rstrip("/") + "/"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"
        self.timeout = timeout

    def _unavailable(self, why):
        return Unavailable(f"the marketplace at {self.url} does not answer ({why}); it runs beside the "
                           f"hub, which may be restarting: try again, or ask the hub's admin")

    def check(self, timeout=10):
        """Raise :class:`~deepvre.errors.Unavailable` unless the marketplace answers (any answer
        of its own; a proxy's 5xx or no connection is none)."""
        import requests

        try:
            resp = self.session.get(self.url + "api/openapi.yaml", timeout=timeout)
        except requests.RequestException as err:
            raise self._unavailable(type(err).__name__) from None
        if resp.status_code >= 500:
            raise self._unavailable(f"HTTP {resp.status_code}")

    def _request(self, method, path, **kwargs):
        import requests

        try:
            resp = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as err:
            raise self._unavailable(type(err).__name__) from None
        if resp.status_code in (502, 503, 504):  # the proxy's answer while the service is down
            raise self._unavailable(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"message": resp.text[:500]}
            if resp.status_code == 422 or (resp.status_code != 400 and body.get("errors")):
                raise metadata.MetadataError(body.get("errors") or [body.get("message", "")])
            kind = for_status(resp.status_code)  # the class the service raised (deepvre.errors)
            raise kind(f"{resp.status_code}: {body.get('message', '')}")
        return resp

    def search(self, query="", sort=None, limit=50, offset=0, **filters):
        params = {"q": query, "limit": limit, "offset": offset, **filters}
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}  # as openapi.yaml says
        if sort:
            params["sort"] = sort
        return self._request("GET", "api/models", params=params).json()

    def show(self, name, version=None):
        params = {"version": version} if version else {}
        return self._request("GET", model_path(name), params=params).json()

    def versions(self, name):
        return self._request("GET", model_path(name, "versions")).json()

    def facets(self):
        return self._request("GET", "api/facets").json()

    def status(self):
        """What the service is doing: ``{"seed": {"state", "model", "message"}}`` (api/status)."""
        return self._request("GET", "api/status").json()

    def pull(self, name, version, dest, overwrite=False, verify="blake3"):
        """Download every file into ``dest``, checking it (see :func:`.store.checker`); nothing is
        left of a bad file."""
        entry = self.show(name, version)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for filename, info in entry["files"].items():
            if metadata.check_file_names([filename]):
                raise ValueError(f"refusing file name {filename!r}")
            target = dest / filename
            if target.exists() and not overwrite:
                raise FileExistsError(f"{target} exists (use overwrite)")
            self.download(name, entry["version"], filename, info, target, verify)
        (dest / "metadata.json").write_text(json.dumps(entry["metadata"], indent=2))
        return entry

    def read_file(self, entry, filename, verify="blake3"):
        """One file of the version ``entry`` (from :meth:`show`), checked, as bytes: one request,
        not the whole version."""
        info = entry["files"].get(filename)
        if info is None:
            raise NotFound(f"{entry['name']}:{entry['version']} has no file {filename!r}")
        with tempfile.TemporaryDirectory() as folder:
            return self.download(entry["name"], entry["version"], filename, info, Path(folder) / "file",
                                 verify).read_bytes()

    def download(self, name, version, filename, info, target, verify="blake3"):
        part = Path(f"{target}.part")
        digest, expected, algorithm = checker(info["sha256"], info.get("blake3"), verify)
        try:
            resp = self._request("GET", model_path(name, "versions", version, "files", filename), stream=True)
            with resp, open(part, "wb") as out:
                for chunk in resp.iter_content(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != expected:
                raise IntegrityError(f"{name}:{version}/{filename}: downloaded bytes do not match {algorithm} {expected}")
            os.replace(part, target)
        except Exception as err:
            if part.exists():
                part.unlink()
            import requests

            if isinstance(err, (requests.RequestException, RuntimeError)):  # cut off, or a 500 from a corrupt blob
                raise IntegrityError(f"{name}:{version}/{filename}: download failed ({err})") from err
            raise
        return target

    def publish(self, document, files, visibility=None, groups=None):
        document = json.loads(json.dumps(document))
        section = document.get(metadata.SECTION) if isinstance(document, dict) else None
        if isinstance(section, dict):
            if visibility:
                section["visibility"] = visibility
            if groups is not None:
                section["groups"] = list(groups)
        with tempfile.TemporaryFile() as body:
            with tarfile.open(fileobj=body, mode="w:") as archive:
                data = json.dumps(document).encode()
                info = tarfile.TarInfo("metadata.json")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
                for name, path in files.items():
                    archive.add(str(path), arcname=name, recursive=False)
            body.seek(0)
            headers = {"Content-Type": "application/x-tar"}
            return self._request("POST", "api/models", data=body, headers=headers).json()

    def deprecate(self, name, version=None, deprecated=True):
        return self._request("POST", model_path(name, "deprecate"), json={"version": version, "deprecated": deprecated}).json()

    def set_visibility(self, name, visibility, groups=None):
        return self._request("PATCH", model_path(name), json={"visibility": visibility, "groups": groups or []}).json()

    def verifications(self, name, version):
        return self._request("GET", model_path(name, "versions", version, "verifications")).json()

    def add_verification(self, name, version, claim):
        return self._request("POST", model_path(name, "versions", version, "verifications"), json=claim).json()
