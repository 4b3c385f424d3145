"""Failure injected into a real run: a step that stalls the first task until its worker is killed."""

import os


def stall_first(array, params):
    """Step: the first call anywhere reports its worker's pid and blocks; later calls pass."""
    from distributed import Lock, Queue, Variable

    with Lock("deepvre-test-stall"):
        flag = Variable("deepvre-test-stalled")
        try:
            flag.get(timeout=0.5)
            first = False
        except TimeoutError:
            flag.set(True)
            first = True
    if first:
        Queue("deepvre-test-pids").put(os.getpid())
        Variable("deepvre-test-release").get(timeout=300)  # never set: the test kills this process
    return array
