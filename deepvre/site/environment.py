"""Every ``DEEPVRE_*`` environment variable, declared once (issue 14).

Each variable is a trait of :class:`Environment` whose default is read from the environment when
it is first asked for on an instance, so make a fresh one where the environment may have changed
(``Environment().runs_dir``, or ``Environment(environ).pod_name`` for a given mapping). An empty
value counts as unset (``None``). The help text of each says who sets it and who reads it.

Code that *sets* a variable for a child (the spawners, the run backends, ``deepvre serve``) uses
the names below (``environment.RUN_DIR``, ...), so a typo is a ``NameError``, not a new variable.
``tests/test_environment.py`` fails on any ``DEEPVRE_*`` name in the sources not declared here.

Only the outside (the CLI, ``jupyterhub_config.py``, a served model's adapter) reads the settings
file's location from here; it loads the file once and hands the sections down as arguments.

``variables()`` lists them (name, help, value; secrets hidden) for ``deepvre hub check --explain``,
and ``markdown_table()`` is the table in docs/architecture.md (``python -m deepvre.site.environment``
prints it).
"""

import os

from traitlets import HasTraits, Unicode

SETTINGS = "DEEPVRE_SETTINGS"
STATE_DIR = "DEEPVRE_STATE_DIR"
HUB_IP = "DEEPVRE_HUB_IP"
HUB_PORT = "DEEPVRE_HUB_PORT"
MODE = "DEEPVRE_MODE"
PROFILE = "DEEPVRE_PROFILE"
GPUS = "DEEPVRE_GPUS"
CPU_LIMIT = "DEEPVRE_CPU_LIMIT"
MEM_LIMIT = "DEEPVRE_MEM_LIMIT"
POD_NAME = "DEEPVRE_POD_NAME"
POD_UID = "DEEPVRE_POD_UID"
NAMESPACE = "DEEPVRE_NAMESPACE"
ACCESS_TOKEN = "DEEPVRE_ACCESS_TOKEN"
OIDC_CLIENT_SECRET = "DEEPVRE_OIDC_CLIENT_SECRET"
MARKET_URL = "DEEPVRE_MARKET_URL"
MARKET_TOKEN = "DEEPVRE_MARKET_TOKEN"
MARKET_DIR = "DEEPVRE_MARKET_DIR"
MARKET_DATABASE_URL = "DEEPVRE_MARKET_DATABASE_URL"
RUNS_DIR = "DEEPVRE_RUNS_DIR"
RUN_ID = "DEEPVRE_RUN_ID"
RUN_DIR = "DEEPVRE_RUN_DIR"
SERVE_MODEL = "DEEPVRE_SERVE_MODEL"
SERVE_DIR = "DEEPVRE_SERVE_DIR"
SERVE_TOKEN = "DEEPVRE_SERVE_TOKEN"
DEMO_DATA = "DEEPVRE_DEMO_DATA"
SERVER_SETTINGS = "DEEPVRE_SERVER_SETTINGS"

# who sets or reads several of them
USER_CODE = "the user's code (informational)"
LOCAL_SPAWNER = "the local spawner (`deepvre.site.profiles.local_environment`)"
KUBERNETES_VALUES = "the Kubernetes values (`deepvre_hub.kubernetes`)"
RUN_BACKENDS = "the run backends (`deepvre.runs.backends.local`, `deepvre.runs.backends.slurm`)"
LOAD_FOR_HUB = "`deepvre_hub.modes.load_for_hub`"

HIDDEN = "(set, hidden)"
UNSET = "(unset)"


class Variable(Unicode):
    """One environment variable as a trait: its value (``None`` when unset or empty) is read from
    the instance's ``environ`` when first asked for. ``secret`` ones are never shown."""

    def __init__(self, name, help, set_by, read_by, secret=False):
        super().__init__(None, allow_none=True, help=f"{help} Set by: {set_by}. Read by: {read_by}.")
        self.metadata.update(env=name, set_by=set_by, read_by=read_by, secret=secret)

    def default(self, obj=None):
        if obj is None:
            return None
        return obj.environ.get(self.metadata["env"]) or None


