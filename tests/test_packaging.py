"""An installed deepvre works outside a checkout (issue 14).

The fixture builds the wheel from a copy of the source tree and installs it, without its
dependencies, into a fresh venv that borrows the project venv's packages through a ``.pth`` line
(the project's own editable deepvre stays out of it: that directory's ``.pth`` files are not run).
The tests then use that install from an empty folder with ``PYTHONPATH`` unset: every module
imports, every file beside the code came along, ``deepvre --help`` and ``deepvre hub check``
answer, and JupyterHub loads the installed configuration (``--show-config``). The last test adds
a data file that no pattern of setup.cfg matches and checks that the data check names it.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.prereqs import REPO, require

ROOTS = {
    "deepvre": Path("deepvre"),
    "deepvre_jupyter": Path("extensions/deepvre_jupyter"),
    "deepvre_hub": Path("hub/deepvre_hub"),
}
# What a fresh clone lacks (ignored build outputs and caches), except the built lab extension
NOT_SOURCE = (".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", "var",
              "test-artifacts", ".*_cache")
UV = Path(sys.executable).parent / "uv"
TIMEOUT = 300

# Run by the installed interpreter: import every module of both packages, print {module: file}.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
found = {}
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    found[name] = package.__file__
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        if module.name != "deepvre_hub.jupyterhub_config":  # a config file: JupyterHub runs it
            found[module.name] = importlib.import_module(module.name).__file__
print(json.dumps(found))
"""
# Run by the installed interpreter: which of the files (package, relative path) it cannot find.
MISSING_DATA = """
import json, sys
from importlib import resources
wanted = json.loads(sys.stdin.read())
print(json.dumps([[p, rel] for p, rel in wanted if not resources.files(p).joinpath(rel).is_file()]))
"""


def copy_source(dest):
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    return dest


def build_and_install(src, where):
    """Build the wheel of ``src`` and install it into a new venv under ``where``; return the venv."""
    dist, venv = where / "dist", where / "venv"
    run([UV, "build", "--offline", "--wheel", "--no-build-isolation", "--python", sys.executable,
         "--out-dir", dist, src], cwd=where)
    (wheel,) = dist.glob("deepvre-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=where)
    run([UV, "pip", "install", "--offline", "--no-deps", "--python", venv / "bin" / "python", wheel], cwd=where)
    site = Path(sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv}))
    (site / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def outside_env(venv, **extra):
    """The environment of a user of the install: no PYTHONPATH, no venv or DEEPVRE_* of ours."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("DEEPVRE_")}
    env.update(PATH=f"{venv / 'bin'}:/usr/bin:/bin", TF_CPP_MIN_LOG_LEVEL="3", **extra)
    return env


def run(cmd, cwd, env=None, check=True, stdin=None):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, input=stdin, capture_output=True,
                            text=True, timeout=TIMEOUT, check=False)
    if check:
        assert result.returncode == 0, f"{cmd} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def source_files(src, modules):
    """``(package, path relative to the package)`` of the source tree's modules (``modules=True``)
    or of its data files, the other files beside them."""
    found = set()
    for package, root in ROOTS.items():
        for path in (src / root).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and (path.suffix == ".py") == modules:
                found.add((package, path.relative_to(src / root).as_posix()))
    return found


def missing_data(venv, src, cwd):
    wanted = sorted(source_files(src, modules=False))
    result = run([venv / "bin" / "python", "-c", MISSING_DATA], cwd=cwd, env=outside_env(venv),
                 stdin=json.dumps(wanted))
    return {tuple(item) for item in json.loads(result.stdout)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(venv, source copy, empty folder outside the checkout)``."""
    require(UV.exists(), "needs uv in the project venv (make setup)")
    where = tmp_path_factory.mktemp("packaging")
    src = copy_source(where / "src")
    venv = build_and_install(src, where)
    elsewhere = where / "elsewhere"
    elsewhere.mkdir()
    return venv, src, elsewhere


def test_every_module_imports_from_the_install(installed):
    venv, src, elsewhere = installed
    result = run([venv / "bin" / "python", "-c", IMPORT_ALL, *ROOTS], cwd=elsewhere, env=outside_env(venv))
    files = json.loads(result.stdout)
    site = Path(sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv})).resolve()
    assert [name for name, file in files.items() if not Path(file).resolve().is_relative_to(site)] == []
    installed_modules = {(name.split(".")[0], Path(file).resolve().relative_to(site).as_posix().split("/", 1)[1])
                         for name, file in files.items()}
    installed_modules.add(("deepvre_hub", "jupyterhub_config.py"))
    # a folder without __init__.py imports in a checkout but find: leaves it out of the wheel
    assert source_files(src, modules=True) - installed_modules == set()


def test_every_data_file_is_installed(installed):
    venv, src, elsewhere = installed
    assert source_files(src, modules=False), "no data files found: is the source copy empty?"
    assert missing_data(venv, src, elsewhere) == set(), "add a pattern to setup.cfg's [options.package_data]"


def test_cli_answers_outside_a_checkout(installed):
    venv, src, elsewhere = installed
    env = outside_env(venv)
    assert "hub" in run([venv / "bin" / "deepvre", "--help"], cwd=elsewhere, env=env).stdout
    # outside a checkout, the default settings file is the system's, never one in the current folder
    (elsewhere / "hub").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "hub" / "settings.yaml", elsewhere / "hub" / "settings.yaml")
    absent = run([venv / "bin" / "deepvre", "hub", "check"], cwd=elsewhere, env=env, check=False)
    assert absent.returncode == 2 and "settings file not found: /etc/deepvre/settings.yaml" in absent.stderr
    named = run([venv / "bin" / "deepvre", "hub", "check", "--settings", "hub/settings.yaml"], cwd=elsewhere, env=env)
    assert "settings OK: mode local" in named.stdout


def test_jupyterhub_loads_the_installed_configuration(installed):
    venv, src, elsewhere = installed
    python = venv / "bin" / "python"
    found = run([python, "-c", "from deepvre_hub.launcher import CONFIG_FILE; print(CONFIG_FILE)"],
                cwd=elsewhere, env=outside_env(venv)).stdout.strip()
    site = Path(sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv}))
    assert Path(found) == site / "deepvre_hub" / "jupyterhub_config.py" and Path(found).is_file()
    # the services run as the hub's own account: as root they would need a venv others can read
    settings = yaml.safe_load((src / "hub" / "settings.yaml").read_text())
    settings["hub"]["service_accounts"] = {"marketplace": "", "idle-culler": ""}
    (elsewhere / "settings.yaml").write_text(yaml.safe_dump(settings))
    state = elsewhere / "state"
    state.mkdir(mode=0o700)
    env = outside_env(venv, DEEPVRE_SETTINGS=str(elsewhere / "settings.yaml"), DEEPVRE_STATE_DIR=str(state))
    shown = run([python, "-m", "jupyterhub", "-f", found, "--show-config"], cwd=elsewhere, env=env)
    assert "deepvre_hub.spawner.DeepvreSpawner" in shown.stdout


def test_a_data_file_no_pattern_matches_is_caught(installed, tmp_path):
    """The check fails on a file beside the code that setup.cfg's patterns leave out of the wheel."""
    src = copy_source(tmp_path / "src")
    stray = src / ROOTS["deepvre"] / "market" / "templates" / "entry.html"
    stray.parent.mkdir()
    stray.write_text("<p>{{ name }}</p>\n")
    venv = build_and_install(src, tmp_path)
    assert missing_data(venv, src, tmp_path) == {("deepvre", "market/templates/entry.html")}
