"""Where a run executes. Each backend module has ``submit(run, profile)``,
``alive(run)`` (None when it cannot tell) and ``cancel(run)``."""

import importlib

BACKENDS = ("local", "slurm")


def get_backend(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return importlib.import_module(f"{__name__}.{name}")
