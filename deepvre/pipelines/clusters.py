"""One cluster factory: LocalCluster, a scheduler address, SLURMCluster or KubeCluster.

The ``dask:`` settings section (schema: ``deepvre/site/schemas/dask.json``)
is read by pure functions: ``dask_settings`` (defaults + validation),
``slurm_cluster_kwargs`` and ``kubernetes_cluster_spec``; ``open_client`` is the thin
glue that starts what they describe. ``dashboard_link`` routes the dashboard through
jupyter-server-proxy inside a JupyterHub server.

Who may connect (docs/security.md, "Dask"): every cluster started here on the user's
machine or in Slurm speaks ``tls://`` with mutual TLS and the user's own credentials
(``deepvre.pipelines.tls.user_security``): the scheduler, the workers and their nannies let in
only a peer holding a certificate from the user's CA, which only the user can read. The
schedulers listen on one address (127.0.0.1 locally; the ``dask.slurm.host``/``interface`` or
this machine's outward address for Slurm), never on every interface, and their dashboards on
127.0.0.1 only (reached in a hub through jupyter-server-proxy, behind the hub's login). A Slurm
scheduler on loopback while the queue has nodes other than this machine is refused before any
job is submitted (``scheduler_refusal``, naming ``dask.slurm.host``).
The dask-kubernetes operator speaks plain TCP: there each user's clusters live in the user's
own namespace, whose NetworkPolicy (``deepvre_hub.user_namespaces.dask_policy``) admits only
that namespace's pods and the operator.
"""

import asyncio
import contextlib
import logging
import os
import re
import threading

# distributed's nannies give workers MALLOC_TRIM_THRESHOLD_=65536; setting any glibc malloc
# tunable also freezes its mmap threshold, so every image-sized buffer is mmap'd, faulted in
# and unmapped again, which costs system time on every image (docs/benchmarks.md has the
# figures). Our local workers keep glibc's defaults, like a plain loop.
#
# Slurm and Kubernetes workers read their own dask config on their nodes: deepvre hands them the
# same setting through the environment (``worker_environ``): the job script's prologue exports it
# (``slurm_cluster_kwargs``) and the DaskCluster's env carries it (``kubernetes_cluster_spec``).
# A site can do the same in its own dask config (YAML keeps the key's case; DASK_* variables
# are lower-cased and cannot name it):
#     distributed: {nanny: {pre-spawn-environ: {MALLOC_TRIM_THRESHOLD_: null}}}
LOCAL_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
INHERIT_CONFIG = "DASK_INTERNAL_INHERIT_CONFIG"  # read by dask.config at import, on the worker's node


# Dashboards (bokeh, plain http, no login: read-only, but they show task names, code
# snippets in tracebacks, worker hosts) listen on loopback only.
DASHBOARD_ADDRESS = "127.0.0.1:0"
log = logging.getLogger(__name__)


def worker_environ():
    """Environment that gives remote workers :data:`LOCAL_WORKER_CONFIG` (glibc malloc defaults).

    dask serializes config into ``DASK_INTERNAL_INHERIT_CONFIG`` for its own subprocesses and
    reads it at import; unlike ``DASK_*`` variables it keeps the upper-case key.
    """
    import dask.config

    return {INHERIT_CONFIG: dask.config.serialize(
        {"distributed": {"nanny": {"pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": None}}}})}


class QuietShutdownFilter(logging.Filter):
    """Drops the errors distributed logs about its own orderly shutdown; every other record passes.

    - the scheduler's ``CancelledError`` from a progress bar's ``feed`` cut short: the bar (text or
      widget) is fed by a scheduler coroutine that sleeps between updates, and closing the cluster
      during that sleep cancels it;
    - a worker's "Failed to communicate with scheduler during heartbeat" when the worker itself is
      closing: a heartbeat still in its (TLS) handshake meets the worker's own closing connection
      pool (``CommClosedError: ConnectionPool closing``).
    """

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if isinstance(exc, asyncio.CancelledError):
            return False
        from distributed.comm.core import CommClosedError

        return not (isinstance(exc, CommClosedError) and "ConnectionPool closing" in str(exc))


def _quiet(logger_name):
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, QuietShutdownFilter) for f in logger.filters):
        logger.addFilter(QuietShutdownFilter())


def quiet_scheduler_shutdown():
    """Install :class:`QuietShutdownFilter` on distributed's scheduler logger (once)."""
    _quiet("distributed.scheduler")


