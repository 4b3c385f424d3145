"""The marketplace service process: ``python -m deepvre.market`` (or ``python -m deepvre.market.app``).

A JupyterHub-managed service (the hub's entry: :func:`deepvre.market.service.hub_service`), or
standalone for one user (``--standalone``). Every setting is a trait with help text
(``python -m deepvre.market --help-all``); the catalog's own (``--database-url``, ``--store-url``,
``--upload-limit``) are :class:`~deepvre.market.catalog.Catalog`'s. The hub passes the database URL
in ``$DEEPVRE_MARKET_DATABASE_URL`` instead (it may hold a password, and a command line is
public); ``--database-url`` overrides it.

Under a hub it listens where the hub expects it, at the address and port of
``$JUPYTERHUB_SERVICE_URL``, unless ``--ip`` or ``--port`` say otherwise (Kubernetes:
``--ip 0.0.0.0``, the proxy pod reaches it through the hub Service).

Processes: one by default, with a thread pool per core (SQLite releases the GIL), so that every
request waits in one queue; ``--processes`` (``marketplace.processes`` in the site settings) adds
processes for throughput on larger machines, at the cost of a queue per process (a kept-alive
connection stays with the process that accepted it). The socket is bound once, then tornado's
``fork_processes`` forks the children, each with its own catalog (SQLAlchemy engine) made after
the fork; SQLite runs in WAL mode, so readers do not block each other (:mod:`.processes`: signals).
"""

import contextlib
import getpass
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from tornado import httpserver, ioloop, netutil, process
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import Application, catch_config_error

from ..site.environment import Environment
from . import seed, trypage
from .catalog import Catalog, default_root
from .handlers import SMALL_BODY, make_app
from .processes import forward_signals, stop_on_signals
from .service import SERVICE_NAME

log = logging.getLogger("deepvre.market")


