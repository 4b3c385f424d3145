"""deepvre's DEEPaaS launcher: ``deepaas-run`` with an owner-only listener, private uploads, owner-only train.

DEEPaaS 2.6 serves whoever reaches its port: no authentication, uploads left in the system temp
folder, ``train`` for anyone. ``deepvre serve`` therefore starts DEEPaaS through this module
(``python -m deepvre.serving.launch``), which builds the same aiohttp application as
``deepaas-run`` (``deepaas.api.get_app``) and adds:

- **where it listens**: a Unix socket (``--socket``) in a folder only its owner can enter (0700;
  the socket itself 0600), reached through the user's own Jupyter server (jupyter-server-proxy,
  behind the hub's login), or TCP (``--ip``/``--port``) guarded by a secret token that only the
  owner holds (``$DEEPVRE_SERVE_TOKEN``, never on the command line), unless ``--insecure``; or both
  (``--socket`` with ``--also-tcp``): the owner on the socket, the marketplace's try-it page on TCP;
- **a predict-only token** (``$DEEPVRE_SERVE_TRY_TOKEN``): on TCP it opens the model's metadata
  (``GET .../v2/models/NAME/``) and ``POST .../v2/models/NAME/predict/`` only, every other route
  answers 403 (:func:`try_allowed`); the owner's token opens everything. The marketplace does not
  send it: it signs each request with it (``Authorization: tryit NONCE HMAC``), and the service
  signs its answer (``X-Deepvre-Proof``), so a process that took the port of a service that ended
  learns no token and cannot pass for it (:func:`signed_nonce`);
- **uploads**: DEEPaaS writes each uploaded file with ``tempfile.mkstemp`` before calling
  ``predict`` and never removes it; the launcher makes it write them into a private folder
  (``--uploads``, 0700), emptied whenever no request is in flight and removed at exit;
- **train for the owner only**: ``train`` runs the model's notebook as the service's account, so
  it answers 403 unless the served model's marketplace owner is that account's user
  (:func:`deepvre.serving.model.server_user`);
- **bad input is a 400 with the reason**, as DEEPaaS's spec documents (its own handler lets the
  model's errors and webargs' 422 through as they are): :class:`~deepvre.serving.preprocessing.InputError`
  and invalid arguments become ``400 {"message": ...}``;
- **concurrent predictions**: DEEPaaS runs each ``predict`` in one of ``--workers`` single-process
  pools (one copy of the model each, one request at a time each); here ``predict`` and ``warm``
  run in a pool of ``--threads`` threads of the server's own process, on one loaded model: each
  decodes its input, and concurrent requests are stacked (``--max-batch``) into ``--model-calls``
  model calls at once (:mod:`deepvre.serving.batching`). ``train`` stays in DEEPaaS's process
  pool, which can cancel it.
"""

import argparse
import asyncio
import atexit
import concurrent.futures
import datetime
import functools
import hmac
import os
import re
import shutil
import sys
import tempfile

from ..orphans import exit_with_parent
from ..site import environment

TOKEN_ENV = environment.SERVE_TOKEN
TRY_TOKEN_ENV = environment.SERVE_TRY_TOKEN
COOKIE = "deepvre-serve-token"
THREADS = 16
# A request's body (an image, an array as JSON) over this is a 413 (DEEPaaS's default: no limit)
UPLOAD_LIMIT = 32 * 2**20
SHUTDOWN_S = 3  # on SIGTERM, wait this long for open (keep-alive) connections, not aiohttp's 60 s
TRAIN_PATH = re.compile(r"/v2/models/[^/]+/train/?")


def presented_token(request):
    """The token a request carries: ``Authorization: token|Bearer T``, a ``token`` query
    parameter (a browser's first visit) or the cookie set on that visit."""
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() in ("token", "bearer") and value.strip():
        return value.strip(), False
    if request.query.get("token"):
        return request.query["token"], True
    return request.cookies.get(COOKIE, ""), False


def try_allowed(method, path, base_path, name):
    """Whether the try token opens ``method path``: the model's metadata, or its predict (pure)."""
    model = f"{re.escape(base_path.rstrip('/'))}/v2/models/{re.escape(name)}"
    if method in ("GET", "HEAD"):
        return re.fullmatch(model + "/?", path) is not None
    return method == "POST" and re.fullmatch(model + "/predict/?", path) is not None


