"""Installing deepvre enables both parts: the prebuilt lab extension and the server extension."""

import os
import re
import subprocess
import sys

from tests.prereqs import REPO, require

BIN = os.path.dirname(sys.executable)
LAB = os.path.join(REPO, "extensions", "labextension")


def jupyter(*args):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([os.path.join(BIN, "jupyter"), *args], capture_output=True, text=True, check=False,
                          env=env, timeout=120)
    return re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)


def test_lab_extension_is_installed_and_enabled():
    out = jupyter("labextension", "list")
    assert re.search(r"^\s*deepvre v[\d.]+ enabled OK", out, re.MULTILINE), out


def test_server_extension_is_enabled():
    out = jupyter("server", "extension", "list")
    assert re.search(r"^\s*deepvre_jupyter enabled", out, re.MULTILINE), out
    assert re.search(r"deepvre_jupyter\s+OK", out), out


def test_typescript_unit_tests_pass():
    """The panel's jest tests (pure functions: search query, form parsing, display)."""
    require(os.path.isdir(os.path.join(LAB, "node_modules", "jest")),
            "needs extensions/labextension/node_modules (make labextension)")
    proc = subprocess.run(["npx", "--no-install", "jest", "--ci"], cwd=LAB, capture_output=True, check=False,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"Tests:\s+\d+ passed", proc.stderr + proc.stdout)