class MarketplaceApp(Application):
    """The marketplace web service."""

    name = "deepvre-marketplace"
    description = __doc__.split("\n")[0]
    examples = """
python -m deepvre.market --standalone --port 8765     # the local catalog, for the local user
python -m deepvre.market --processes 4                  # under a hub: where $JUPYTERHUB_SERVICE_URL says
"""
    classes = [Catalog]

    standalone = Bool(
        False,
        config=True,
        help="No hub: serve the local catalog to the local user, who sends the token written to "
        "--token-file. E.g. --standalone.",
    )
    ip = Unicode(
        config=True,
        help="Address to listen on, e.g. 0.0.0.0 (Kubernetes). Default: the host of "
        "$JUPYTERHUB_SERVICE_URL (the hub sets it to the service's url; not standalone), else 127.0.0.1.",
    )
    port = Integer(
        config=True,
        help="Port to listen on, e.g. 10101; 0: a free one (the URL is printed). Default: the port of "
        "$JUPYTERHUB_SERVICE_URL (not standalone), else 0.",
    )
    processes = Integer(
        1,
        min=1,
        config=True,
        help="Service processes sharing the port, e.g. 4. One process (the default) serves every "
        "request from one queue with a thread per core; more processes raise throughput (the "
        "Python part of a request holds the GIL) but each has its own queue, which lengthens the "
        "slowest answers (docs/benchmarks.md: p99 at concurrency 16 on 2 cores).",
    )
    seed = Bool(
        True,
        config=True,
        help="Under a hub: publish the ImageNet MobileNetV2 base model (mobilenet-v2-imagenet 1.0.0, owner "
        "deepvre) at start if the catalog lacks it (deepvre.market.seed; needs TensorFlow and the offline "
        "weights, or the hub image's conversion; GET api/status says seeding until done). E.g. --no-seed to start with an empty catalog.",
    )
    seed_status_file = Unicode(
        "",
        config=True,
        help="Where the seed's state is kept for every service process, e.g. /srv/deepvre/marketplace/"
        "seed-status.json. Default: seed-status.json in the catalog folder ($DEEPVRE_MARKET_DIR).",
    )
    tryit_timeout = Float(
        60.0,
        min=1.0,
        config=True,
        help="Seconds a try-it page's request waits for the model service's answer before it is a 504, "
        "e.g. 20 (a stalling service holds up only its own callers meanwhile; deepvre.market.trypage).",
    )
    tryit_check_interval = Float(
        30.0,
        min=0.0,
        config=True,
        help="Seconds between the checks of the registered try-it services: one that no longer answers "
        "as itself (it crashed, its port is free or another process's) loses its registration, so its page "
        "says the model is not being served. E.g. 60; 0: no check (a caller's try still drops it).",
    )
    token_file = Unicode(
        "",
        config=True,
        help="Standalone: where to write the token callers must send (mode 0600), e.g. "
        "/home/ana/.market-token. Default: standalone-token in the catalog folder.",
    )

    aliases = {
        "ip": "MarketplaceApp.ip",
        "port": "MarketplaceApp.port",
        "processes": "MarketplaceApp.processes",
        "tryit-timeout": "MarketplaceApp.tryit_timeout",
        "tryit-check-interval": "MarketplaceApp.tryit_check_interval",
        "token-file": "MarketplaceApp.token_file",
        "database-url": "Catalog.database_url",
        "store-url": "Catalog.store_url",
        "upload-limit": "Catalog.upload_limit",
    }
    flags = {
        "standalone": ({"MarketplaceApp": {"standalone": True}}, standalone.help),
        "no-seed": ({"MarketplaceApp": {"seed": False}}, "Start with no base model seeded (see --MarketplaceApp.seed)."),
    }

    def hub_url(self):
        """``$JUPYTERHUB_SERVICE_URL`` parsed: where the hub expects this managed service to listen.
        Standalone, none: in a user's server that variable is the server's own address."""
        return urlparse("" if self.standalone else os.environ.get("JUPYTERHUB_SERVICE_URL") or "")

    @default("ip")
    def _ip_from_hub(self):
        return self.hub_url().hostname or "127.0.0.1"

    @default("port")
    def _port_from_hub(self):
        return self.hub_url().port or 0

    @catch_config_error
    def initialize(self, argv=None):
        super().initialize(argv)
        # the hub passes a database URL in the environment: it may hold a password, and other
        # accounts can read a command line
        database_url = Environment().market_database_url
        if database_url and "database_url" not in self.config.Catalog:
            self.config.Catalog.database_url = database_url

    def start(self):
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s marketplace] %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)  # jupyterhub's import of alembic logs its plugins
        # tables, indexes and the FTS catch-up once, before any fork; each process opens its own engine
        first = Catalog(parent=self)
        status_file = self.seed_status_file or str(default_root() / seed.STATUS_FILE)
        if self.standalone or not self.seed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(status_file)  # api/status: off
        else:
            seed.start(first, status_file)  # a child process; its progress goes to this log
        first.engine.dispose()
        standalone_token = write_token(self.token_file or None) if self.standalone else None
        ipv6 = ":" in self.ip
        sockets = netutil.bind_sockets(self.port, self.ip, family=socket.AF_INET6 if ipv6 else socket.AF_INET)
        processes = self.processes
        host = f"[{self.ip}]" if ipv6 else self.ip
        print(f"deepvre marketplace ({processes} process{'es' if processes > 1 else ''}) listening on "
              f"http://{host}:{sockets[0].getsockname()[1]}", flush=True)  # the URL last: scripts read it
        cookie_secret = os.urandom(32)  # one for all processes
        if processes > 1:
            forward_signals(os.getpid())
            process.fork_processes(processes)  # returns in the children only
        catalog = Catalog(parent=self)
        catalog.recover()  # what a killed process left (a sibling's live staging folders stay: locked)
        if self.standalone:
            app = make_app(catalog, "/", standalone_user=getpass.getuser(), standalone_token=standalone_token,
                           tryit_timeout=self.tryit_timeout)
        else:
            prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
            app = make_app(catalog, prefix, cookie_secret=cookie_secret, status_file=status_file,
                           tryit_timeout=self.tryit_timeout)
        # Bodies are small (JSON) until a caller is known: an upload raises its own limit once its
        # credentials passed (handlers.ModelsHandler), so nobody makes the service buffer gigabytes.
        # Connections idle or feeding a body too slowly are closed.
        server = httpserver.HTTPServer(app, max_body_size=SMALL_BODY, idle_connection_timeout=300,
                                       body_timeout=3600)
        server.add_sockets(sockets)
        trypage.watch(app, self.tryit_check_interval)  # drops the registrations of crashed services
        loop = ioloop.IOLoop.current()
        stop_on_signals(loop)
        loop.start()
        server.stop()
        app.settings["executor"].shutdown(wait=False, cancel_futures=True)
        catalog.engine.dispose()


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


main = MarketplaceApp.launch_instance

if __name__ == "__main__":
    main()