def sneaky(raw_path):
    """Whether a raw request path hides dots, slashes or backslashes from a match on the decoded path."""
    lowered = raw_path.split("?", 1)[0].lower()
    return any(part in lowered for part in ("%2e", "%2f", "%5c", "\\", "/./", "/../")) or lowered.endswith(("/.", "/.."))


PROOF_HEADER = "X-Deepvre-Proof"
NONCE_AGE_S = 300


def try_signature(token, nonce, method, path):
    """HMAC-SHA256 of ``nonce``, ``method`` and ``path`` with the try token (hex): how the marketplace
    asks without sending the token, and how the service answers proving it holds it (pure)."""
    return hmac.new(token.encode(), f"{nonce}\n{method}\n{path}".encode(), "sha256").hexdigest()


def signed_nonce(request, try_token, now=None):
    """The nonce of a request signed with the try token (``Authorization: tryit NONCE SIGNATURE`` over its
    method and raw path, the nonce ``UNIXTIME.RANDOM`` at most ``NONCE_AGE_S`` old), else None."""
    import time

    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    nonce, _, signature = value.strip().partition(" ")
    if kind.lower() != "tryit" or not try_token or not nonce or not signature:
        return None
    try:
        fresh = abs((now or time.time()) - float(nonce.split(".", 1)[0])) <= NONCE_AGE_S
    except ValueError:
        return None
    expected = try_signature(try_token, nonce, request.method, request.raw_path)
    return nonce if fresh and hmac.compare_digest(signature.encode(), expected.encode()) else None


def over_tcp(request):
    """Whether ``request`` came in on a TCP listener (not the owner-only Unix socket)."""
    import socket

    sock = request.transport.get_extra_info("socket") if request.transport else None
    return sock is None or sock.family != socket.AF_UNIX


def _same(given, token):
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def token_middleware(token, try_token="", base_path="", name="", socket_open=False):
    """aiohttp middleware: 401 unless the request carries ``token`` (compared in constant time), or
    ``try_token`` for what :func:`try_allowed` lets through (else 403). With ``socket_open``, requests
    on the Unix socket (its folder is the owner's) need none."""
    from aiohttp import web

    @web.middleware
    async def check_token(request, handler):
        if socket_open and not over_tcp(request):
            return await handler(request)
        nonce = signed_nonce(request, try_token)
        given, from_query = presented_token(request)
        if nonce or (given and _same(given, try_token)):
            if not try_allowed(request.method, request.path, base_path, name) or sneaky(request.raw_path):
                response = web.json_response({"message": "the try-it token opens the model's metadata and predict only"},
                                             status=403)
            else:
                try:
                    response = await handler(request)
                except web.HTTPException as err:
                    response = err
                except Exception:  # noqa: BLE001  (logged; a 500 that still carries the proof)
                    import logging

                    logging.getLogger("deepvre.serving").exception("predict failed")
                    response = web.json_response({"message": "the model failed on this input"}, status=500)
            if nonce:  # the service proves it holds the token too (the caller never sent it)
                response.headers[PROOF_HEADER] = try_signature(try_token, nonce, "answer", "")
            return response
        if not given or not _same(given, token):
            return web.json_response({"message": "a valid token is required (Authorization: token ...)"},
                                     status=401, headers={"WWW-Authenticate": "token"})
        response = await handler(request)
        if from_query:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return check_token


