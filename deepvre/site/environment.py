"""Every ``DEEPVRE_*`` environment variable, declared once (issue 14).

Each variable is declared in ``variables.yaml`` beside this module (its trait name, help text,
who sets it and who reads it) and becomes a trait of :class:`Environment`, whose default is read
from the environment when it is first asked for on an instance, so make a fresh one where the
environment may have changed (``Environment().runs_dir``, or ``Environment(environ).pod_name``
for a given mapping). An empty value counts as unset (``None``).

Code that *sets* a variable for a child (the spawners, the run backends, ``deepvre serve``) uses
the names below (``environment.RUN_DIR``, ...), so a typo is an error, not a new variable.
``tests/test_environment.py`` fails on any ``DEEPVRE_*`` name in the sources not declared here.

Only the outside (the CLI, ``jupyterhub_config.py``, a served model's adapter) reads the settings
file's location from here; it loads the file once and hands the sections down as arguments.

``variables()`` lists them (name, help, value; secrets hidden) for ``deepvre hub check --explain``,
and ``markdown_table()`` is the table in docs/architecture.md (``python -m deepvre.site.environment``
prints it).
"""

import os
from pathlib import Path

import yaml
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
MLFLOW_URL = "DEEPVRE_MLFLOW_URL"
MLFLOW_TOKEN = "DEEPVRE_MLFLOW_TOKEN"
MLFLOW_TRACKING_URI = "DEEPVRE_MLFLOW_TRACKING_URI"
RUNS_DIR = "DEEPVRE_RUNS_DIR"
RUN_ID = "DEEPVRE_RUN_ID"
RUN_DIR = "DEEPVRE_RUN_DIR"
SERVE_MODEL = "DEEPVRE_SERVE_MODEL"
SERVE_DIR = "DEEPVRE_SERVE_DIR"
SERVE_TOKEN = "DEEPVRE_SERVE_TOKEN"
SERVE_TRY_TOKEN = "DEEPVRE_SERVE_TRY_TOKEN"
DEMO_DATA = "DEEPVRE_DEMO_DATA"
SERVER_SETTINGS = "DEEPVRE_SERVER_SETTINGS"
IMAGE = "DEEPVRE_IMAGE"
IMAGE_ID = "DEEPVRE_IMAGE_ID"

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


DECLARATIONS = Path(__file__).with_name("variables.yaml")


def _declarations():
    """``{name: {trait, help, set_by, read_by, secret}}`` from variables.yaml, checked against the
    constants above (each name in both, or the module fails to import)."""
    table = yaml.safe_load(DECLARATIONS.read_text())["variables"]
    constants = {value for key, value in globals().items() if key.isupper() and str(value).startswith("DEEPVRE_")}
    if set(table) != constants:
        raise RuntimeError(f"{DECLARATIONS.name} and the constants of {__name__} differ: "
                           f"{sorted(set(table) ^ constants)}")
    return table


class _Environment(HasTraits):
    def __init__(self, environ=None, **kwargs):
        self.environ = os.environ if environ is None else environ
        super().__init__(**kwargs)


Environment = type("Environment", (_Environment,), {
    "__doc__": "The ``DEEPVRE_*`` variables of ``environ`` (default: ``os.environ``), one trait each "
               "(declared in variables.yaml).",
    **{spec["trait"]: Variable(name, spec["help"], spec["set_by"], spec["read_by"], spec.get("secret", False))
       for name, spec in _declarations().items()},
})


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