def dask_setup(worker):
    """Worker preload (``preload=[__name__]``): the same quiet shutdown in each worker process."""
    _quiet("distributed.worker")


def dask_settings(section=None):
    """The ``dask:`` section validated, with every default filled in (the settings loader's: the
    defaults are in its schema, ``deepvre/site/schemas/dask.json``; errors name ``dask.KEY``)."""
    from deepvre.site.settings import validated_section

    return validated_section("dask", section)


def slurm_cluster_kwargs(settings=None, n_workers=None, profile=None, slurm=None, security=None,
                         scheduler_host=None):
    """Keyword arguments for ``dask_jobqueue.SLURMCluster`` from the settings (pure).

    ``slurm`` (the site's ``slurm:`` section) and a hardware ``profile`` give the terms shared
    with the hub and ``deepvre run`` (``deepvre.site.slurm_terms.jobqueue_kwargs``); keys of
    ``dask.slurm`` set to other than their defaults win over them.

    The scheduler listens on ``dask.slurm.host``, else on ``dask.slurm.interface``, else on
    ``scheduler_host`` (default: the address this machine routes out of), never on every
    interface; its dashboard on 127.0.0.1 only; the workers start no dashboard (their HTTP server
    for health and metrics listens on the node's loopback). With a
    ``security`` (``deepvre.pipelines.tls.user_security()``) everything speaks mutual TLS:
    the job script hands the workers the same certificate files, which they read as the user.
    """
    from deepvre.site.slurm_terms import jobqueue_kwargs

    s, defaults = dask_settings(settings)["slurm"], dask_settings()["slurm"]
    # what the site set in dask.slurm (a loaded section holds every default: those do not count)
    explicit = {key for key, value in s.items() if value != defaults[key]}
    kwargs = {
        "cores": s["cores"],
        "processes": s["processes"],
        "memory": s["memory"],
        "walltime": s["walltime"],
        "job_extra_directives": list(s["job_extra_directives"]),
    }
    for key in ("queue", "account", "interface", "local_directory", "python"):
        if s[key]:
            kwargs[key] = s[key]
    # the jobs' slurm-N.out / .err: never in the caller's current folder
    kwargs["log_directory"] = os.path.expanduser(s["log_directory"] or defaults["log_directory"])
    options = {"dashboard_address": DASHBOARD_ADDRESS}
    if s["host"]:
        options["host"] = s["host"]
    elif s["interface"]:
        options["interface"] = s["interface"]
    else:
        from distributed.utils import get_ip

        options["host"] = scheduler_host or get_ip()
    kwargs["scheduler_options"] = options
    # no bokeh dashboard on the workers; their small HTTP server (health, metrics) on loopback
    kwargs["worker_extra_args"] = ["--no-dashboard", "--dashboard-address", DASHBOARD_ADDRESS]
    if security is not None:
        kwargs["security"] = security
    for key, value in jobqueue_kwargs(profile, slurm).items():
        if key == "job_extra_directives":
            kwargs[key] = value + [d for d in kwargs[key] if d not in value]
        elif key not in explicit:
            kwargs[key] = value
    # workers keep glibc's malloc defaults (LOCAL_WORKER_CONFIG), first in the prologue so a
    # site's own prologue lines can still override it
    exports = [f"export {k}={v}" for k, v in worker_environ().items()]
    kwargs["job_script_prologue"] = exports + list(kwargs.get("job_script_prologue") or [])
    return kwargs


def scheduler_refusal(kwargs, nodes=None, this_host=None):
    """Why the workers of ``SLURMCluster(**kwargs)`` could not reach its scheduler (a sentence naming
    ``dask.slurm.host``), or ``None``: the scheduler's host is loopback (set, or this machine's outward
    address falling back to it) while the queue's partition has nodes other than this machine.
    ``nodes``: the partition's node names (``None``: ask ``sinfo``; a Slurm that does not answer is no refusal)."""
    import socket

    from deepvre.site.addresses import is_loopback, other_nodes, shown_nodes
    from deepvre.site.slurm_terms import SlurmSettingsError, slurm_nodes

    host = kwargs.get("scheduler_options", {}).get("host")
    if not host or not is_loopback(host):
        return None
    if nodes is None:
        try:
            nodes = slurm_nodes(kwargs.get("queue"))
        except SlurmSettingsError:
            return None
    others = other_nodes(nodes, this_host or socket.gethostname())
    if not others:
        return None
    return (f"dask.slurm.host: the workers would run on Slurm nodes other than this machine ({shown_nodes(others)}), "
            f"but the scheduler would listen on loopback ({host}), which they cannot reach. Set dask.slurm.host to "
            "this machine's address on the cluster's network, e.g. 10.0.0.1, or dask.slurm.interface, e.g. ib0.")


