"""One import direction (issue 14): the core builds on nothing above it, and nothing imports the
hub package or loads an internal module by a name in a string.

Floors: the core (``deepvre.*``: the ground floor ``deepvre.site``, then market, pipelines, runs,
science, training, serving and the small shared modules); above it the Jupyter side (the package
``deepvre_jupyter``: server extension and widgets; and the command line ``deepvre.cli``) and the hub
(``deepvre_hub``). Every ``import`` in the three packages, at any depth of a function, is read with
``ast`` and resolved (relative ones too).

``REMAINING`` lists the arrows that still run back up, each to be removed by the renovation:
the test fails on any arrow not listed, and on a listed one that is gone (so the list only
shrinks).
"""

import ast
from pathlib import Path

import pytest

from tests.prereqs import REPO

ROOTS = {
    "deepvre": Path(REPO) / "deepvre",
    "deepvre_jupyter": Path(REPO) / "extensions" / "deepvre_jupyter",
    "deepvre_hub": Path(REPO) / "hub" / "deepvre_hub",
}
JUPYTER_SIDE = ("deepvre_jupyter", "deepvre.cli")
# the ground floor: settings, profiles, each backend's pure terms, and the errors they raise
GROUND = ("deepvre.site", "deepvre.errors")

# (importer, imported or "<string>") still to be turned around
REMAINING = set()


def floor(module):
    """``ground``, ``core``, ``jupyter`` or ``hub``."""
    def within(names):
        return any(module == name or module.startswith(name + ".") for name in names)

    if within(("deepvre_hub",)):
        return "hub"
    if within(JUPYTER_SIDE):
        return "jupyter"
    return "ground" if within(GROUND) else "core"


def modules():
    """``{module name: (source, whether it is a package)}`` of the three packages."""
    found = {}
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path.read_text(), is_package)
    return found


def imports(name, source, is_package=False):
    """Every module ``name``'s source imports (resolved), and ``"<string>"`` for each
    ``importlib.import_module`` / ``__import__`` call."""
    tree = ast.parse(source)
    base = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__"):
                found.add("<string>")
    return {m for m in found if m == "<string>" or m.split(".")[0] in ROOTS}


def back_arrows(sources):
    """``{(importer, imported)}`` that run back up (``sources``: as :func:`modules`): the ground
    floor to anything above it, the core to the Jupyter side or the hub, the Jupyter side to the hub, the hub to the Jupyter side, and
    string loads anywhere. Any module of the hub is reported as ``deepvre_hub``."""
    arrows = set()
    for name, (source, is_package) in sources.items():
        for target in imports(name, source, is_package):
            if target == "<string>":
                arrows.add((name, target))
                continue
            here, there = floor(name), floor(target)
            if there == "hub" and here != "hub":
                arrows.add((name, "deepvre_hub"))
            elif there == "jupyter" and here in ("ground", "core", "hub"):
                arrows.add((name, target))
            elif there == "core" and here == "ground" and target != "deepvre":
                arrows.add((name, target))
    return arrows


def test_no_import_runs_back_up():
    found = back_arrows(modules())
    new = sorted(found - REMAINING)
    assert not new, f"imports that run back up (or load a module by a string): {new}"
    gone = sorted(REMAINING - found)
    assert not gone, f"fixed: remove from REMAINING: {gone}"


@pytest.mark.parametrize("source, expected", [
    ("from deepvre_hub.slurm import sbatch_options", {("deepvre.runs.x", "deepvre_hub")}),
    ("def f():\n    import deepvre_hub.slurm", {("deepvre.runs.x", "deepvre_hub")}),
    ("from deepvre_jupyter import handlers", {("deepvre.runs.x", "deepvre_jupyter"), ("deepvre.runs.x", "deepvre_jupyter.handlers")}),
    ("import importlib\nimportlib.import_module('deepvre.market')", {("deepvre.runs.x", "<string>")}),
    ("from ..market import client", set()),
    ("import json", set()),
])
def test_the_walker_sees_an_arrow_back_up(source, expected):
    assert back_arrows({"deepvre.runs.x": (source, False)}) == expected


@pytest.mark.parametrize("source, expected", [
    ("from ..market import client", {("deepvre.site.x", "deepvre.market"), ("deepvre.site.x", "deepvre.market.client")}),
    ("from ..errors import Invalid", set()),
    ("from . import profiles", set()),
])
def test_the_ground_floor_imports_nothing_above_it(source, expected):
    assert back_arrows({"deepvre.site.x": (source, False)}) == expected
