"""Processes deepvre starts that must not outlive the process that started them."""

import os
import signal
import threading
import time


def exit_with_parent(interval=1.0):
    """SIGTERM this process (its own handler then cleans up) once its parent has ended, seen as a
    new parent pid. For children in their own session, or whose parent may be killed without a
    clean-up of its own: a model service (``deepvre serve``), the marketplace's seed."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