def scheduler_http_routes():
    """distributed's scheduler routes plus the API the dask-kubernetes operator calls (scale,
    retire workers, idle check); in Kubernetes only the user's namespace and the operator reach them."""
    import dask

    routes = list(dask.config.get("distributed.scheduler.http.routes"))
    return routes + [r for r in ("distributed.http.scheduler.api",) if r not in routes]


def restrict_pod(pod, uid=None):
    """Make a Dask pod spec pass the user namespaces' Pod Security "restricted" level and
    deepvre's admission policy (``deepvre_hub.admission``): a non-root user (the caller's, else
    1000), no privilege escalation, no capabilities, the runtime's seccomp profile and no
    ServiceAccount token (the scheduler and workers never call the Kubernetes API)."""
    uid = uid or (os.getuid() or 1000)
    pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": uid, "seccompProfile": {"type": "RuntimeDefault"}}
    pod["automountServiceAccountToken"] = False
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return pod


def kubernetes_cluster_spec(settings=None, n_workers=None, environ=None):
    """The ``DaskCluster`` resource for the dask-kubernetes operator (pure, offline).

    Inside a user pod (``DEEPVRE_POD_NAME``, ``DEEPVRE_POD_UID``, ``DEEPVRE_NAMESPACE`` from the
    downward API, read from ``environ``, default ``os.environ``) the cluster is owned by that pod,
    in its namespace, so Kubernetes deletes it with the pod. That namespace is the user's own
    (``deepvre_hub.user_namespaces``): only their server pod reaches the cluster. The pods pass
    the namespace's Pod Security level and the admission policy (``restrict_pod``).
    """
    from dask_kubernetes.operator import make_cluster_spec

    from deepvre.site.environment import Environment
    from deepvre.site.kubernetes_terms import pod_owner_reference

    full = dask_settings(settings)
    k = full["kubernetes"]
    spec = make_cluster_spec(
        name=k["name"],
        image=k["image"],
        n_workers=n_workers or full["workers"],
        resources=k["resources"],
        env={**worker_environ(), **k["env"]},  # glibc malloc defaults, unless the site's env says otherwise
        idle_timeout=k["idle_timeout"],
    )
    for pod in (spec["spec"]["scheduler"]["spec"], spec["spec"]["worker"]["spec"]):
        restrict_pod(pod)
    # the operator asks the scheduler's HTTP API (its NetworkPolicy lets it reach nothing else)
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    scheduler.setdefault("env", []).append({"name": "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES",
                                            "value": repr(scheduler_http_routes())})
    namespace = k["namespace"] or Environment(environ).namespace
    if namespace:
        spec["metadata"]["namespace"] = namespace
    owner = pod_owner_reference(environ)
    if owner is not None:
        spec["metadata"]["ownerReferences"] = [owner]
    return spec


def dashboard_link(link, environ=None):
    """The dashboard URL; inside a JupyterHub server, through jupyter-server-proxy.

    ``http://127.0.0.1:8787/status`` with ``JUPYTERHUB_SERVICE_PREFIX=/user/ana/``
    becomes ``/user/ana/proxy/8787/status``.
    """
    environ = os.environ if environ is None else environ
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if not link or not prefix:
        return link
    match = re.match(r"^https?://[^/:]+:(\d+)(/.*)?$", link)
    if not match:
        return link
    return f"{prefix.rstrip('/')}/proxy/{match.group(1)}{match.group(2) or '/status'}"


def kind_of(cluster):
    """``local``, ``slurm``, ``kubernetes`` or ``address`` for a --cluster value."""
    if not isinstance(cluster, str):  # e.g. a JSON body's number or list
        raise ValueError(f"--cluster must be a string (local, slurm, kubernetes or a scheduler address), not {cluster!r}")
    if cluster in ("local", "slurm", "kubernetes"):
        return cluster
    if re.match(r"^(tcp|tls|ucx|inproc)://", cluster) or re.match(r"^[\w.-]+:\d+\Z", cluster):
        return "address"
    raise ValueError(f"--cluster must be local, slurm, kubernetes or a scheduler address, not {cluster!r}")


