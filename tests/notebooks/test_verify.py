"""``deepvre market verify`` end to end: a use-case notebook run by ``deepvre run`` in smoke mode
publishes with its lineage, then the real console script re-runs that lineage and the session's
catalog keeps the signed outcome; a changed input file is caught before anything runs. The other
three use cases verify the version their own smoke run published (``test_the_published_version_verifies``
in tests/notebooks/test_lattice.py, test_security.py and test_satellite.py: one smoke run fewer each)."""

import json
import os
import subprocess

from .smoke import notebook_path
from .test_run_lineage import DEEPVRE, deepvre


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


def test_biology_verifies_and_a_changed_data_file_is_caught(tmp_path, private_market):
    from deepvre.science import biology_crops

    data = tmp_path / "my-cells"  # the user's own data: outside the run folder, named by data_dir
    crops, records = biology_crops.cut(per_class=12, seed=0)
    biology_crops.write_class_folders(str(data), crops, records)
    runs_dir = tmp_path / "runs"
    publish_smoke("biology", "biology-verify", runs_dir, "-p", "data_dir", str(data))

    done = verify("biology-verify:1.0.0", runs_dir, 0)
    assert done["result"] == "verified", done
    assert set(done["metrics"]) == {"transfer.accuracy", "scratch.accuracy"}  # the notebook's declared ones
    assert all(row["tolerance"] == 0.05 for row in done["metrics"].values())
    assert done["record"]["verifier"] and done["record"]["valid"] and done["record"]["result"] == "verified"
    assert os.path.dirname(done["run"]) == str(runs_dir)
    rerun = json.loads(open(os.path.join(done["run"], "params.json")).read())["parameters"]
    # what papermill injected at training time (the seed, not passed, is the snapshot's own default), never publishing
    assert rerun == {"smoke": True, "publish": False, "model_name": "biology-verify", "data_dir": str(data),
                     "executed_notebook": ""}
    assert os.path.basename(done["run"]).startswith("verify-biology-verify-")

    victim = sorted(data.rglob("*.png"))[3]
    victim.write_bytes(victim.read_bytes() + b"\0")  # one changed byte at the end
    runs_before = set(os.listdir(runs_dir))
    caught = verify("biology-verify:1.0.0", runs_dir, 1)
    assert caught["result"] == "could not run" and str(victim) in caught["reason"] and "changed" in caught["reason"]
    assert caught["inputs"] == {str(victim): "changed"}  # this user's detail; the record says "changed or missing"
    assert set(os.listdir(runs_dir)) == runs_before  # nothing ran
    assert caught["record"]["result"] == "could not run" and caught["record"]["valid"]

    page = show("biology-verify:1.0.0")
    assert "verification: could not run by" in page and str(victim) in page
