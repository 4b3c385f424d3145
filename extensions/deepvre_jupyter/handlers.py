"""REST handlers under ``/deepvre/api/``: models, parameters, fine-tune, runs, preprocess, serve, publish.

Every handler is authenticated and checks ``_xsrf`` like the rest of Jupyter; every path in a
request is resolved inside the server's root directory (``paths.resolve``). Errors come back
as JSON ``{"message": ...}`` with the status of :mod:`deepvre.errors` (:func:`api_status`): 400 bad
input, 404 unknown, 409 exists, 413 too large, 422 invalid metadata, 503 back end missing.

Running a notebook someone else published (``POST runs`` with ``model``) needs the user's
confirmation, as Jupyter's notebook trust does: ``trust: {"owner": ..., "sha256": ...}`` matching
the catalog entry's owner and the notebook's sha256; otherwise 409 with both (and the concrete
version) to show. The notebook is read once per request (:func:`backends.training_snapshot`): the
bytes hashed are the bytes parameterized and run.
Model services are reached at ``deepvre/services/<id>/`` (:class:`ServiceProxy`), behind this
server's login.
"""

import functools
import json
import os
import tempfile

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

from deepvre import atomic
from deepvre.errors import Forbidden, Unauthenticated, http_status
from deepvre.runs import parameters

from . import backends, cards, paths, verifying
from .jobs import SERVICES_PATH


def api_status(err):
    """The HTTP status for an error a back end raised (:func:`deepvre.errors.http_status`), or None
    (a 500). Plain Python errors count too: here they come from the caller's paths and names.

    One exception: the marketplace refusing this server's token (:class:`Unauthenticated`, its
    401) is a 403 here: the browser is logged in, this server may not do it.
    """
    if isinstance(err, Unauthenticated):
        return Forbidden.status
    return http_status(err)


class TrustRequired(Exception):
    """A notebook another user published, not confirmed by the caller: 409 with its provenance."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def api(method):
    """Authenticated JSON endpoint: known errors become JSON with the back end's message."""

    @web.authenticated
    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            result = await method(self, *args, **kwargs)
        except web.HTTPError:
            raise
        except TrustRequired as err:
            self.set_status(409)
            self.finish(json.dumps({"message": str(err), "trust_required": True, **err.details}))
            return
        except Exception as err:
            code = api_status(err)
            if code is None:
                raise
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise web.HTTPError(code, message or type(err).__name__) from err
        if result is not None:
            self.finish(json.dumps(result, default=str))

    return wrapper


class Base(APIHandler):
    @property
    def ext(self):
        return self.settings["deepvre"]

    @property
    def root(self):
        return self.contents_manager.root_dir

    def body(self):
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as err:
            raise web.HTTPError(400, f"request body is not JSON: {err}") from err
        if not isinstance(data, dict):
            raise web.HTTPError(400, "request body must be a JSON object")
        return data

    def resolve(self, path, must_exist=False):
        return paths.resolve(self.root, path, must_exist=must_exist)

    def blocking(self, fn, *args, **kwargs):
        return IOLoop.current().run_in_executor(None, functools.partial(fn, *args, **kwargs))

    def runs_dir(self):
        return self.resolve(self.ext.runs_dir)

    async def model_notebook(self, name, version):
        """The model's training notebook (a :class:`backends.NotebookSnapshot`), fetched once."""
        return await self.blocking(backends.training_snapshot, name, version)

    def default_target(self, name, source):
        """Where Fine-tune writes the notebook when the user names no path: a free name in notebooks_dir."""
        folder = self.resolve(self.ext.notebooks_dir)
        base = os.path.basename(source).removesuffix(".ipynb")
        return paths.free_name(os.path.join(folder, f"{paths.safe_segment(name)}-{base}.ipynb"))


