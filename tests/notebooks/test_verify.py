"""``deepvre market verify`` of a version ``deepvre run`` published from the user's own data folder:
one changed byte in one data file is caught, and named, before anything runs.

That the four use cases' published versions verify (the lineage re-run within the notebook's
tolerances) is tested on each one's own smoke run (``test_the_published_version_verifies`` in
tests/notebooks/test_biology.py, test_lattice.py, test_security.py and test_satellite.py), so the
one ``deepvre run`` here is as small as the biology notebook goes: its smoke mode on four crops per
class of the user's folder, the base model frozen."""

import json
import os
import subprocess

from .smoke import notebook_path
from .test_run_lineage import DEEPVRE, deepvre, session_market


def verify(ref, runs_dir, expect_code):
    out = subprocess.run([*DEEPVRE, "market", "verify", ref, "--runs-dir", str(runs_dir), "--json"],
                         capture_output=True, text=True, check=False, timeout=1500)
    assert out.returncode == expect_code, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout)


def show(ref):
    out = subprocess.run([*DEEPVRE, "market", "show", ref], capture_output=True, text=True, check=True, timeout=120)
    return out.stdout


def publish_smoke(folder, model_name, runs_dir, *params):
    run = deepvre("run", notebook_path(folder, folder), "-p", "smoke", "True", "-p", "publish", "True",
                  "-p", "model_name", model_name, *params, runs_dir=runs_dir, timeout=1500)
    assert run["status"]["state"] == "done", run["status"]
    return run


def test_a_changed_data_file_is_caught_before_anything_runs(tmp_path, private_market):
    from deepvre.science import biology_crops

    data = tmp_path / "my-cells"  # the user's own data: outside the run folder, named by data_dir
    crops, records = biology_crops.cut(per_class=4, seed=0)
    biology_crops.write_class_folders(str(data), crops, records)
    runs_dir = tmp_path / "runs"
    run = publish_smoke("biology", "biology-verify", runs_dir, "-p", "data_dir", str(data), "-p", "fine_tune_layers", "0")
    files = sorted(str(p) for p in data.rglob("*.png"))
    section = session_market().show("biology-verify", "1.0.0")["metadata"]["deepvre"]
    assert set(files) <= set(section["inputs"])  # the lineage names each file of the user's folder, by sha256
    # the run's own environment record names the data it preprocessed, the one the version was trained on
    recorded = json.loads((runs_dir / run["id"] / "environment.json").read_text())
    assert recorded["data_manifests"] == {"biology-output/data": section["environment"]["data_manifest"]}
    assert recorded["data_manifest"] == section["environment"]["data_manifest"]

    victim = sorted(data.rglob("*.png"))[3]
    victim.write_bytes(victim.read_bytes() + b"\0")  # one changed byte at the end
    runs_before = set(os.listdir(runs_dir))
    caught = verify("biology-verify:1.0.0", runs_dir, 1)
    assert caught["result"] == "could not run" and str(victim) in caught["reason"] and "changed" in caught["reason"]
    assert caught["inputs"] == {str(victim): "changed"}  # this user's detail; the record says "changed or missing"
    assert set(os.listdir(runs_dir)) == runs_before  # nothing ran
    assert caught["record"]["result"] == "could not run" and caught["record"]["valid"]
    assert caught["record"]["verifier"]

    page = show("biology-verify:1.0.0")
    assert "verification: could not run by" in page and str(victim) in page
