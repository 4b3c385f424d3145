"""A training run SIGKILLed at 24 moments, many inside a checkpoint write, still ends as if never killed.

Each attempt is a fresh process (see :mod:`.killable_fit`) that resumes from what the killed one
left on disk. The kill moments come from a seeded random plan (seed logged; ``DEEPVRE_KILL_SEED``
replays a plan): either after a random batch, the kill landing wherever the run has got to by
then, or at the n-th call of a write step (an HDF5 dataset written, an fsync, a rename, a
removal), where the attempt waits for its kill (those moments replay exactly). Whenever a run
completes, its final loss and weights must equal those of an uninterrupted run exactly, with no
tolerance: same data, op determinism, one thread, and a checkpoint holds all the training state
(weights, optimizer moments and step, epoch). No shuffling: ``fit`` draws its shuffles from the
process's random stream, which a new process starts over; that is not state a checkpoint can
hold, and it would only reorder batches. Then a new run starts in a fresh folder.
"""

import multiprocessing
import os
import random
import signal
from multiprocessing.connection import wait

import pytest

KILLS = 24
SEED = int(os.environ.get("DEEPVRE_KILL_SEED", "20261212"))
MODULE = "tests.training.killable_fit"


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([MODULE])  # Keras and TensorFlow imported once, not per attempt
    return ctx


def run_attempt(ctx, folder, pause, kill_after_step=None, timeout=120):
    """Start one attempt; SIGKILL its process group when it pauses or reaches ``kill_after_step``.

    Returns ``(how, detail, warnings)``: ``("killed", where)``, ``("done", result)``.
    """
    from . import killable_fit

    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=killable_fit.attempt, args=(str(folder), pause, theirs), daemon=True)
    child.start()
    theirs.close()
    how, detail, warnings = None, None, []
    try:
        while how is None:
            ready = wait([ours, child.sentinel], timeout)
            assert ready, f"attempt {pause or kill_after_step} hung"
            if ours not in ready:  # exited, nothing more to read
                break
            try:
                kind, value = ours.recv()
            except EOFError:
                break
            if kind == "warning":
                warnings.append(value)
            elif kind == "error":
                pytest.fail(f"the attempt crashed:\n{value}")
            elif kind == "done":
                how, detail = "done", value
            elif kind == "paused" or (kind == "step" and kill_after_step is not None and value >= kill_after_step):
                os.killpg(child.pid, signal.SIGKILL)
                how, detail = "killed", value if kind == "paused" else f"after batch {value}"
        child.join(timeout)
    finally:
        if child.is_alive():  # the test failed: leave no process behind
            os.killpg(child.pid, signal.SIGKILL)
            child.join()
    if how == "killed":
        assert child.exitcode == -signal.SIGKILL, child.exitcode
    else:
        assert how == "done" and child.exitcode == 0, f"attempt ended with {child.exitcode} and no result"
    ours.close()
    return how, detail, warnings


def kill_plan(rng, n, calls):
    """``n`` kill moments: ``(None, k)``, kill once batch k is done, or ``((hook, k), None)``, pause at
    the k-th call of ``hook``; ``calls``: how often an uninterrupted run calls each hook."""
    from .killable_fit import BATCH, EPOCHS, SAMPLES

    kinds = ["step"] * 3 + ["h5"] * 2 + ["fsync", "replace", "remove", "unlink"]
    plan = []
    for _ in range(n):
        kind = rng.choice(kinds)
        plan.append((None, rng.randint(1, EPOCHS * SAMPLES // BATCH)) if kind == "step"
                    else ((kind, rng.randint(1, max(1, calls[kind] // 2))), None))  # early: lands in resumed runs too
    return plan


def test_runs_killed_at_random_moments_end_as_if_never_killed(forkserver, tmp_path):
    from deepvre.training import checkpoints

    from .killable_fit import NAME, fresh, partials

    print(f"kill plan seed {SEED} (DEEPVRE_KILL_SEED={SEED} replays it)")
    fresh(tmp_path / "reference")
    how, reference, warnings = run_attempt(forkserver, tmp_path / "reference", None)
    assert how == "done" and not warnings and reference["model_file_is_final"] and not reference["backup_left"]
    plan = kill_plan(random.Random(SEED), KILLS, reference["calls"])

    log, runs, folder = [], 0, tmp_path / "run-0"
    fresh(folder)
    while plan:
        pause, step = plan[0]
        assert len(log) < 3 * KILLS, "\n".join(log)
        how, detail, warnings = run_attempt(forkserver, folder, pause, step)
        assert not warnings, f"seed {SEED}: a kill damaged a checkpoint: {warnings}\n" + "\n".join(log)
        if how == "killed":
            plan.pop(0)
            left = partials(folder)
            log.append(f"run {runs}: killed {detail}; resumable from epoch "
                       f"{max(checkpoints.epochs(checkpoints.checkpoint_paths(folder, NAME)[0]), default=0)}"
                       + (f"; half-written: {[os.path.basename(p) for p in left]}" if left else ""))
            continue
        # the run completed (this kill moment never came: it stays for the next run)
        log.append(f"run {runs}: completed, loss {detail['loss']}")
        assert detail["loss"] == reference["loss"] and detail["weights"] == reference["weights"], \
            f"seed {SEED}: a resumed run ended elsewhere than the uninterrupted one\n" + "\n".join(log)
        assert detail["model_file_is_final"] and not detail["backup_left"]
        runs += 1
        folder = tmp_path / f"run-{runs}"
        fresh(folder)
    print("\n".join(log))
    # the last run, killed one last time: it still finishes, where the uninterrupted one did
    how, detail, warnings = run_attempt(forkserver, folder, None)
    assert how == "done" and not warnings and detail["weights"] == reference["weights"], "\n".join(log)
    killed_mid_write = [line for line in log if "half-written" in line]
    assert len(killed_mid_write) >= 3, "too few kills landed inside a write:\n" + "\n".join(log)