class Models(Base):
    @api
    async def get(self):
        q = {k: self.get_argument(k, "") for k in ("q", "use_case", "task", "category", "trainable")}
        trainable = {"": None, "true": True, "false": False}.get(q.pop("trainable").lower())
        records = await self.blocking(backends.search_models, q.pop("q"), trainable=trainable, **q)
        facets = await self.blocking(backends.facets)  # the filters' choices
        answer = {"models": [cards.model_card(r) for r in records], "facets": facets}
        if not facets.get("owner"):  # an empty catalog: is the hub still seeding its base model?
            answer["seed"] = await self.blocking(backends.seed_status)
        return answer


# Another user's files the model page reads whole into this server (and caches): larger ones are
# not read, so that a public model cannot fill the memory of every server that opens its page.
RUN_JSON_MAX = 2**20
FIGURES_NOTEBOOK_MAX = 32 * 2**20


def file_size(record, filename):
    return ((record.get("files") or {}).get(filename) or {}).get("size") or 0


class Model(Base):
    @api
    async def get(self, name):
        """The model page (:func:`cards.model_page`): details, badges, files, lineage, usage."""
        record = await self.blocking(backends.show_model, name, self.get_argument("version", None))
        run = await self.blocking(self.run_of, record)
        return cards.model_page(record, run, self.runs_dir(), self.root)

    @staticmethod
    def run_of(record):
        """The entry's ``run.json`` (the run that trained it), or None."""
        if "run.json" not in (record.get("files") or {}) or file_size(record, "run.json") > RUN_JSON_MAX:
            return None
        try:
            run = json.loads(backends.fetch_file(backends.market_client(), record, "run.json"))
        except ValueError:
            return None
        return run if isinstance(run, dict) else None


class ModelFigures(Base):
    @api
    async def get(self, name):
        """The plots in the outputs of the model's executed training notebook (PNG, base64)."""
        record = await self.blocking(backends.show_model, name, self.get_argument("version", None))
        notebook = ((record.get("metadata") or {}).get("deepvre") or {}).get("training", {}).get("notebook")
        if not notebook or notebook not in (record.get("files") or {}):
            return {"figures": [], "notebook": None}
        if file_size(record, notebook) > FIGURES_NOTEBOOK_MAX:
            return {"figures": [], "notebook": notebook,
                    "message": f"the notebook is over {FIGURES_NOTEBOOK_MAX // 2**20} MB: its plots are not read"}
        data = await self.blocking(backends.fetch_file, backends.market_client(), record, notebook)
        return {"figures": cards.notebook_figures(data), "notebook": notebook}


class ModelEnvironment(Base):
    @api
    async def get(self, name):
        """The version's recorded environment, this server's, what differs, and its verification records."""
        from deepvre.market.verifications import badge
        from deepvre.runs import platform

        record = await self.blocking(backends.show_model, name, self.get_argument("version", None))
        recorded = ((record.get("metadata") or {}).get("deepvre") or {}).get("environment")
        current = await self.blocking(platform.capture)
        found = await self.blocking(lambda: backends.market_client().verifications(name, record["version"]))
        return {"recorded": recorded, "current": current, "verifications": found, "badge": badge(found),
                "differences": platform.diff(recorded, current) if recorded else None,
                "verifying": verifying.state(name, record["version"])}


class ModelVerify(Base):
    @api
    async def post(self, name):
        """Start ``deepvre market verify`` of the version (another user's notebook: after the trust
        confirmation, as for a run); 202, and models/NAME/environment follows it."""
        body = self.body()
        snapshot = await self.model_notebook(name, body.get("version"))
        Runs.check_trust(self, name, snapshot, body.get("trust"))  # the same rule as a run's
        started = verifying.start(backends.market_client(), name, snapshot.version, self.runs_dir())
        self.set_status(202)
        return {"version": snapshot.version, "verifying": started}


class ModelParameters(Base):
    @api
    async def get(self, name):
        """The training notebook's parameters, and the path Fine-tune writes to by default."""
        nb = await self.model_notebook(name, self.get_argument("version", None))
        declared = await self.blocking(parameters.inspect, nb.data)
        return {"parameters": list(declared.values()),
                "path": paths.relative(self.root, self.default_target(name, nb.filename))}


