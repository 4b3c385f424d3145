"""``deepvre market ...`` against a local catalog (no hub): every command's ``--json``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import ai4_metadata

DEEPVRE = str(Path(sys.executable).parent / "deepvre")
V1 = Path(ai4_metadata.__file__).parent / "assets" / "examples" / "sample-v1.mods.json"


def market(tmp_path, *args):
    env = dict(os.environ, DEEPVRE_MARKET_DIR=str(tmp_path / "market"))
    for key in ("DEEPVRE_MARKET_URL", "DEEPVRE_MARKET_TOKEN"):
        env.pop(key, None)
    return subprocess.run([DEEPVRE, "market", *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_market_cli_json(tmp_path, tiny_model_dir):
    assert json.loads(market(tmp_path, "validate", str(tiny_model_dir), "--json").stdout) == {"path": str(tiny_model_dir), "valid": True}
    published = json.loads(market(tmp_path, "publish", str(tiny_model_dir), "--json").stdout)
    assert (published["name"], published["version"]) == ("tiny-colours", "1.0.0")
    listed = json.loads(market(tmp_path, "list", "--json").stdout)
    assert [(e["name"], e["version"], e["title"]) for e in listed] == [("tiny-colours", "1.0.0", "Tiny colour classifier")]
    assert json.loads(market(tmp_path, "search", "blue", "--json").stdout)[0]["name"] == "tiny-colours"
    assert json.loads(market(tmp_path, "search", "nothing-like-this", "--json").stdout) == []
    shown = json.loads(market(tmp_path, "show", "tiny-colours:1.0.0", "--json").stdout)
    assert set(shown["files"]) >= {"model.keras", "preprocessing.json"}
    pulled = json.loads(market(tmp_path, "pull", "tiny-colours", "-o", "out", "--json").stdout)
    assert (tmp_path / "out" / "model.keras").read_bytes() == (tiny_model_dir / "model.keras").read_bytes()
    assert pulled["version"] == "1.0.0"
    again = market(tmp_path, "publish", str(tiny_model_dir), "--json")
    assert again.returncode == 1 and json.loads(again.stdout)["error"] == "Conflict"


def test_validate_lists_errors_and_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metadata_version": "2.3.0", "title": 5, "deepvre": {"name": "../x"}}))
    out = market(tmp_path, "validate", str(bad))
    assert out.returncode == 1
    assert "title: 5 is not of type 'string'" in out.stderr and "deepvre.name" in out.stderr
    assert "'summary' is a required property" in out.stderr


def test_import_v1(tmp_path):
    out = market(tmp_path, "import", str(V1), "-o", "v2.json", "--json")
    result = json.loads(out.stdout)
    assert json.loads((tmp_path / "v2.json").read_text())["metadata_version"] == "2.3.0"
    assert result["missing"] == ["deepvre: missing (deepvre's section: name, version, use_case, input, output, visibility)"]


def test_pull_verify_sha256_and_fsck(tmp_path, tiny_model_dir):
    published = json.loads(market(tmp_path, "publish", str(tiny_model_dir), "--json").stdout)
    pulled = market(tmp_path, "pull", "tiny-colours", "-o", "out", "--verify", "sha256", "--json")
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "model.keras").read_bytes() == (tiny_model_dir / "model.keras").read_bytes()
    assert json.loads(market(tmp_path, "fsck", "--json").stdout) == {"ok": True, "temporary": [], "unreferenced": []}
    digest = published["files"]["preprocessing.json"]["sha256"]
    blob = tmp_path / "market" / "artifacts" / "sha256" / digest[:2] / digest
    blob.write_bytes(blob.read_bytes() + b" ")
    damaged = market(tmp_path, "fsck")
    assert damaged.returncode == 1
    assert f"tiny-colours:1.0.0/preprocessing.json: artifact {digest} is corrupt" in damaged.stderr
    for verify in ("blake3", "sha256"):
        failed = market(tmp_path, "pull", "tiny-colours", "-o", f"bad-{verify}", "--verify", verify, "--json")
        assert failed.returncode == 1 and json.loads(failed.stdout)["error"] == "IntegrityError"
        assert not (tmp_path / f"bad-{verify}" / "preprocessing.json").exists()
