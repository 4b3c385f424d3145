"""Real papermill runs through the CLI and the Python API, on the local backend."""

import json
import os
import shlex
import signal
import subprocess
import sys

import psutil
import pytest

from deepvre import runs
from deepvre.runs import compare
from tests.runs.conftest import read_notebook, read_text, wait_for


def _cells(path):
    return read_notebook(path)["cells"]


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def test_run_writes_its_folder(cli, runs_dir, notebook):
    code, out, data = cli("run", notebook("metrics"), "-p", "a", "3", "-p", "scale", "0.5",
                          "-p", "layers", "[7]", "--json")
    assert code == 0, out
    (run,) = data
    path = run["path"]
    assert os.path.dirname(path) == runs_dir
    assert set(os.listdir(path)) >= {
        "input.ipynb", "metrics.json", "output.ipynb", "params.json", "run.log", "status.json", "environment.json"}
    with open(os.path.join(path, "environment.json")) as fh:  # what it ran on: deepvre.runs.platform
        assert json.load(fh)["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert run["status"]["state"] == "done" and run["status"]["error"] is None
    assert run["status"]["progress"] == {"done": 4, "total": 4}  # injected cell + 3 code cells
    assert run["params"]["parameters"] == {"a": 3, "scale": 0.5, "layers": [7]}
    assert "sweep" not in run["params"]  # one run, no sweep
    assert run["metrics"]["score"] == 3 * 0.5 + 1 and run["metrics"]["a"] == 3
    assert run["metrics"]["python"] == sys.executable  # the kernel is the runner's python
    cells = _cells(os.path.join(path, "output.ipynb"))
    injected = [c for c in cells if "injected-parameters" in _tags(c)]
    assert len(injected) == 1 and "a = 3" in "".join(injected[0]["source"])
    assert "score=2.5 label=base" in read_text(os.path.join(path, "run.log"))


def test_sweep_runs_every_combination_and_prints_a_table(cli, runs_dir, notebook):
    code, out, _ = cli("run", notebook("metrics"), "-p", "label", "sw",
                       "--sweep", "a=1,2", "--sweep", "scale=10,0.5")
    assert code == 0, out
    done = runs.list_runs(runs_dir)
    assert len(done) == 4
    seen = {(r.params["parameters"]["a"], r.params["parameters"]["scale"]) for r in done}
    assert seen == {(1, 10.0), (1, 0.5), (2, 10.0), (2, 0.5)}
    for r in done:
        p = r.params["parameters"]
        assert r.state == "done" and r.metrics["score"] == p["a"] * p["scale"] + 2
    # one sweep id groups them (the runs page's sweep table); a single run has none
    [sweep] = {r.params["sweep"]["id"] for r in done}
    assert sweep.startswith("sweep-metrics-") and done[0].params["sweep"]["axes"] == ["a", "scale"]
    assert [r.id for r in compare.sweep_runs(done, sweep)] == [r.id for r in done]
    table = out[out.index("run  "):].splitlines()
    assert table[0].split()[:5] == ["run", "state", "a", "scale", "score"]
    for r in done:
        row = next(line for line in table if line.startswith(r.id)).split()
        assert row[1] == "done" and float(row[4]) == r.metrics["score"]


def test_failing_notebook_keeps_partial_output_and_error(cli, runs_dir, notebook):
    code, out, _ = cli("run", notebook("failing"), "-p", "message", "bad input 42")
    assert code == 1
    assert "ValueError: bad input 42" in out
    (run,) = runs.list_runs(runs_dir)
    status = run.status
    assert status["state"] == "failed" and status["error"] == "ValueError: bad input 42"
    assert status["progress"] == {"done": 3, "total": 5}  # injected, parameters, first cell
    assert os.path.exists(run.file("before.txt"))
    cells = [c for c in _cells(run.file("output.ipynb")) if c["cell_type"] == "code"]
    assert any(o.get("text") == ["before the failure\n"] for o in cells[-3]["outputs"])
    assert cells[-2]["outputs"][0]["ename"] == "ValueError"
    assert cells[-1]["execution_count"] is None  # nothing ran after the error
    assert "bad input 42" in read_text(run.file("run.log"))


def test_detach_returns_at_once_and_survives_logout(cli, runs_dir, notebook, tmp_path):
    # a "login session": a shell in a session of its own that runs `deepvre run --detach`, then idles
    deepvre = os.path.join(os.path.dirname(sys.executable), "deepvre")
    answer = tmp_path / "answer.json"
    start = shlex.join([deepvre, "run", "--detach", "--json", notebook("gated")])
    tmp = shlex.quote(f"{answer}.tmp")
    script = f"{start} > {tmp} && mv {tmp} {shlex.quote(str(answer))}; exec sleep 600"
    login = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    wait_for(answer.exists)
    run = runs.get(json.loads(answer.read_text())[0]["id"], runs_dir)
    # the notebook waits for a gate file nobody has made yet: the command returned before it ended
    assert run.state in ("queued", "running")
    os.killpg(login.pid, signal.SIGHUP)  # log out: the terminal's session is hung up, then killed
    os.killpg(login.pid, signal.SIGKILL)
    login.wait()
    _, _, listed = cli("runs", "list", "--json")
    assert [r["id"] for r in listed] == [run.id] and listed[0]["status"]["state"] in ("queued", "running")
    open(run.file("gate"), "w").close()
    status = runs.wait(run, timeout=300)
    assert status["state"] == "done" and run.metrics == {"waited": True}
    _, _, shown = cli("runs", "show", run.id, "--json")
    assert shown["status"]["state"] == "done" and shown["metrics"] == {"waited": True}
    _, out, _ = cli("runs", "show", run.id)
    assert f"{run.id}  done  cells 4/4" in out


def test_cancel_stops_a_detached_run(cli, runs_dir, notebook):
    run = runs.start(notebook("gated"), {"timeout": "600"}, detach=True, runs_dir=runs_dir)
    wait_for(lambda: os.path.exists(run.file("kernel.pid")) and run.status["progress"]["done"] >= 2)
    worker = psutil.Process(run.status["pid"])
    kernel = psutil.Process(int(read_text(run.file("kernel.pid"))))
    code, out, _ = cli("runs", "cancel", run.id)
    assert code == 0 and out.strip() == f"{run.id}: cancelled"
    for proc in (worker, kernel):
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    status = runs.get(run.id, runs_dir).status
    assert status["state"] == "cancelled" and status["finished"]
    assert run.metrics is None
    cells = _cells(run.file("output.ipynb"))
    assert any("injected-parameters" in _tags(c) for c in cells)  # partial output kept
    # cancelling a finished run changes nothing
    assert runs.cancel(run.id, runs_dir)["state"] == "cancelled"


def test_unknown_parameter_is_a_clear_cli_error(cli, runs_dir, notebook):
    code, out, _ = cli("run", notebook("metrics"), "-p", "epochs", "3")
    assert code == 2 and "unknown parameter(s) epochs" in out and "--allow-unknown" in out
    code, out, _ = cli("run", notebook("metrics"), "--sweep", "a=1,x")  # checked before any run
    assert code == 2 and "parameter 'a' must be an integer, not 'x'" in out
    code, out, _ = cli("run", notebook("metrics"), "-p", "a", "1", "--sweep", "a=2,3")
    assert code == 2 and "both set with -p and swept" in out
    assert not os.path.exists(runs_dir) or os.listdir(runs_dir) == []


def test_worker_that_vanishes_is_reported_failed(runs_dir, notebook):
    run = runs.start(notebook("gated"), detach=True, runs_dir=runs_dir)
    wait_for(lambda: os.path.exists(run.file("kernel.pid")))
    kernel = psutil.Process(int(read_text(run.file("kernel.pid"))))
    os.killpg(run.status["pid"], 9)  # no chance to write its status
    status = runs.wait(run, timeout=60)
    assert status["state"] == "failed" and "ended without finishing" in status["error"]
    # ipykernel notices its parent is gone and exits: no kernel lingers
    wait_for(lambda: not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE)


def test_metrics_from_the_output_dir_and_the_console_script(runs_dir, notebook):
    run = runs.start(notebook("metrics"), {"output_dir": "results/x"}, runs_dir=runs_dir)
    assert os.path.exists(run.file("results/x/metrics.json"))  # written there by the notebook
    assert run.metrics["score"] == 4.0  # and collected into the run folder
    deepvre = os.path.join(os.path.dirname(sys.executable), "deepvre")
    out = subprocess.run([deepvre, "runs", "list", "--json", "--runs-dir", runs_dir],
                         capture_output=True, text=True, check=True).stdout
    (listed,) = json.loads(out)
    assert listed["status"]["state"] == "done" and listed["metrics"]["score"] == 4.0


def test_sigterm_without_cancel_is_a_failure(runs_dir, notebook):
    # what Slurm's time limit or a shutdown does: the run is failed, not cancelled
    run = runs.start(notebook("gated"), detach=True, runs_dir=runs_dir)
    wait_for(lambda: os.path.exists(run.file("kernel.pid")))
    os.kill(run.status["pid"], signal.SIGTERM)
    status = runs.wait(run, timeout=120)
    assert status["state"] == "failed" and "terminated (SIGTERM)" in status["error"]


@pytest.mark.parametrize("bad", ["../escape", "a/../../b"])
def test_cancel_refuses_path_tricks(bad, runs_dir):
    with pytest.raises(ValueError):
        runs.cancel(bad, runs_dir)
