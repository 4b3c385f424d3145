"""Notebook parameters: read the declared ones with papermill, parse given values by their types.

A notebook declares its parameters in the cell tagged ``parameters``;
``papermill.inspect_notebook`` reads them back with their defaults (as source
text) and the annotated type, if any (``lr: float = 0.01``). Without an
annotation the type is that of the default literal (``epochs = 3`` is an int).
"""

import ast

import yaml

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


class ParameterError(ValueError):
    """A parameter that the notebook does not declare, or a value of the wrong type."""


def declared_parameters(notebook):
    """``{name: {"type": "int"|..., "default": value, "help": str}}`` from the ``parameters`` cell."""
    import papermill

    return from_inspection(papermill.inspect_notebook(notebook))


def from_inspection(inspected):
    """Turn ``papermill.inspect_notebook``'s answer into names, types and default values."""
    declared = {}
    for name, info in inspected.items():
        try:
            default = ast.literal_eval(info.get("default") or "None")
            literal = True
        except (ValueError, SyntaxError):
            default, literal = info.get("default"), False
        annotated = info.get("inferred_type_name")
        if annotated and annotated != "None":
            kind = annotated
        elif literal and default is not None:
            kind = type(default).__name__
        else:
            kind = None  # unknown: values are read as YAML
        declared[name] = {"type": kind, "default": default, "help": info.get("help", "")}
    return declared


def parse_value(name, kind, text):
    """Parse the command-line text ``text`` for parameter ``name`` of type ``kind``."""
    def bad(expected):
        return ParameterError(f"parameter {name!r} expects {expected}, got {text!r}")

    if kind == "str":
        return text
    if kind == "bool":
        low = text.strip().lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        raise bad("a boolean (true/false)")
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise bad("an integer") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise bad("a number") from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise bad(f"a {kind or 'YAML'} value") from None
    expected = {"list": list, "tuple": list, "dict": dict}.get(kind)
    if expected and not isinstance(value, expected):
        raise bad(f"a {kind} (YAML/JSON syntax, e.g. [1, 2])")
    return value


def coerce(declared, given, allow_unknown=False):
    """Check names against ``declared`` and parse string values by the declared type.

    Values that are not strings (from the Python API) are kept as they are.
    """
    unknown = sorted(set(given) - set(declared))
    if unknown and not allow_unknown:
        known = ", ".join(sorted(declared)) or "none (no cell tagged 'parameters')"
        raise ParameterError(
            f"unknown parameter(s) {', '.join(unknown)}; the notebook declares: {known} "
            "(use --allow-unknown to pass them anyway)"
        )
    out = {}
    for name, value in given.items():
        kind = declared.get(name, {}).get("type")
        out[name] = parse_value(name, kind, value) if isinstance(value, str) else value
    return out
