"""Notebook parameters: papermill's inspection turned into a form, and a form's values checked.

papermill reads the cell tagged ``parameters`` and infers each name's type and default;
the panel and the widgets build their form from :func:`form_fields`.
"""

import ast
import contextlib
import os
import tempfile

import nbformat

# papermill's inferred type names -> the form's input kinds
KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str",
         "list": "json", "dict": "json", "tuple": "json", "None": "any"}


class ParameterError(ValueError):
    """Form values that do not fit the notebook's parameters."""


def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def form_fields(inspected):
    """``papermill.inspect_notebook`` output -> ``[{name, type, kind, default, value, help}]``.

    papermill's type comes from an annotation (``epochs: int = 2``); without one, the
    default's literal type is used.
    ``default`` is the source text papermill found; ``value`` the Python literal (or None
    when the default is an expression such as ``os.cpu_count()``).
    """
    fields = []
    for name, p in inspected.items():
        type_name = (p.get("inferred_type_name") or "None").strip()
        default = p.get("default")
        value = _literal(default) if default is not None else None
        if type_name == "None" and value is not None:  # no annotation: the literal's type
            type_name = type(value).__name__
        fields.append({
            "name": name,
            "type": type_name,
            "kind": KINDS.get(type_name, "any"),
            "default": default,
            "value": value,
            "help": p.get("help") or "",
        })
    return fields


_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "json": lambda v: isinstance(v, (list, dict)),
    "any": lambda v: True,
}


def check_values(fields, values):
    """Check form ``values`` (a dict) against ``fields``; return the dict to inject.

    Unknown names and values of the wrong type are errors that name the parameter.
    """
    if not isinstance(values, dict):
        raise ParameterError("parameters must be an object of name: value")
    by_name = {f["name"]: f for f in fields}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; "
                             f"the notebook declares: {', '.join(by_name) or 'none'}")
    out = {}
    for name, value in values.items():
        kind = by_name[name]["kind"]
        if not _CHECKS[kind](value):
            raise ParameterError(f"parameter {name!r} must be {by_name[name]['type']}, not {value!r}")
        out[name] = float(value) if kind == "float" else value
    return out


@contextlib.contextmanager
def _as_path(source):
    """``source`` as a local path: a notebook's bytes go to a private temporary file (papermill reads
    paths), so a caller that checked those bytes (their sha256) works on exactly them."""
    if not isinstance(source, (bytes, bytearray)):
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="deepvre-notebook-") as folder:  # 0700, this call's own
        path = os.path.join(folder, "notebook.ipynb")
        with open(path, "wb") as f:
            f.write(source)
        yield path


def inspect(source):
    """The form fields of a notebook: a local path, or its bytes."""
    import papermill

    with _as_path(source) as path:
        return form_fields(papermill.inspect_notebook(path))


def write_parameterized(source, dest, parameters, lineage=None):
    """Write ``source`` (a path, or a notebook's bytes) with papermill's injected-parameters cell to
    ``dest`` (which must not exist).

    ``lineage`` (e.g. ``{"model": "cells", "version": "1.0.0"}``) goes into the notebook's
    metadata under ``deepvre.source``, so a run of it can be published with its lineage.
    """
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    with _as_path(source) as path:
        nb = load_notebook_node(path)  # papermill's loader adds the metadata it expects
    nb = parameterize_notebook(nb, parameters)
    if lineage:
        nb.metadata.setdefault("deepvre", {})["source"] = dict(lineage)
    with open(dest, "x", encoding="utf-8") as f:  # "x": never overwrite
        nbformat.write(nb, f)
    return dest


def lineage_of(path):
    """The ``deepvre.source`` metadata of a notebook written by :func:`write_parameterized`."""
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return {}
    return dict(nb.metadata.get("deepvre", {}).get("source", {}))
