"""Hardware profiles: the ``profiles:`` list of the settings, and its translation per backend.

Everything here is a pure function of data. Each backend has one translation:
``local_environment`` (this module) for local processes; Kubernetes and Slurm add theirs.
"""


from jupyterhub.traitlets import ByteSpecification
from traitlets import TraitError

from . import environment

_BYTES = ByteSpecification()

# Used when the settings list no profiles: the whole machine, no GPU.
FALLBACK_PROFILE = {
    "slug": "default",
    "display_name": "Default",
    "description": "A server on this machine",
    "gpus": 0,
    "groups": [],
    "default": True,
}


def parse_memory(text):
    """``"16G"`` -> bytes (K/M/G/T are powers of 1024; JupyterHub's ``ByteSpecification``, as for
    ``Spawner.mem_limit``), a plain number is bytes; ``None`` stays ``None``."""
    if text is None:
        return None
    value = str(text).strip()
    try:
        return _BYTES.validate(None, int(value) if value.isdigit() else value)
    except (TraitError, ValueError, IndexError):
        raise ValueError(f"memory {text!r}: expected a number with an optional K, M, G or T suffix") from None


def check_profiles(profiles):
    """Checks a schema cannot express: unique slugs, at most one default. Returns error messages."""
    errors, seen = [], {}
    for i, profile in enumerate(profiles):
        slug = profile.get("slug")
        if slug in seen:
            errors.append(f"profiles[{i}].slug: {slug!r} is already used by profiles[{seen[slug]}]")
        seen.setdefault(slug, i)
    defaults = [i for i, p in enumerate(profiles) if p.get("default")]
    if len(defaults) > 1:
        errors.append(f"profiles[{defaults[1]}].default: only one profile can be the default (profiles[{defaults[0]}] is)")
    return errors


def visible_profiles(profiles, user_groups):
    """The profiles a user may choose: those without ``groups``, or sharing one with ``user_groups``.

    Like KubeSpawner's ``profile_list``, a profile listing groups is hidden from everyone else.
    """
    mine = set(user_groups or ())
    return [p for p in profiles if not p.get("groups") or mine.intersection(p["groups"])]


def default_profile(profiles):
    """The profile marked ``default``, else the first; ``None`` for an empty list."""
    for profile in profiles:
        if profile.get("default"):
            return profile
    return profiles[0] if profiles else None


def find_profile(profiles, slug):
    """The profile named ``slug``, or ``None``."""
    return next((p for p in profiles if p["slug"] == slug), None)


def summary(profile):
    """What a profile gives, in words: ``"4 cores · 16G memory · 1 GPU (nvidia-a100)"``."""
    parts = []
    if profile.get("cpu"):
        parts.append(f"{profile['cpu']:g} cores")
    if profile.get("memory"):
        parts.append(f"{profile['memory']} memory")
    gpus = profile.get("gpus", 0)
    if gpus:
        kind = f" ({profile['gpu_type']})" if profile.get("gpu_type") else ""
        parts.append(f"{gpus} GPU{'s' if gpus > 1 else ''}{kind}")
    else:
        parts.append("no GPU")
    return " · ".join(parts)


def unavailable_reason(profile, free_gpus, total_gpus):
    """Why a profile cannot start now (a sentence), or ``None`` when it can."""
    wanted = profile.get("gpus", 0)
    if not wanted:
        return None
    if total_gpus == 0:
        return "this machine has no GPUs"
    if wanted > total_gpus:
        return f"needs {wanted} GPUs, this machine has {total_gpus}"
    if wanted > free_gpus:
        return f"needs {wanted} GPU{'s' if wanted > 1 else ''}, {free_gpus} of {total_gpus} free now"
    return None


def local_environment(profile, gpu_ids):
    """Environment variables for a local server started with ``profile`` holding ``gpu_ids``.

    ``CUDA_VISIBLE_DEVICES`` is always set (empty: no GPU visible), so a CPU server never
    grabs a GPU another server holds.
    """
    env = {
        "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpu_ids),
        environment.PROFILE: profile["slug"],
    }
    if profile.get("cpu"):
        cores = max(1, int(profile["cpu"]))
        env.update({"OMP_NUM_THREADS": str(cores), environment.CPU_LIMIT: f"{profile['cpu']:g}"})
    if profile.get("memory"):
        env[environment.MEM_LIMIT] = str(parse_memory(profile["memory"]))
    return env
