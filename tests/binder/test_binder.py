"""Binder (repo2docker): the ``binder/`` folder is accepted, and what Binder does works.

``test_repo2docker_detects_the_binder_folder`` asks the real ``jupyter-repo2docker --no-build``
which files it found and what its Dockerfile does with them (fast). The ``binder`` tests do
what mybinder.org does, in a FRESH venv made from /usr/bin/python3: install
``binder/postBuild`` with a fresh home (it installs the project's lock with uv; the machine's uv
cache, filled by ``make setup``, keeps it quick), then execute every notebook in smoke mode with
papermill (slow: minutes; ``pytest -m binder``).
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.prereqs import REPO, require, require_program

R2D = os.path.join(os.path.dirname(sys.executable), "jupyter-repo2docker")
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*", "*.ipynb")))
INDEX = os.path.join(REPO, "notebooks", "index.ipynb")
# Binder's environment is the lock, version for version (test_binder_environment_is_the_lock), so every
# use case's code already runs in that environment through tests/notebooks. Here: the landing page and
# the fastest use case (lattice-qcd), with what postBuild made (its demo data, the catalog).
IN_BINDER = [os.path.join(REPO, "notebooks", "lattice-qcd", "lattice-qcd.ipynb")]
BADGE = "https://mybinder.org/v2/gh/deepvre/deepvre/HEAD?labpath=notebooks/index.ipynb"


def test_repo2docker_detects_the_binder_folder():
    require(os.path.exists(R2D), "needs jupyter-repo2docker in the venv (the test extra)")
    done = subprocess.run([R2D, "--no-build", "--no-run", "--debug", "--user-id", "1000", "--user-name", "jovyan",
                           REPO], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout + done.stderr
    assert "Building conda environment for python=3.11" in text  # binder/runtime.txt
    dockerfile = text[text.index("FROM "):]
    assert "apt-get install --yes --no-install-recommends xplanet-images" in dockerfile  # binder/apt.txt
    # postBuild installs the lock and the checkout, so it must run after the repository is copied
    assert "binder/requirements.txt" not in dockerfile  # the lock decides every version, not a second list
    copy = dockerfile.index("COPY --chown=1000:1000 src/ ${REPO_DIR}/")
    post = dockerfile.index("RUN ./binder/postBuild")
    assert copy < post


def test_binder_files_and_badge():
    post_build = Path(REPO, "binder", "postBuild").read_text()
    assert "--no-deps --require-hashes -r requirements.lock" in post_build  # exactly the lock
    assert os.access(os.path.join(REPO, "binder", "postBuild"), os.X_OK)
    readme = Path(REPO, "README.md").read_text()
    assert f"[![Binder](https://mybinder.org/badge_logo.svg)]({BADGE})" in readme
    assert os.path.exists(INDEX)
    index = Path(INDEX).read_text()
    for notebook in NOTEBOOKS:  # the landing page links every use case
        assert os.path.relpath(notebook, os.path.dirname(INDEX)) in index, notebook
    assert "MarketplaceBrowser" in index


@pytest.fixture(scope="module")
def binder(tmp_path_factory):
    """A fresh venv, and a home where binder/postBuild ran (it installs the lock into the venv)."""
    require(os.path.exists("/usr/bin/python3"), "needs Debian's /usr/bin/python3")
    require(os.path.isdir("/usr/share/xplanet/images"), "needs apt xplanet-images (binder/apt.txt)")
    require_program("bash")
    root = tmp_path_factory.mktemp("binder")
    venv, home = root / "venv", root / "home"
    home.mkdir()
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, timeout=300)
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    for key in ("PYTHONPATH", "DEEPVRE_MARKET_DIR", "DEEPVRE_MARKET_URL", "XDG_DATA_HOME", "JUPYTER_PATH"):
        env.pop(key, None)
    # pip's and uv's caches stay the machine's (quick); everything else lives in the fresh home
    env["PIP_CACHE_DIR"] = os.path.join(os.path.expanduser("~"), ".cache", "pip")
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "uv")
    env["HOME"] = str(home)
    done = subprocess.run(["./binder/postBuild"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return {"venv": venv, "home": home, "env": env, "log": done.stdout}


@pytest.mark.binder
def test_postbuild_published_the_base_model_and_made_the_demo_data(binder):
    catalog = binder["home"] / ".local" / "share" / "deepvre" / "market" / "catalog.sqlite"
    assert catalog.exists()
    out = subprocess.run([str(binder["venv"] / "bin" / "deepvre"), "market", "search", "mobilenet"],
                         env=binder["env"], capture_output=True, text=True, timeout=300, check=False)
    assert "mobilenet-v2-imagenet" in out.stdout, out.stdout + out.stderr
    assert len(list((binder["home"] / "demo-data" / "u1-beta2").iterdir())) >= 20


@pytest.mark.binder
def test_binder_environment_is_the_lock(binder):
    from tests.lockfile import locked_versions

    out = subprocess.run(["uv", "pip", "list", "--format", "json", "--python", str(binder["venv"] / "bin" / "python")],
                         env=binder["env"], capture_output=True, text=True, timeout=120, check=True)
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(out.stdout)}
    locked = locked_versions()
    assert {n: installed.get(n) for n in locked if installed.get(n) != locked[n]} == {}
    assert set(installed) - set(locked) <= {"deepvre", "pip"}  # pip came with the venv


@pytest.mark.binder
@pytest.mark.parametrize("notebook", IN_BINDER + [INDEX], ids=lambda p: os.path.relpath(p, REPO))
def test_notebook_runs_in_smoke_mode(binder, notebook, tmp_path):
    name = os.path.basename(notebook)
    executed = tmp_path / name
    params = ["-p", "workspace", str(tmp_path)] if notebook == INDEX else [
        "-p", "smoke", "True", "-p", "output_dir", "out", "-p", "executed_notebook", str(executed)]
    done = subprocess.run([str(binder["venv"] / "bin" / "python"), "-m", "papermill", notebook, str(executed),
                           "--cwd", str(tmp_path), "--no-progress-bar", *params],
                          env=binder["env"], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert executed.exists()
    if notebook == INDEX:
        text = executed.read_text()
        assert re.search(r"MarketplaceBrowser|application/vnd.jupyter.widget-view", text)
    else:  # a demo run publishes nothing unless asked (publish=True)
        found = subprocess.run([str(binder["venv"] / "bin" / "deepvre"), "market", "search", "lattice"],
                               env=binder["env"], capture_output=True, text=True, timeout=300, check=False)
        assert found.returncode == 0 and "lattice-u1-beta" not in found.stdout, found.stdout + found.stderr
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