class FineTune(Base):
    """Write the model's training notebook, parameterized, into the workspace; return its path."""

    @api
    async def post(self, name):
        body = self.body()
        version = body.get("version")
        path, _, _ = await self.fine_tune(name, version, body.get("parameters") or {}, body.get("path"))
        self.set_status(201)
        return {"path": paths.relative(self.root, path)}

    async def fine_tune(self, name, version, values, target=None, snapshot=None, scratch=None):
        """Write ``snapshot`` (default: the model's notebook, fetched now) with ``values`` injected,
        to ``target`` (in the workspace), else into the folder ``scratch`` (outside it: a batch run's
        copy, which the run keeps as its ``input.ipynb``), else to a free name in ``notebooks_dir``.

        Returns its path, the notebook's declared parameters and the checked values: a run of it
        starts from these, without reading or parameterizing the notebook again.
        """
        snapshot = snapshot or await self.model_notebook(name, version)
        declared = await self.blocking(parameters.inspect, snapshot.data)
        values = parameters.check(declared, values)
        if target:
            dest = self.resolve(target)
            if os.path.lexists(dest):
                raise FileExistsError(f"{target!r} already exists; choose another name")
        elif scratch:
            dest = os.path.join(scratch, os.path.basename(self.default_target(name, snapshot.filename)))
        else:
            dest = self.default_target(name, snapshot.filename)
        if not dest.endswith(".ipynb"):
            raise ValueError(f"the notebook path must end in .ipynb, not {target!r}")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        lineage = {"model": name, "version": snapshot.version}
        await self.blocking(parameters.inject, snapshot.data, dest, values, lineage)
        return dest, declared, values


class NotebookParameters(Base):
    @api
    async def get(self):
        nb = self.resolve(self.get_argument("path", None), must_exist=True)
        return {"parameters": list((await self.blocking(parameters.inspect, nb)).values())}


class Runs(FineTune):
    @api
    async def get(self):
        runs = await self.blocking(backends.list_runs, self.runs_dir())
        return {"runs": [cards.run_view(r, self.root) for r in runs]}

    @api
    async def post(self):
        """Start a detached run: of a workspace notebook (``path``) or of a model's notebook (``model``).

        A model's notebook is parameterized into a scratch folder, not the workspace, unless the
        request names a ``path``: the run keeps its copy (``input.ipynb``), so repeated runs leave
        no notebooks behind.
        """
        body = self.body()
        values = body.get("parameters") or {}
        with tempfile.TemporaryDirectory(prefix="deepvre-run-") as scratch:  # 0700, this request's own
            if body.get("model"):
                snapshot = await self.model_notebook(body["model"], body.get("version"))
                self.check_trust(body["model"], snapshot, body.get("trust"))
                nb, declared, values = await self.fine_tune(body["model"], body.get("version"), values,
                                                            body.get("path"), snapshot, scratch)
                injected = True
            else:  # the runner reads the notebook's parameters, checks the values and injects them
                nb, declared, injected = self.resolve(body.get("path"), must_exist=True), None, False
            run = await self.blocking(backends.start_run, nb, values, self.runs_dir(), self.ext.runs_backend,
                                      declared, injected, self.ext.site.get("slurm"))
        self.set_status(201)
        return cards.run_view(run, self.root)


    def check_trust(self, name, snapshot, trust):
        """Refuse (409, :class:`TrustRequired`) to run another user's notebook unless ``trust``
        names its owner and the sha256 of exactly these bytes (``snapshot``, what will run)."""
        owner, me = snapshot.owner, getattr(self.current_user, "username", None)
        if owner == me:
            return
        sha256 = snapshot.sha256
        trust = trust if isinstance(trust, dict) else {}
        if trust.get("owner") == owner and trust.get("sha256") == sha256:
            return
        mismatch = "does not match this notebook" if trust else "is needed"
        raise TrustRequired(
            f"{name}:{snapshot.version}'s training notebook was published by {owner!r}, and running it runs "
            f"their code as you. Read it first; confirmation {mismatch}: send "
            f"trust {{\"owner\": \"{owner}\", \"sha256\": \"{sha256}\"}}.",
            model=name, version=snapshot.version, owner=owner, sha256=sha256, notebook=snapshot.filename)


