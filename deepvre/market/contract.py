"""The marketplace's OpenAPI document (``openapi.yaml``) as its contract.

The service checks each request against the document before a handler runs, so that it accepts
exactly what the document says: query and path parameters are coerced by their declared type and
checked against their schema, JSON bodies against theirs (OpenAPI 3.1: plain JSON Schema 2020-12).
Pure functions over the loaded document; problems raise :class:`BadRequest` (answered 400), one
readable line each, e.g. ``limit: 5000 is greater than the maximum of 1000``.
"""

import functools
import json
import re
import typing
from pathlib import Path

import jsonschema
import yaml

from ..errors import Invalid

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")  # an OpenAPI path item's


class BadRequest(Invalid):
    """A request the OpenAPI document does not allow; ``errors`` lists every problem."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


@functools.cache
def document():
    """The OpenAPI document, loaded once."""
    return yaml.safe_load(OPENAPI_FILE.read_text())


def _resolve(node):
    """``node`` with a local ``$ref`` followed (``#/components/...``)."""
    while isinstance(node, dict) and "$ref" in node:
        target = document()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _validator(schema):
    # the document's components travel along, so that "#/components/..." references resolve
    return jsonschema.Draft202012Validator({**schema, "components": document().get("components", {})})


class Operation(typing.NamedTuple):
    """One documented operation, its schemas compiled: ``params`` [(parameter, validator)],
    ``body`` (its JSON requestBody object, or None) with ``body_validator``, and ``secured``
    (whether it needs credentials)."""

    params: list
    body: typing.Any
    body_validator: typing.Any
    secured: bool


def methods(path):
    """The HTTP methods documented for ``path`` (e.g. ``["GET", "PATCH"]``): the ``Allow`` header."""
    item = document()["paths"].get(path) or {}
    return [m.upper() for m in METHODS if m in item]


@functools.cache
def operation(path, method):
    """The :class:`Operation` for ``method`` on ``path`` (path-level parameters merged in), or
    None when the document has no such operation."""
    doc = document()
    item = doc["paths"].get(path) or {}
    op = item.get(method.lower())
    if op is None:
        return None
    params = {}
    for param in [*item.get("parameters", []), *op.get("parameters", [])]:
        param = _resolve(param)
        params[(param["name"], param["in"])] = param
    body = _resolve(op.get("requestBody"))
    schema = ((body or {}).get("content", {}).get("application/json") or {}).get("schema")
    return Operation(
        [(p, _validator(p.get("schema", {}))) for p in params.values()],
        body if schema is not None else None,
        _validator(schema) if schema is not None else None,
        bool(op.get("security", doc.get("security"))),
    )


def _short(text, limit=200):
    return text if len(text) <= limit else text[: limit - 40] + " ... " + text[-35:]


def _problems(validator, value, where):
    found = []
    for err in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path))):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        found.append(f"{where}{path}: {_short(err.message)}")
    return found


def _coerce(raw, schema):
    """A query or path string as the type its schema declares (None: not of that type)."""
    kind = schema.get("type")
    if kind == "integer":
        return int(raw) if re.fullmatch(r"-?[0-9]{1,30}", raw) else None
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw)
    return raw


def parameters(op, path_values, query):
    """The checked parameters of a request for ``op`` as ``{name: value}`` (defaults filled in).

    ``path_values``: {name: decoded text}; ``query``: {name: [raw bytes, ...]} (tornado's
    ``query_arguments``). Query parameters the document does not name are ignored; a named one may
    appear once.
    """
    values, found = {}, []
    for param, validator in op.params:
        name, where, schema = param["name"], param["in"], param.get("schema", {})
        if where == "path":
            raw = path_values.get(name)
        elif where == "query":
            given = query.get(name, [])
            if len(given) > 1:
                found.append(f"{name}: given {len(given)} times, at most once")
                continue
            try:
                raw = given[0].decode("utf-8") if given else None
            except UnicodeDecodeError:
                found.append(f"{name}: not UTF-8")
                continue
        else:
            continue  # headers: the security scheme's Authorization is checked by the hub
        if raw is None:
            if param.get("required"):
                found.append(f"{name}: required")
            elif "default" in schema:
                values[name] = schema["default"]
            continue
        value = _coerce(raw, schema)
        if value is None:
            found.append(f"{name}: {_short(repr(raw))} is not of type {schema.get('type')!r}")
            continue
        problems = _problems(validator, value, name)
        found += problems
        if not problems:
            values[name] = value
    if found:
        raise BadRequest(found)
    return values


def json_body(op, raw):
    """The checked JSON body of a request for ``op`` (None when it has none and needs none)."""
    if op.body is None:
        return None
    if not raw:
        if op.body.get("required"):
            raise BadRequest(["body: required (a JSON object)"])
        return None
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise BadRequest([f"body: not JSON ({err})"]) from None
    problems = _problems(op.body_validator, value, "body")
    if problems:
        raise BadRequest(problems)
    return value


def path_names(path):
    """The names of ``path``'s parameters in order, e.g. ``["name", "version"]``."""
    return re.findall(r"{(\w+)}", path)
