"""Where a run executes. Each backend module has ``submit(run, profile, slurm)`` (``slurm``: the
site's ``slurm:`` settings section, as loaded by the caller),
``alive(run)`` (None when it cannot tell) and ``cancel(run)``."""

BACKENDS = ("local", "slurm")


def get_backend(name):
    if name == "local":
        from . import local

        return local
    if name == "slurm":
        from . import slurm

        return slurm
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