class Run(Base):
    @api
    async def get(self, run_id):
        """The run page: state, progress, log tail, models to publish (:func:`cards.run_page`)."""
        run = await self.blocking(backends.get_run, paths.safe_segment(run_id), self.runs_dir())
        return await self.blocking(cards.run_page, run, self.root)

    @api
    async def delete(self, run_id):
        await self.blocking(backends.cancel_run, paths.safe_segment(run_id), self.runs_dir())
        run = await self.blocking(backends.get_run, run_id, self.runs_dir())
        return cards.run_view(run, self.root)


class Publish(Base):
    """Publish the model a run trained, with its lineage (the model it was fine-tuned from).

    ``folder`` (relative to the run folder, as the run page lists its models) picks the model when
    the run wrote several; without it such a run is a 409 naming them (never a guess). The answer
    is the published card with ``source`` (where the model came from) and ``market`` (where it went).
    """

    @api
    async def post(self, run_id):
        from deepvre.runs import outputs
        from deepvre.site.environment import Environment

        body = self.body()
        if not body.get("name"):
            raise ValueError("give the published model a name")
        folder = body.get("folder")
        if folder is not None and not isinstance(folder, str):
            raise ValueError("folder: give the run's model folder as the run page lists it, e.g. \"biology-output\"")
        run = await self.blocking(backends.get_run, paths.safe_segment(run_id), self.runs_dir())
        view = cards.run_view(run, self.root)
        if view["state"] != "done":
            raise ValueError(f"run {run_id} is {view['state']}; only a finished run can be published")
        source = await self.blocking(outputs.choose_model, run.path, run.id, folder)
        lineage = parameters.lineage_of(os.path.join(str(run.path), "output.ipynb"))
        if not os.path.exists(os.path.join(source, "run.json")):  # the model page links its run
            atomic.write_json(os.path.join(source, "run.json"), {
                "id": run.id, "path": str(run.path), "provenance": os.path.join(str(run.path), "provenance.json")})
        record = await self.blocking(backends.publish_run, run, body["name"], body.get("version"),
                                     lineage, body.get("visibility", "private"), source)
        self.set_status(201)
        market = Environment().market_url or "the local catalog"
        return {**cards.model_card(record), "visibility": record.get("visibility"),
                "source": paths.relative(self.root, os.path.join(source, outputs.MODEL)), "market": market}


class Preprocess(Base):
    @api
    async def get(self):
        kinds = await self.blocking(backends.pipeline_kinds)
        clusters = await self.blocking(self.ext.preprocess_jobs.clusters)
        return {"kinds": kinds, "clusters": clusters, "jobs": [self.view(j) for j in self.ext.preprocess_jobs.list()]}

    @api
    async def post(self):
        body = self.body()
        src = self.resolve(body.get("input"), must_exist=True)
        out = self.resolve(body.get("output") or f"{body.get('input', '').rstrip('/')}-preprocessed")
        cluster = body.get("cluster") or "local"
        job = self.ext.preprocess_jobs.start(body.get("kind"), src, out, cluster, body.get("params"))
        self.set_status(201)
        return self.view(job)

    def view(self, job):
        job["input"], job["output"] = paths.relative(self.root, job["input"]), paths.relative(self.root, job["output"])
        return job


class PreprocessJob(Preprocess):
    @api
    async def get(self, job_id):
        return self.view(self.ext.preprocess_jobs.get(job_id))