def tcp_socket(ip, port, port_file=None):
    """A listening TCP socket on ``ip:port`` (0: a free port), its port written to ``port_file``."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, port))  # aiohttp listens once the model is warm: until then a connection is refused
    if port_file:
        tmp = f"{port_file}.tmp"
        with open(tmp, "w") as out:
            out.write(str(sock.getsockname()[1]))
        os.replace(tmp, port_file)
    return sock


def train_middleware(refusal):
    """aiohttp middleware: ``train`` (start, status, list) answers 403 with ``refusal`` when set."""
    from aiohttp import web

    @web.middleware
    async def owner_only_train(request, handler):
        if refusal and TRAIN_PATH.search(request.path):
            return web.json_response({"message": refusal}, status=403)
        return await handler(request)

    return owner_only_train


UPLOAD_PREFIX = "upload-"


def private_uploads(folder):
    """Make DEEPaaS write uploaded files into ``folder`` (``upload-*``), not the system temp folder.

    DEEPaaS 2.6 calls ``tempfile.mkstemp()`` in ``deepaas.model.v2.wrapper`` for each file field;
    only that module's name is replaced, so other temporary files (papermill's, a training run's)
    stay where they were.
    """
    import types

    from deepaas.model.v2 import wrapper

    wrapper.tempfile = types.SimpleNamespace(
        mkstemp=lambda *a, **kw: tempfile.mkstemp(prefix=UPLOAD_PREFIX, dir=folder))


def uploads_middleware(folder):
    """aiohttp middleware: empty ``folder`` (DEEPaaS's uploads) whenever no request is in flight."""
    from aiohttp import web

    in_flight = [0]

    @web.middleware
    async def clean_uploads(request, handler):
        in_flight[0] += 1
        try:
            return await handler(request)
        finally:
            in_flight[0] -= 1
            if in_flight[0] == 0:
                empty(folder)

    return clean_uploads


def empty(folder):
    """Remove the uploads (``upload-*``) in ``folder``."""
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if name.startswith(UPLOAD_PREFIX):
            try:
                os.unlink(os.path.join(folder, name))
            except (FileNotFoundError, IsADirectoryError):
                pass


def errors_middleware():
    """aiohttp middleware: a client's bad input is ``400 {"message": reason}``, not a 500 or a 422."""
    from aiohttp import web

    from .preprocessing import InputError

    @web.middleware
    async def bad_input(request, handler):
        try:
            return await handler(request)
        except InputError as err:
            return web.json_response({"message": str(err)}, status=400)
        except web.HTTPUnprocessableEntity as err:  # webargs: a field that does not validate
            return web.json_response({"message": f"invalid arguments: {err.text}"}, status=400)

    return bad_input


def in_threads(wrapper, threads):
    """Run ``predict`` and ``warm`` of DEEPaaS's ``ModelWrapper`` in ``threads`` threads of this
    process (one loaded model, concurrent calls), other calls (``train``) as before.

    DEEPaaS 2.6 calls everything through ``wrapper._run_in_pool(func, ...)``, a task whose result
    is ``{"output": ..., "finish_date": ...}``; this keeps that contract.
    """
    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="deepvre-predict")
    processes = wrapper._run_in_pool
    model_obj = wrapper.model_obj

    def run(func, *args, **kwargs):
        threaded = func is wrapper.predict_wrap or func == getattr(model_obj, "warm", None)
        if not threaded:
            return processes(func, *args, **kwargs)

        async def call():
            loop = asyncio.get_running_loop()
            output = await loop.run_in_executor(pool, functools.partial(func, *args, **kwargs))
            return {"output": output, "finish_date": str(datetime.datetime.now())}

        return asyncio.get_event_loop().create_task(call())

    wrapper._run_in_pool = run
    wrapper._workers = 1  # warm() once: one model in this process
    return pool


def private_folder(path):
    """Make ``path`` a folder only this account controls (:func:`deepvre.private_dirs.private_folder`)."""
    from deepvre.private_dirs import private_folder as make

    try:
        return make(path)
    except PermissionError as err:
        raise SystemExit(f"{err}; choose another") from None


