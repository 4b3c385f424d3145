"""Notebook parameters, in one place: read, typed, parsed from text, checked, injected.

The CLI (``deepvre run -p NAME VALUE``), the panel's server extension, the widgets and DEEPaaS
``train`` all use these five functions, so a value means the same and an error reads the same
wherever it is given::

    declared = inspect("train.ipynb")       # {name: field}: papermill reads the 'parameters' cell
    values = check(declared, {"epochs": 3}) # unknown names, wrong types: ParameterError
    values = check(declared, from_texts(declared, {"epochs": "3"}))  # typed from text (CLI, forms)
    inject("train.ipynb", "out.ipynb", values)  # papermill's injected-parameters cell

A field is ``{name, type, kind, default, value, help}`` (and ``choices`` when its help says
``one of: a, b, c``: kind ``choice``, and :func:`check` refuses other values): ``type`` comes from an annotation
(``lr: float = 0.01``) or else the default's literal type (``epochs = 3`` is an int); ``kind`` is
what a form shows (``int``, ``float``, ``bool``, ``str``, ``json``, ``any``); ``default`` is the
source text papermill found and ``value`` its Python literal (None for an expression such as
``os.cpu_count()``). The panel's form is ``list(declared.values())``.
"""

import ast
import contextlib
import json
import os
import re
import tempfile

from ..errors import Invalid

__all__ = ["ParameterError", "as_text", "check", "field", "from_texts", "inject", "inspect",
           "lineage_of", "parse"]

# a type name -> the form's input kind
KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str",
         "list": "json", "tuple": "json", "dict": "json"}

# typing's names for the same containers (``List[int]`` is a list)
GENERICS = {"List": "list", "Tuple": "tuple", "Dict": "dict"}

# what each type expects, in an error
EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean (true or false)",
    "str": "a string",
    "list": "a list (YAML/JSON, e.g. [1, 2])",
    "tuple": "a list (YAML/JSON, e.g. [1, 2])",
    "dict": "a mapping (YAML/JSON, e.g. {a: 1})",
}

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


class ParameterError(Invalid):
    """A parameter the notebook does not declare, or a value of the wrong type (a 400)."""


# -- one type inference ---------------------------------------------------------------------

def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def field(name, inferred_type_name=None, default=None, help=""):
    """One declared parameter from papermill's inspection (the keyword names are papermill's).

    The type is the annotation's (``list[int]`` counts as ``list``); without one, the type of the
    default's literal; neither (``x = None``, ``n = os.cpu_count()``): ``None``, any value goes.
    """
    value = _literal(default) if default is not None else None
    type_name = (inferred_type_name or "None").strip().split("[", 1)[0]
    type_name = GENERICS.get(type_name, type_name)
    if type_name == "None" and value is not None:
        type_name = type(value).__name__
    out = {"name": name, "type": type_name, "kind": KINDS.get(type_name, "any"),
           "default": default, "value": value, "help": help or ""}
    choices = choices_of(help, type_name)
    if choices:
        out.update(kind="choice", choices=choices)
    return out


# "one of: local, slurm or kubernetes" in a parameter's help comment; the list ends at ; ( ) or the end
CHOICES = re.compile(r"\bone of:\s*([^;()]+)", re.IGNORECASE)
_CASTS = {"str": str, "int": int, "float": float}


def choices_of(help, type_name):
    """The values a parameter's help lists as ``one of: a, b or c``, of its type; None when it lists none."""
    match = CHOICES.search(help or "")
    if not match or type_name not in _CASTS:
        return None
    words = [w.strip().strip("\"'") for w in re.split(r",|\bor\b", match.group(1).strip().rstrip("."))]
    try:
        values = [_CASTS[type_name](w) for w in words if w]
    except ValueError:
        return None
    return values if len(values) >= 2 else None


# -- one inspection -------------------------------------------------------------------------

@contextlib.contextmanager
def _as_path(source):
    """``source`` as a local path: a notebook's bytes go to a private temporary file (papermill reads
    paths), so a caller that checked those bytes (their sha256) works on exactly them."""
    if not isinstance(source, (bytes, bytearray)):
        yield os.fspath(source)
        return
    with tempfile.TemporaryDirectory(prefix="deepvre-notebook-") as folder:  # 0700, this call's own
        path = os.path.join(folder, "notebook.ipynb")
        with open(path, "wb") as f:
            f.write(source)
        yield path


def inspect(source):
    """``{name: field}`` of a notebook (a local path, or its bytes), in the order it declares them."""
    import papermill

    with _as_path(source) as path:
        inspected = papermill.inspect_notebook(path)
    return {name: field(name, p.get("inferred_type_name"), p.get("default"), p.get("help"))
            for name, p in inspected.items()}