class Serve(Base):
    @api
    async def get(self):
        return {"services": self.ext.services.list(self.base_url)}

    @api
    async def post(self):
        body = self.body()
        if not body.get("model"):
            raise ValueError("give the model to serve")
        entry = await self.blocking(backends.show_model, body["model"], body.get("version"))  # 404 early
        # the version resolved: "latest" and its number are one service, not two
        svc = self.ext.services.start(body["model"], entry["version"], self.base_url)
        if body.get("wait", True):  # answer once the service's API answers (or has failed)
            svc = await self.ext.services.wait_ready(svc["ref"], self.base_url, timeout=120)
        self.set_status(201)
        return svc


class Service(Base):
    @api
    async def get(self, ref):
        """The service of ``ref`` with the tail of its log (``?tail=N`` lines, default 200)."""
        lines = int(self.get_argument("tail", "200"))
        if not 1 <= lines <= 10000:
            raise ValueError("tail must be 1 to 10000 lines")
        return self.ext.services.view(ref, self.base_url, log_lines=lines)

    @api
    async def delete(self, ref):
        """Stop the service of ``ref`` (``name:version``, as the service list names it)."""
        return await self.blocking(self.ext.services.stop, ref, self.base_url)


def service_proxy():
    """:class:`ServiceProxy`, or None when jupyter-server-proxy is not installed."""
    try:
        from jupyter_server_proxy.handlers import ProxyHandler
    except ModuleNotFoundError:
        return None

    class ServiceProxy(ProxyHandler):
        """jupyter-server-proxy to a model service's Unix socket: ``deepvre/services/<id>/<path>``.

        ``ProxyHandler`` authenticates every request with this server's login (the hub's, in a
        hub) before proxying; the socket's folder is 0700, so no other account reaches DEEPaaS.
        """

        def target(self, service_id):
            try:
                self.unix_socket = self.settings["deepvre"].services.socket(service_id)
            except KeyError as err:
                raise web.HTTPError(404, str(err.args[0])) from err
            self.proxy_base = f"{SERVICES_PATH}/{service_id}"

        async def http_get(self, service_id, path=""):
            self.target(service_id)
            return await self.proxy("localhost", 0, path or "")

        async def open(self, service_id, path=""):
            raise web.HTTPError(400, "model services take no websockets")

        async def _any(self, service_id, path=""):
            self.target(service_id)
            return await self.proxy("localhost", 0, path or "")

        post = put = delete = head = patch = options = _any

    return ServiceProxy


def handlers(base_url):
    api_url = url_path_join(base_url, "deepvre", "api")
    name = r"(?P<name>[^/]+)"
    routes = [
        (r"models", Models), (rf"models/{name}", Model), (rf"models/{name}/parameters", ModelParameters),
        (rf"models/{name}/figures", ModelFigures), (rf"models/{name}/environment", ModelEnvironment),
        (rf"models/{name}/verify", ModelVerify),
        (rf"models/{name}/finetune", FineTune), (r"notebooks/parameters", NotebookParameters),
        (r"runs", Runs), (r"runs/(?P<run_id>[^/]+)", Run), (r"runs/(?P<run_id>[^/]+)/publish", Publish),
        (r"preprocess", Preprocess), (r"preprocess/(?P<job_id>[^/]+)", PreprocessJob), (r"serve", Serve),
        (r"serve/(?P<ref>[^/]+)", Service),
    ]
    from .rankings import routes as ranking_routes  # "Rank base models for my data" (issue 18)
    from .runs_compare import routes as compare_routes  # the runs page: runs side by side, a sweep (issue 19)

    routes = [(url_path_join(api_url, pattern) + "/?", cls)
              for pattern, cls in routes + ranking_routes() + compare_routes()]
    proxy = service_proxy()
    if proxy is not None:
        services = url_path_join(base_url, SERVICES_PATH)
        routes.append((services + r"/(?P<service_id>[0-9]+)(?P<path>/.*)?", proxy, {"absolute_url": True}))
    return routes