class Environment(HasTraits):
    """The ``DEEPVRE_*`` variables of ``environ`` (default: ``os.environ``), one trait each."""

    settings = Variable(
        SETTINGS, "The site settings YAML, e.g. /srv/site/settings.yaml (default: hub/settings.yaml in a checkout, "
        "/etc/deepvre/settings.yaml installed).",
        "the admin or user (`DEEPVRE_SETTINGS=... deepvre hub up`), and `deepvre hub up` for its hub process",
        "`jupyterhub_config.py` (`deepvre.site.settings.load_settings`), and the CLI as the default of "
        "`--settings` (`deepvre hub check`, `deepvre run`, `deepvre preprocess`)")
    state_dir = Variable(
        STATE_DIR, "The hub's state folder (database, secrets, marketplace), e.g. /srv/deepvre "
        "(default: hub.state_dir, else var/ in a checkout; installed: /var/lib/deepvre as root).",
        "`deepvre hub up` (`--state-dir`) for its hub process",
        "`deepvre.site.settings.state_dir` in the hub, `deepvre.market.service` (the marketplace's folder)")
    hub_ip = Variable(
        HUB_IP, "Public address overriding hub.ip, e.g. 0.0.0.0.",
        "`deepvre hub up --ip` for its hub process", LOAD_FOR_HUB)
    hub_port = Variable(
        HUB_PORT, "Public port overriding hub.port, e.g. 8000.",
        "`deepvre hub up --port` for its hub process", LOAD_FOR_HUB)
    mode = Variable(
        MODE, "The hub's mode, in a user's server (and the Kubernetes hub): slurm or kubernetes (unset: local).",
        "the Slurm spawner (`deepvre_hub.slurm`) and the Kubernetes values (`deepvre_hub.kubernetes`)",
        USER_CODE)
    profile = Variable(
        PROFILE, "The hardware profile slug the user's server runs with, e.g. gpu-1.",
        "every spawner (`deepvre.site.profiles.local_environment`, `deepvre_hub.slurm`, `deepvre_hub.kubernetes`)",
        USER_CODE)
    gpus = Variable(
        GPUS, "GPUs the profile of a Kubernetes server asks for, e.g. 1.",
        "the Kubernetes spawner's profile overrides (`deepvre_hub.kubernetes`)", USER_CODE)
    cpu_limit = Variable(
        CPU_LIMIT, "Cores of a local server's profile, e.g. 4.", LOCAL_SPAWNER, USER_CODE)
    mem_limit = Variable(
        MEM_LIMIT, "Bytes of memory of a local server's profile, e.g. 17179869184.", LOCAL_SPAWNER, USER_CODE)
    pod_name = Variable(
        POD_NAME, "The user's pod (Kubernetes downward API), e.g. jupyter-ana.",
        KUBERNETES_VALUES,
        "`deepvre.site.kubernetes_terms.pod_owner_reference` (owner of the user's DaskClusters)")
    pod_uid = Variable(
        POD_UID, "The uid of the user's pod (Kubernetes downward API).",
        KUBERNETES_VALUES,
        "`deepvre.site.kubernetes_terms.pod_owner_reference`")
    namespace = Variable(
        NAMESPACE, "The user's Kubernetes namespace (downward API), e.g. deepvre-ana.",
        KUBERNETES_VALUES,
        "`deepvre.pipelines.clusters.kubernetes_cluster_spec` (where DaskClusters go)")
    access_token = Variable(
        ACCESS_TOKEN, "The user's current OIDC access token (also in OAUTH_ACCESS_TOKEN).",
        "the hub's OIDC authenticator (`deepvre_hub.oidc.token_environment`)", "the user's code", secret=True)
    oidc_client_secret = Variable(
        OIDC_CLIENT_SECRET, "The OIDC client secret; the default of oidc.client_secret_env, which may name "
        "another variable.", "the admin (a Kubernetes Secret in the Helm values)",
        "`deepvre_hub.oidc.client_secret`", secret=True)
    market_url = Variable(
        MARKET_URL, "The marketplace service inside a hub, e.g. http://127.0.0.1:10123/services/marketplace/ "
        "(unset: the local catalog outside a hub; an error inside one).",
        "the hub for every server (`deepvre.market.service.singleuser_environment`)",
        "`deepvre.market.client.connect`")
    market_token = Variable(
        MARKET_TOKEN, "A token for the marketplace alone, made at each server start.",
        "the hub (`deepvre_hub.market_token`)", "`deepvre.market.client.connect`", secret=True)
    market_dir = Variable(
        MARKET_DIR, "The local catalog folder, e.g. ~/.local/share/deepvre/market "
        "(the marketplace service: STATE_DIR/marketplace).",
        "the user, and the hub for the marketplace service (`deepvre.market.service`)",
        "`deepvre.market.catalog`, `deepvre.market.service`, `deepvre_hub.service_accounts`")
    market_database_url = Variable(
        MARKET_DATABASE_URL, "The marketplace service's catalog database, e.g. "
        "postgresql+psycopg://market@db/market (may hold a password).",
        "the hub for the marketplace service (`deepvre.market.service`)", "`deepvre.market.app`",
        secret=True)
    runs_dir = Variable(
        RUNS_DIR, "The folder of batch runs, e.g. ~/runs (the default).", "the user",
        "`deepvre.runs.store.default_runs_dir`, `deepvre.serving.model.train`")
    run_id = Variable(
        RUN_ID, "The id of the run a notebook executes in, e.g. train-20261123-164618-a3f09c.",
        RUN_BACKENDS,
        "`deepvre.training.lineage`")
    run_dir = Variable(
        RUN_DIR, "The folder of the run a notebook executes in, e.g. ~/runs/train-20261123-164618-a3f09c.",
        RUN_BACKENDS,
        "`deepvre.training.lineage`, the notebooks")
    serve_model = Variable(
        SERVE_MODEL, "The served model, NAME[:VERSION] in the marketplace, e.g. tiny:1.0.0.",
        "`deepvre serve` (`deepvre.cli.serve.serve_environment`)",
        "`deepvre.serving.model`, `deepvre.serving.launch`")
    serve_dir = Variable(
        SERVE_DIR, "Where the served model's artifact is pulled (default: ~/.cache/deepvre/serve/NAME).",
        "`deepvre serve --artifact-dir`", "`deepvre.serving.model.artifact`")
    serve_token = Variable(
        SERVE_TOKEN, "The token every request to a served model on TCP must carry.",
        "the user, or `deepvre serve` (a new one)", "`deepvre serve`, `deepvre.serving.launch` (which drops it)",
        secret=True)
    server_settings = Variable(
        SERVER_SETTINGS, "What a user's server needs of the site settings, as JSON: the backend of "
        "its panel's runs and the slurm: and dask: sections, which hold no secrets.",
        "the hub for every server (`deepvre_hub.modes.configure_common`, from "
        "`deepvre.site.settings.for_servers`)",
        "`deepvre.site.settings.server_sections`: the server extension (`deepvre_jupyter.DeepvreExtension.site`) "
        "and the widgets, for the panel's runs and Dask clusters")
    demo_data = Variable(
        DEMO_DATA, "Where binder/postBuild writes the demo data (default: ~/demo-data).", "the user",
        "binder/postBuild")

    def __init__(self, environ=None, **kwargs):
        self.environ = os.environ if environ is None else environ
        super().__init__(**kwargs)


def declared():
    """``{variable name: trait}`` of every declared variable."""
    return {trait.metadata["env"]: trait for trait in Environment.class_traits().values()
            if isinstance(trait, Variable)}


def variables(environ=None):
    """``[(name, help, value)]`` of every variable, by name; the value is ``(unset)`` or, for a
    secret that is set, ``(set, hidden)``."""
    env = Environment(environ)
    rows = []
    for name, trait in sorted(declared().items()):
        value = getattr(env, trait.name)
        if value is None:
            value = UNSET
        elif trait.metadata["secret"]:
            value = HIDDEN
        rows.append((name, trait.help, value))
    return rows


def markdown_table():
    """The variables as a Markdown table (name, what, who sets it, who reads it), for the docs."""
    lines = ["| variable | what | set by | read by |", "|---|---|---|---|"]
    for name, trait in sorted(declared().items()):
        what = trait.help.split(" Set by: ")[0]
        cells = [f"`{name}`", what, trait.metadata["set_by"], trait.metadata["read_by"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
