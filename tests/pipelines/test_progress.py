"""Progress: a widget inside a real Jupyter kernel, text in a terminal, and a quiet shutdown."""

import logging
import subprocess
import sys

import nbformat

from deepvre.pipelines import clusters

from .data import class_folders


def test_shutdown_during_progress_feed_logs_no_error():
    """A progress bar's scheduler feed cut short by closing the cluster is not logged as an error."""
    from distributed import progress

    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger = logging.getLogger("distributed.scheduler")
    logger.addHandler(handler)
    try:
        with clusters.open_client("local", n_workers=1) as (client, _link):
            futures = [client.submit(abs, -i) for i in range(3)]
            progress(futures, notebook=False, interval="5s")  # the feed now sleeps 5 s: close cuts it
            assert client.gather(futures) == [0, 1, 2]
    finally:
        logger.removeHandler(handler)
    assert [r for r in seen if r.levelno >= logging.ERROR] == []


def test_progress_widget_in_a_kernel(tmp_path):
    """``preprocess`` run in a real IPython kernel (nbclient) shows an ipywidgets progress bar that completes."""
    from nbclient import NotebookClient

    src = class_folders(str(tmp_path / "in"), n_per_class=6, corrupt=0)
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(
        "from deepvre.pipelines import preprocess\n"
        f"r = preprocess('images', {src!r}, {str(tmp_path / 'out')!r}, {{'size': '8', 'shard_size': '2'}},"
        " n_workers=1)\nprint('shards', r.written)"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert any(o.get("name") == "stdout" and "shards 6" in o["text"] for o in outputs), outputs
    views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for o in outputs
             if o["output_type"] == "display_data" and "application/vnd.jupyter.widget-view+json" in o["data"]]
    assert views, outputs
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [m["state"] for m in state.values() if m["model_name"] == "FloatProgressModel"]
    assert [(b["value"], b["max"]) for b in bars] == [(6, 6)], bars  # moved while the cell was running
    assert "CancelledError" not in str(outputs)


def test_text_progress_in_a_terminal(tmp_path):
    """The CLI (no kernel): a text bar reaching all shards, and no error at shutdown."""
    src = class_folders(str(tmp_path / "in"), n_per_class=6, corrupt=0)
    done = subprocess.run([sys.executable, "-c", "from deepvre.cli import main; main()", "preprocess", "images",
                           src, str(tmp_path / "out"), "-p", "size=8", "-p", "shard_size=2", "--workers", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "images: 100%" in done.stderr and "6/6" in done.stderr, done.stderr
    assert "Error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_closing_workers_own_heartbeat_error_is_quiet_and_others_are_not():
    """A heartbeat caught in the worker's own shutdown is not an error; a scheduler that is gone is."""
    import logging

    from distributed import Client
    from distributed.comm.core import CommClosedError

    from deepvre.pipelines import clusters

    def record(exc):
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1,
                                 "Failed to communicate with scheduler during heartbeat.", (), (type(exc), exc, None))

    quiet = clusters.QuietShutdownFilter()
    assert not quiet.filter(record(CommClosedError("ConnectionPool closing.")))
    assert quiet.filter(record(CommClosedError("in <TLS (closed)>: Stream is closed")))
    assert quiet.filter(record(OSError("Timed out trying to connect")))

    # deepvre's local workers (their own processes) carry the filter
    with clusters.open_client("local", n_workers=1) as (client, _):
        assert isinstance(client, Client)
        kinds = client.run(lambda: [type(f).__name__ for f in logging.getLogger("distributed.worker").filters])
        assert all("QuietShutdownFilter" in names for names in kinds.values()), kinds
