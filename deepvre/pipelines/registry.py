"""Pipelines and steps, plugged in by name.

Like papermill's engines: built-in pipelines register themselves with
``@register_pipeline("images")``; third parties add theirs through the entry-point
group ``deepvre.pipelines`` (``name = package.module:function``). Steps (per-record
transforms such as ``resize``) register with ``@register_step``; a step may also be
named by its import path ``package.module:function``.

A pipeline is ``plan(input, output, params) -> Plan``: the shards to write, each a
picklable task, plus the summary that goes into the manifest. The runner in
``deepvre.pipelines.run`` executes a plan on a Dask cluster.
"""

import pkgutil
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "deepvre.pipelines"
BUILTIN = ("images", "rasters", "flows", "lattice")

_pipelines = {}
_steps = {}


def register_pipeline(name):
    """Decorator: register ``plan(input, output, params)`` as the pipeline ``name``."""

    def decorate(func):
        _pipelines[name] = func
        return func

    return decorate


def register_step(name):
    """Decorator: register a step ``func(array, params) -> array`` under ``name``."""

    def decorate(func):
        _steps[name] = func
        return func

    return decorate


def _load_builtins():
    from . import flows, images, lattice, rasters  # noqa: F401 (each registers itself)


def _import_path(path):
    """A third party's step named ``package.module:function``."""
    if ":" not in path:
        raise KeyError(path)
    return pkgutil.resolve_name(path)


def pipeline_names():
    """Every pipeline known: built-in first, then entry points, sorted."""
    _load_builtins()
    names = set(_pipelines) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names, key=lambda n: (BUILTIN.index(n) if n in BUILTIN else len(BUILTIN), n))


def get_pipeline(name):
    """The plan function of pipeline ``name``; KeyError lists the known names."""
    _load_builtins()
    if name in _pipelines:
        return _pipelines[name]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            _pipelines[name] = ep.load()
            return _pipelines[name]
    raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(pipeline_names())}")


def get_step(name):
    """A step by registered name or ``module:function`` path."""
    _load_builtins()
    if name in _steps:
        return _steps[name]
    try:
        return _import_path(name)
    except (KeyError, ImportError, AttributeError):
        raise KeyError(f"unknown step {name!r}; known: {', '.join(sorted(_steps))}") from None


def describe(name):
    """First line of a pipeline's docstring, for ``deepvre preprocess --help``."""
    doc = (get_pipeline(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
