"""The runs list and the run page say why a queued run waits: its place in the hub's GPU queue
(deepvre.runs.admission) or Slurm's pending reason and estimated start (deepvre.runs.backends.slurm)."""

from deepvre.runs import store
from deepvre_jupyter.cards import run_view


def test_a_queued_run_says_why_it_waits(tmp_path):
    run = store.create_run(str(tmp_path), _notebook(tmp_path), {}, "local")
    assert run_view(run, str(tmp_path))["waiting"] == ""
    store.update_status(run.path, gpu_queue={"place": 2, "message": "Waiting for a GPU: 2nd in the queue"})
    assert run_view(store.load(run.id, str(tmp_path)), str(tmp_path))["waiting"] == "Waiting for a GPU: 2nd in the queue"
    store.update_status(run.path, gpu_queue=None, slurm_pending={
        "reason": "Resources", "start": None, "message": "Waiting in Slurm's queue: Resources."})
    assert run_view(store.load(run.id, str(tmp_path)), str(tmp_path))["waiting"] == "Waiting in Slurm's queue: Resources."
    store.update_status(run.path, state="running")  # a leftover note is not shown once it runs
    assert run_view(store.load(run.id, str(tmp_path)), str(tmp_path))["waiting"] == ""


def _notebook(folder):
    import json

    path = folder / "nb.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}))
    return str(path)
