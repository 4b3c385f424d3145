"""Site settings: one YAML file, validated against the JSON Schemas in ``schemas/``.

Each ``schemas/<key>.json`` describes one top-level key; the loader combines every file
present, so a new section is a new schema file. Unknown keys are errors, and every error names
its key path, e.g. ``profiles[2].gpus: -1 is less than the minimum of 0``.
"""

import copy
import functools
import json
import os
from pathlib import Path

import jsonschema
import yaml

from ..errors import Invalid
from .environment import SERVER_SETTINGS, Environment

SCHEMA_DIR = Path(__file__).parent / "schemas"


def source_checkout(here=__file__):
    """The checkout this module runs from (as ``deepvre/site/settings.py``), or ``None``
    when deepvre is installed from a wheel."""
    root = Path(here).resolve().parents[2]
    parts = (root / "deepvre" / "site", root / "extensions" / "deepvre_jupyter", root / "hub" / "deepvre_hub")
    return root if all(part.is_dir() for part in parts) else None


# The development defaults live in a checkout: hub/settings.yaml, var/ (the hub's state) and
# node_modules/ (the proxy). An installed deepvre uses the system's places, never the folder it
# runs in (a root hub started in a folder others can write would trust what they put there).
REPO_ROOT = source_checkout()
if REPO_ROOT is not None:
    DEFAULT_SETTINGS_FILE, DEFAULT_STATE_DIR = REPO_ROOT / "hub" / "settings.yaml", REPO_ROOT / "var"
else:
    DEFAULT_SETTINGS_FILE = Path("/etc/deepvre/settings.yaml")
    DEFAULT_STATE_DIR = (Path("/var/lib/deepvre") if os.geteuid() == 0
                         else Path.home() / ".local" / "state" / "deepvre")


class SettingsError(Invalid):
    """Settings that do not match the schema; ``errors`` lists one message per problem."""

    def __init__(self, errors, source=None):
        self.errors = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid settings{where}:\n  " + "\n  ".join(self.errors))


def section_schemas(schema_dir=SCHEMA_DIR):
    """The schema of each top-level key, read from ``<schema_dir>/<key>.json``."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(schema_dir).glob("*.json"))}


def combined_schema(schema_dir=SCHEMA_DIR):
    """One schema for the whole file: every section, and no other top-level key."""
    sections = section_schemas(schema_dir)
    for schema in sections.values():
        schema.pop("$schema", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": sections,
        "additionalProperties": False,
    }


def key_path(path):
    """``["profiles", 2, "gpus"]`` -> ``profiles[2].gpus``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _messages(error):
    """Readable messages for one jsonschema error, each starting with the key path."""
    where = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known))
        scope = "top-level key" if not where else "key"
        return [
            f"{key_path(where + [key])}: unknown {scope} (known: {', '.join(known)})" for key in extra
        ]
    if error.validator in ("oneOf", "anyOf") and error.context:
        return [m for sub in error.context for m in _messages(sub)]
    return [f"{key_path(where) or '(top level)'}: {error.message}"]


def fill_defaults(value, schema):
    """A copy of ``value`` with the schema's ``default`` filled in for absent object keys."""
    value = copy.deepcopy(value)
    kind = schema.get("type")
    if isinstance(value, dict) and (kind == "object" or "properties" in schema):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                value[key] = fill_defaults(value[key], sub)
            elif "default" in sub:  # and the default's own keys' defaults
                value[key] = fill_defaults(sub["default"], sub)
            elif sub.get("type") == "object":
                value[key] = fill_defaults({}, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [fill_defaults(item, schema["items"]) for item in value]
    return value


@functools.lru_cache(maxsize=8)
def _checker(schema_dir):
    """The combined schema of ``schema_dir`` and its validator, read once per process: sections
    are validated wherever they are handed in (:func:`validated_section`), not only at start."""
    schema = combined_schema(schema_dir)
    return schema, jsonschema.Draft202012Validator(schema)


def validate_settings(settings, schema_dir=SCHEMA_DIR, source=None):
    """Check ``settings`` (a dict) and return a copy with defaults filled in.

    Raises :class:`SettingsError` listing every problem with its key path.
    """
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise SettingsError([f"(top level): expected a mapping of sections, got {type(settings).__name__}"], source)
    schema, validator = _checker(str(schema_dir))
    errors = []
    for error in sorted(validator.iter_errors(settings), key=lambda e: list(map(str, e.absolute_path))):
        errors.extend(_messages(error))
    if not errors and isinstance(settings.get("profiles"), list):
        from .profiles import check_profiles

        errors.extend(check_profiles(settings["profiles"]))
    if errors:
        raise SettingsError(errors, source)
    return fill_defaults(settings, schema)


def validated_section(name, section=None, schema_dir=SCHEMA_DIR):
    """The settings section ``name`` (a dict, or ``None`` for empty) validated, with every default
    filled in: the one loader's answer for code handed a section that may not come from
    :func:`load_settings` (a caller's dict). Errors are its :class:`SettingsError` (``name.KEY``)."""
    given = {} if section is None else {name: section}
    return validate_settings(given, schema_dir=schema_dir)[name]


def load_settings(path=None, schema_dir=SCHEMA_DIR):
    """Read and validate a settings YAML file (default: ``$DEEPVRE_SETTINGS`` or hub/settings.yaml)."""
    path = Path(path or Environment().settings or DEFAULT_SETTINGS_FILE)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SettingsError([f"settings file not found: {path}"], path) from None
    except yaml.YAMLError as err:
        raise SettingsError([f"not valid YAML: {err}"], path) from None
    return validate_settings(data, schema_dir=schema_dir, source=path)


def for_servers(settings):
    """What a user's server needs of the loaded ``settings`` (no secrets): the backend of the
    runs its panel starts, and the ``slurm:`` and ``dask:`` sections (a Slurm run's terms, the
    Dask clusters). The hub hands it to every server as JSON (``$DEEPVRE_SERVER_SETTINGS``).

    Panel runs are ``local`` in every mode: on Slurm the server's own job already holds the
    profile's cores and GPUs, and the run uses them (a second job would queue for more);
    ``deepvre run --backend slurm`` submits a job of its own."""
    return {
        "runs_backend": "local",
        "slurm": settings.get("slurm") or {},
        "dask": settings.get("dask") or {},
    }


def server_sections(environ=None):
    """In a user's server (and its kernels): what :func:`for_servers` gave it
    (``$DEEPVRE_SERVER_SETTINGS``); ``{}`` outside a hub. A value that is not a JSON object is
    a :class:`SettingsError`."""
    text = Environment(environ).server_settings
    if not text:
        return {}
    try:
        sections = json.loads(text)
    except ValueError as err:
        raise SettingsError([f"not JSON: {err}"], SERVER_SETTINGS) from None
    if not isinstance(sections, dict):
        raise SettingsError(["not a JSON object"], SERVER_SETTINGS)
    return sections


def state_dir(settings, override=None):
    """The folder for the hub's state: ``override``, ``hub.state_dir``, else ``var/`` in a checkout
    (installed: /var/lib/deepvre as root, ~/.local/state/deepvre otherwise)."""
    chosen = override or Environment().state_dir or settings.get("hub", {}).get("state_dir")
    return Path(chosen or DEFAULT_STATE_DIR).resolve()