def train_refusal(ref):
    """The message ``train`` answers with, or None when this account's user owns the model."""
    from deepvre.serving import model

    owner = model.served_owner(ref)
    me = model.server_user()
    if owner == me:
        return None
    return (f"train is for the model's owner only: {ref} belongs to {owner!r}, this service runs as {me!r}. "
            "Training runs the owner's notebook in your account; to train it yourself, use Fine-tune, "
            "check the notebook (its owner and sha256 are shown) and run your copy.")


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m deepvre.serving.launch")
    p.add_argument("--model-name", required=True)
    p.add_argument("--socket", help="Unix socket to listen on (its folder is made 0700)")
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--base-path", default="")
    p.add_argument("--uploads", help="private folder for DEEPaaS's uploads (default: a new one in the temp folder)")
    p.add_argument("--threads", type=int, default=THREADS,
                   help=f"requests predicted at once (their model calls stacked), in threads of this process (default {THREADS})")
    p.add_argument("--max-batch", type=int, default=4, help="most samples stacked into one model call (default 4)")
    p.add_argument("--model-calls", type=int, default=4, help="model calls at once, each on a stack (default 4)")
    p.add_argument("--insecure", action="store_true", help="TCP without a token: anyone who reaches the port gets in")
    p.add_argument("--also-tcp", action="store_true",
                   help="with --socket: listen on --ip/--port too (0: a free port), behind the tokens")
    p.add_argument("--port-file", help="write the TCP port here once bound (with --port 0: the free one taken)")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="stop when the process that started it ends (a user's server: its services go with it)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)
    token = os.environ.pop(TOKEN_ENV, "")
    try_token = os.environ.pop(TRY_TOKEN_ENV, "")
    tcp = not args.socket or args.also_tcp
    if tcp and not (token or try_token) and not args.insecure:
        raise SystemExit(f"refusing to listen on TCP without a token: set ${TOKEN_ENV} (or ${TRY_TOKEN_ENV}), "
                         "or use --socket or --insecure")
    if args.also_tcp and (args.insecure or not args.socket):
        raise SystemExit("--also-tcp needs --socket, and a token (not --insecure)")

    uploads = private_folder(args.uploads) if args.uploads else tempfile.mkdtemp(prefix="deepvre-uploads-")
    atexit.register(shutil.rmtree, uploads, True)
    if args.socket:
        private_folder(os.path.dirname(os.path.abspath(args.socket)))
        if os.path.exists(args.socket):
            os.unlink(args.socket)

    from aiohttp import web
    from deepaas import api, config
    from deepaas.cmd import _shutdown

    import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)

    _shutdown.handle_signals()
    if args.exit_with_parent:
        exit_with_parent()
    private_uploads(uploads)
    if min(args.threads, args.max_batch, args.model_calls) < 1:
        raise SystemExit("--threads, --max-batch and --model-calls must be at least 1")
    deepaas_argv = [sys.argv[0], "--model-name", args.model_name, "--nodebug", "--nowarm",
                    "--client-max-size", str(UPLOAD_LIMIT)]  # warmed below
    config.config_and_logging(deepaas_argv)
    refusal = train_refusal(environment.Environment().serve_model or args.model_name)
    base_path = args.base_path.rstrip("/")

    async def application():
        from deepaas import model as models

        from deepvre.serving import model as adapter  # the module DEEPaaS serves

        adapter.BATCHING.update(max_rows=args.max_batch, workers=args.model_calls)

        app = await api.get_app(base_path=base_path)
        for wrapper in models.V2_MODELS.values():
            in_threads(wrapper, args.threads)
            await wrapper.warm()  # before the listener opens: it answers only once the model is loaded
        guards = [errors_middleware(), uploads_middleware(uploads), train_middleware(refusal)]
        if token or try_token:
            guards.insert(0, token_middleware(token, try_token, base_path, args.model_name, socket_open=bool(args.socket)))
        for i, guard in enumerate(guards):  # before DEEPaaS's own (path normalization)
            app.middlewares.insert(i, guard)
        return app

    listener = tcp_socket(args.ip, args.port, args.port_file) if tcp else None
    where = " and ".join(([f"unix:{args.socket}"] if args.socket else [])
                         + ([f"http://{args.ip}:{listener.getsockname()[1]}"] if listener else []))
    print(f"DEEPaaS for {args.model_name} on {where}{base_path}/v2/ (uploads in {uploads}; "
          f"train {'refused: ' + refusal if refusal else 'for the owner'})", file=sys.stderr, flush=True)
    try:
        web.run_app(application(), path=args.socket, sock=listener, print=None, shutdown_timeout=SHUTDOWN_S)
    finally:
        shutil.rmtree(uploads, ignore_errors=True)
        if args.socket and os.path.exists(args.socket):
            os.unlink(args.socket)


if __name__ == "__main__":
    main()
