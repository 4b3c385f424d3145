"""Marketplace metadata: AI4OS Hub v2 documents with a ``deepvre`` section.

The AI4OS part is checked with the AI4OS project's own validator (PyPI ``ai4-metadata``, the
schema behind ``ai4-metadata validate``); the ``deepvre`` section with
``deepvre/schemas/market-entry.json``. Errors come back as a list of readable lines, each naming
its key path, e.g. ``deepvre.input.shape: 'x' is not of type 'array'``.

DEEP-era v1 documents import through ``ai4_metadata.migrate.migrate``, the package's own migration.
"""

import json
import re
from pathlib import Path

import jsonschema
import yaml

from ..errors import Invalid

SECTION_SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schemas" / "market-entry.json"
SECTION = "deepvre"
# File names inside an artifact: one plain name, no folders, no leading dot (fullmatch: no trailing newline).
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
REFUSED_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".npy", ".npz")


class MetadataError(Invalid):
    """Metadata that fails validation; ``errors`` lists every problem."""

    status = 422  # the service answers unprocessable metadata with every problem

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("invalid metadata:\n  " + "\n  ".join(self.errors))


def _key_path(path):
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _short(message, limit=200):
    """A jsonschema message with any long quoted instance cut down to ``limit`` characters."""
    return message if len(message) <= limit else message[: limit - 40] + " ... " + message[-35:]


def _ai4_validator():
    from ai4_metadata import metadata as ai4

    return ai4.get_validator_for_schema(ai4.get_latest_schema())


def _section_validator():
    return jsonschema.Draft202012Validator(json.loads(SECTION_SCHEMA_FILE.read_text()))


def errors(document):
    """Every problem with ``document`` (a dict), as readable lines; empty when valid."""
    if not isinstance(document, dict):
        return [f"(top level): expected a mapping, got {type(document).__name__}"]
    found = []
    for err in sorted(_ai4_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        found.append(f"{_key_path(err.absolute_path)}: {_short(err.message)} (AI4OS v2)")
    section = document.get(SECTION)
    if section is None:
        found.append(f"{SECTION}: missing (deepvre's section: name, version, use_case, input, output, visibility)")
    else:
        for err in sorted(_section_validator().iter_errors(section), key=lambda e: list(map(str, e.absolute_path))):
            found.append(f"{_key_path([SECTION, *err.absolute_path])}: {_short(err.message)}")
        if isinstance(section, dict) and section.get("visibility") == "group" and not section.get("groups"):
            found.append(f"{SECTION}.groups: a `group` model needs at least one group")
    return found


def validate(document):
    """Return ``document`` if valid, else raise :class:`MetadataError` with every problem."""
    problems = errors(document)
    if problems:
        raise MetadataError(problems)
    return document


def check_file_names(names):
    """Problems with artifact file names: path tricks, hidden files, pickle-like formats."""
    problems = []
    for name in names:
        if not isinstance(name, str) or not FILE_NAME.fullmatch(name) or ".." in name:
            problems.append(f"files: {name!r} is not a plain file name (letters, digits, . _ -; no folders)")
        elif name.lower().endswith(REFUSED_SUFFIXES):
            problems.append(f"files: {name!r}: pickle-based formats are refused; use .keras and JSON")
    return problems


def load(path):
    """Read a JSON or YAML metadata file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MetadataError([f"{path}: file not found"]) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise MetadataError([f"{path}: not valid JSON/YAML: {err}"]) from None
    return data


def migrate_v1(path, section=None):
    """A v2 document from a DEEP v1 file, through ``ai4_metadata.migrate``.

    ``section`` (deepvre's fields) is added as given; the result is not validated here, so the
    caller sees every remaining gap at once with :func:`errors`.
    """
    from ai4_metadata import metadata as ai4
    from ai4_metadata import migrate

    v1 = load(path)
    v1_errors = [
        f"{_key_path(e.absolute_path)}: {e.message} (AI4OS v1)"
        for e in ai4.get_validator_for_schema(ai4.get_schema(ai4.MetadataVersions.V1)).iter_errors(v1)
    ]
    if v1_errors:
        raise MetadataError(v1_errors)
    document = json.loads(json.dumps(migrate.migrate(Path(path))))
    # The migration leaves unknown values as null; drop them so that the errors name what is missing.
    document["links"] = {k: v for k, v in (document.get("links") or {}).items() if v is not None}
    if section is not None:
        document[SECTION] = section
    return document
