"""The registry (names, entry points, steps by path), parameters, and the preprocess CLI."""

import json
import subprocess
import sys

import pytest

from deepvre.pipelines import params, registry

from .data import class_folders, conn_log


def test_builtin_pipelines_and_steps():
    assert registry.pipeline_names()[:4] == ["images", "rasters", "flows", "lattice"]
    assert registry.get_step("resize").__name__ == "resize"
    assert registry.get_step("tests.pipelines.faults:stall_first").__name__ == "stall_first"
    with pytest.raises(KeyError, match="unknown pipeline 'nope'"):
        registry.get_pipeline("nope")
    with pytest.raises(KeyError, match="unknown step"):
        registry.get_step("nope")


def test_entry_point_pipeline(tmp_path, monkeypatch):
    dist = tmp_path / "demo_pipeline-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-pipeline\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[deepvre.pipelines]\ndemo = tests.pipelines.faults:stall_first\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "demo" in registry.pipeline_names()
    assert registry.get_pipeline("demo").__name__ == "stall_first"


def test_params_coerced_and_unknown_named():
    got = params.resolve("images", params.parse_pairs(["size=32", "split=0.5,0.25,0.25"]), {
        "size": 64, "split": (0.8, 0.1, 0.1), "steps": ("resize",)})
    assert got == {"size": 32, "split": [0.5, 0.25, 0.25], "steps": ["resize"]}
    with pytest.raises(ValueError, match="unknown parameter.*colour"):
        params.resolve("images", {"colour": "red"}, {"size": 64})
    with pytest.raises(ValueError, match="size='big'"):
        params.resolve("images", {"size": "big"}, {"size": 64})
    with pytest.raises(ValueError, match="not key=value"):
        params.parse_pairs(["size"])


def _cli(*args):
    return subprocess.run([sys.executable, "-c", "from deepvre.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300)


def test_help_lists_kinds():
    out = _cli("preprocess", "--help")
    assert out.returncode == 0
    for kind in ("images", "rasters", "flows", "lattice", "flow-windows"):
        assert f"  {kind} " in out.stdout


def test_flow_windows_from_the_cli(tmp_path):
    """``flow-windows`` (deepvre.science.forecast) is found through the deepvre.pipelines entry point."""
    conn_log(str(tmp_path / "conn.log"), n=2000, hosts=3)
    out = tmp_path / "out"
    done = _cli("preprocess", "flow-windows", str(tmp_path / "conn.log"), str(out), "--workers", "1",
                "-p", "window=60", "-p", "seq_len=4")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "flow-windows" and manifest["splits"]["train"]["n"] > 0
    assert manifest["bad_records"]["count"] == 2


def test_cli_run_and_refusal(tmp_path):
    src = class_folders(str(tmp_path / "in"), n_per_class=4, corrupt=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    refused = _cli("preprocess", "images", src, str(out), "--workers", "1", "-p", "size=8")
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
    assert (out / "notes.txt").read_text() == "keep me"
    done = _cli("preprocess", "images", src, str(out), "--workers", "1", "-p", "size=8", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert "1 bad records" in done.stdout and "bad record healthy/corrupt0.png" in done.stderr
    assert "Dask dashboard: http://127.0.0.1:" in done.stderr
    assert json.loads((out / "manifest.json").read_text())["params"]["size"] == 8
    bad = _cli("preprocess", "images", src, str(tmp_path / "o2"), "-p", "colour=red")
    assert bad.returncode != 0 and "unknown parameter(s) colour" in bad.stderr
