"""The service's processes: signals that stop one cleanly, and forward a stop to the children.

One process by default; with ``--processes N`` the socket is bound once, then tornado's
``fork_processes`` forks the children (:meth:`deepvre.market.app.MarketplaceApp.start`). tornado
restarts a child that dies; the parent forwards SIGTERM/SIGINT to the children
(:func:`forward_signals`) and exits 0 once they have stopped; a child stops its loop on either
(:func:`stop_on_signals`), and on Linux also when the parent is killed outright.
"""

import logging
import os
import signal
import sys

log = logging.getLogger("deepvre.market")


def forward_signals(parent_pid):
    """In the parent: SIGTERM/SIGINT go on to the children as SIGTERM; tornado's
    ``fork_processes`` then sees them exit normally and exits 0 itself."""
    import psutil

    def forward(signum, _frame):
        if os.getpid() != parent_pid:  # a child that has not installed its own handler yet
            sys.exit(0)
        log.info("%s: stopping the service processes", signal.Signals(signum).name)
        for child in psutil.Process().children():
            try:
                child.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)


def stop_on_signals(loop):
    """SIGTERM/SIGINT stop ``loop`` (a clean exit 0, no KeyboardInterrupt traceback)."""

    def stop(signum, _frame):
        loop.add_callback_from_signal(loop.stop)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    if sys.platform == "linux":  # a child outlives no parent killed with SIGKILL
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