# -- one text parser ------------------------------------------------------------------------

def _bad(name, type_name, got):
    expected = EXPECTED.get(type_name, "a YAML value")
    return ParameterError(f"parameter {name!r} must be {expected}, not {got!r}")


def parse(declared_field, name, text):
    """The value of the text ``text`` given for parameter ``name`` (a CLI ``-p``, a form's box).

    ``declared_field`` is the name's field (None for a name the notebook does not declare). A
    string parameter takes the text as it is; a number or a boolean is read as one; anything else
    as YAML (``[1, 2]``, ``{a: 1}``, ``2.5``, ``null``).
    """
    import yaml

    type_name = (declared_field or {}).get("type", "None")
    if type_name == "str":
        return text
    low = text.strip().lower()
    if type_name == "bool":
        if low in TRUE or low in FALSE:
            return low in TRUE
        raise _bad(name, type_name, text)
    try:
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        value = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        raise _bad(name, type_name, text) from None
    return value


def from_texts(declared, texts):
    """``{name: text}`` -> ``{name: value}``, each parsed by its declared type (:func:`parse`)."""
    return {name: parse(declared.get(name), name, text) for name, text in texts.items()}


def as_text(declared_field):
    """The text :func:`parse` reads back as the field's default value ("" for none), for a form."""
    value = declared_field["value"]
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


# -- one checker ----------------------------------------------------------------------------

_FITS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, (list, tuple)),
    "tuple": lambda v: isinstance(v, (list, tuple)),
    "dict": lambda v: isinstance(v, dict),
}


def check(declared, values, allow_unknown=False):
    """Check ``values`` (``{name: value}``) against ``declared``; return the dict to inject.

    A name the notebook does not declare is an error unless ``allow_unknown`` (its value is kept
    as it is). A value must fit its type; a string given for a number, a boolean or a list is
    parsed as its text (:func:`parse`), so ``"3"`` is fine for an int. Floats take ints (``1`` ->
    ``1.0``); a tuple becomes a list.
    """
    if not isinstance(values, dict):
        raise ParameterError("parameters must be an object of name: value")
    unknown = sorted(set(values) - set(declared))
    if unknown and not allow_unknown:
        known = ", ".join(sorted(declared)) or "none (no cell tagged 'parameters')"
        error = ParameterError(f"unknown parameter(s) {', '.join(unknown)}; the notebook declares: {known}")
        error.unknown = unknown
        raise error
    out = {}
    for name, given in values.items():
        type_name = declared[name]["type"] if name in declared else "None"
        fits = _FITS.get(type_name, lambda v: True)
        value = given
        if isinstance(given, str) and not fits(given):
            value = parse(declared[name], name, given)
        if not fits(value):
            raise _bad(name, type_name, given)
        choices = declared.get(name, {}).get("choices")
        if choices and value not in choices:
            raise ParameterError(f"parameter {name!r} must be one of {', '.join(map(repr, choices))}, not {given!r}")
        if type_name == "float":
            value = float(value)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


# -- one injection --------------------------------------------------------------------------

def inject(source, dest, values, lineage=None, kernel_name=None, replace=False):
    """Write ``source`` (a path, or a notebook's bytes) to ``dest`` with papermill's
    injected-parameters cell holding ``values`` (already checked: :func:`check`).

    ``dest`` must not exist unless ``replace`` (then it is replaced whole, e.g. a run's own
    ``input.ipynb``). ``lineage`` (e.g. ``{"model": "cells", "version": "1.0.0"}``) goes into the
    notebook's metadata under ``deepvre.source``, so a run of it can be published with its lineage.
    ``kernel_name`` picks papermill's translator when it is not the notebook's own kernel.
    """
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from .. import atomic

    with _as_path(source) as path:
        nb = load_notebook_node(path)  # papermill's loader adds the metadata it expects
    nb = parameterize_notebook(nb, values, kernel_name=kernel_name)
    if lineage:
        nb.metadata.setdefault("deepvre", {})["source"] = dict(lineage)
    if replace:
        with atomic.replacing(dest, suffix=".ipynb") as tmp:
            nbformat.write(nb, tmp)
    else:
        with open(dest, "x", encoding="utf-8") as f:  # "x": never overwrite
            nbformat.write(nb, f)
    return dest


def lineage_of(path):
    """The ``deepvre.source`` metadata of a notebook written by :func:`inject` ({} if none)."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return {}
    return dict(nb.metadata.get("deepvre", {}).get("source", {}))