def _dashboard_address():
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return None
    return DASHBOARD_ADDRESS


def _local_security():
    """The user's credentials; without a usable home, throw-away ones held only in memory
    (a LocalCluster's client lives in this process, so nothing else needs them)."""
    from distributed.security import Security

    from .tls import user_security

    try:
        return user_security()
    except OSError as err:
        log.warning("Dask TLS credentials: %s; this local cluster uses temporary ones", err)
        return Security.temporary()


def _address_client(address):
    """A client of a scheduler someone started: ``tls://`` with the user's credentials."""
    from distributed import Client

    if address.startswith("tls://"):
        from .tls import tls_directory, user_security

        try:
            return Client(address, security=user_security())
        except OSError as err:
            raise OSError(f"could not open a TLS connection to {address} with your Dask credentials in "
                          f"{tls_directory()}: the scheduler must trust their ca.pem (start it with "
                          f"`dask scheduler --tls-ca-file ... --tls-cert ... --tls-key ...`, "
                          f"see docs/security.md): {err}") from err
    log.warning("Dask scheduler %s is not tls://: it authenticates nobody, and whoever can reach it runs "
                "code as its owner; prefer a tls:// scheduler with your credentials (docs/security.md)", address)
    return Client(address)


def slurm_cluster_class():
    """dask_jobqueue's ``SLURMCluster``. Its ``runner`` module sets a SIGINT handler when imported
    (``sys.exit``): outside the main thread that raises ValueError, and in the main thread of a
    Jupyter server it would replace the server's own. The import is done with that one call
    disabled, once."""
    import signal
    import sys
    from unittest import mock

    if "dask_jobqueue" not in sys.modules:
        with _IMPORT_LOCK, mock.patch.object(signal, "signal", lambda *args: None):
            import dask_jobqueue  # noqa: F401
    from dask_jobqueue import SLURMCluster

    return SLURMCluster


_IMPORT_LOCK = threading.Lock()


@contextlib.contextmanager
def open_client(cluster=None, settings=None, n_workers=None, slurm=None):
    """Start (or connect to) the cluster; yield ``(client, dashboard_link)``; stop what it started.

    ``settings`` is the ``dask:`` settings section, ``slurm`` the site's ``slurm:`` section (account,
    qos, gres name for a SLURMCluster), both as the caller loaded them (``None``: defaults).
    """
    from distributed import Client

    full = dask_settings(settings)
    cluster = cluster or full["cluster"]
    n = n_workers or full["workers"]
    quiet_scheduler_shutdown()
    kind = kind_of(cluster)
    with contextlib.ExitStack() as stack:
        security = None
        if kind == "address":
            client = stack.enter_context(_address_client(cluster))
            c = None
        elif kind == "local":
            import dask
            from distributed import LocalCluster

            local = full["local"]
            security = _local_security()
            stack.enter_context(dask.config.set(LOCAL_WORKER_CONFIG))  # also for restarted workers
            # scheduler, nannies and workers: tls://127.0.0.1 with the user's credentials
            c = stack.enter_context(LocalCluster(
                n_workers=n, threads_per_worker=local["threads_per_worker"], processes=True,
                memory_limit=local["memory_limit"], dashboard_address=_dashboard_address(),
                worker_dashboard_address=None, host="127.0.0.1", protocol="tls://", security=security,
                preload=[__name__]))
        elif kind == "slurm":
            from deepvre.site.slurm_terms import slurm_settings

            from .tls import user_security

            security = user_security()
            kwargs = slurm_cluster_kwargs(settings, slurm=slurm_settings(slurm), security=security)
            reason = scheduler_refusal(kwargs)
            if reason:
                raise ValueError(reason)
            c = stack.enter_context(slurm_cluster_class()(**kwargs))
            c.scale(n)
        else:
            from dask_kubernetes.operator import KubeCluster

            spec = kubernetes_cluster_spec(settings, n)
            c = stack.enter_context(KubeCluster(custom_cluster_spec=spec,
                                                namespace=spec["metadata"].get("namespace")))
        if c is not None:
            client = stack.enter_context(Client(c, security=security))
            if kind == "slurm":
                client.wait_for_workers(1, timeout=300)
        yield client, dashboard_link(client.dashboard_link if _dashboard_address() else "")
