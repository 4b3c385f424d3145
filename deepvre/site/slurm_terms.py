"""Slurm terms: the ``slurm:`` settings section and THE mapping from a hardware profile to Slurm.

Shared by the hub's Slurm mode (``deepvre_hub.slurm``), ``deepvre run --backend slurm`` and
Dask's ``SLURMCluster``; pure but for :func:`cluster_gpus_per_node` (asks ``sinfo``).

- ``slurm_settings(section)``: the section with defaults (schema ``schemas/slurm.json``); the
  caller loads the settings file once and hands the section here (no environment read).
- ``sbatch_terms(profile, slurm)`` / ``sbatch_options(profile, slurm)``: partition, cpus,
  memory, ``--gres=gpu[:TYPE]:N``, wall time; ``batchspawner_traits`` and ``jobqueue_kwargs``
  are the same terms in batchspawner's and dask-jobqueue's words.
- ``gpus_per_node(sinfo_text)`` and ``gpu_refusal(profile, most)``: a GPU request beyond the
  cluster's biggest node is refused with a sentence saying so.
- ``slurm_nodes()``: the cluster's node names (asks ``sinfo``), for the hub's check that the
  servers on them can reach it (``deepvre.site.addresses.loopback_refusal``).
"""

import math
import re
import subprocess

from ..errors import Invalid
from .profiles import parse_memory


class SlurmSettingsError(Invalid):
    """Slurm settings, or a single-user environment, that cannot work; the message says why."""


# ---------------------------------------------------------------- settings


def slurm_settings(section=None):
    """The ``slurm:`` section validated, with every default filled in (errors name ``slurm.KEY``)."""
    from .settings import SettingsError, validated_section

    try:
        return validated_section("slurm", section)
    except SettingsError as err:
        raise SlurmSettingsError("; ".join(err.errors)) from None


# ---------------------------------------------------------------- profile -> Slurm


def sbatch_memory(value):
    """Profile memory (``16G``, ``512M``, bytes) as sbatch's ``--mem`` in megabytes."""
    try:
        size = parse_memory(value)
    except ValueError:
        raise ValueError(f"profile memory {value!r}: expected a size like 16G or 512M") from None
    return f"{max(1, math.ceil(size / 2**20))}M"


def gres(profile, slurm=None):
    """``gpu:N`` or ``gpu:TYPE:N`` for a GPU profile, ``None`` for a CPU one."""
    gpus = int((profile or {}).get("gpus") or 0)
    if not gpus:
        return None
    slurm = slurm or {}
    name = slurm.get("gres_name") or "gpu"
    kind = profile.get("gpu_type")
    if kind:
        kind = (slurm.get("gpu_types") or {}).get(kind, kind)
        return f"{name}:{kind}:{gpus}"
    return f"{name}:{gpus}"


def sbatch_terms(profile, slurm=None):
    """A profile's Slurm terms as ``{sbatch long option: value}`` (ordered; absent: cluster default).

    The profile wins over the ``slurm:`` section (``partition``, ``walltime``); ``account`` and
    ``qos`` come from the section only.
    """
    profile, slurm = profile or {}, slurm or {}
    terms = {}
    for option, value in (
        ("partition", profile.get("partition") or slurm.get("partition")),
        ("account", slurm.get("account")),
        ("qos", slurm.get("qos")),
        ("cpus-per-task", profile.get("cpu") and max(1, math.ceil(float(profile["cpu"])))),
        ("mem", profile.get("memory") and sbatch_memory(profile["memory"])),
        ("gres", gres(profile, slurm)),
        ("time", profile.get("walltime") or slurm.get("walltime")),
    ):
        if value:
            terms[option] = str(value)
    return terms


def sbatch_options(profile, slurm=None):
    """A profile's Slurm terms as sbatch options: ``["--partition=gpu", "--cpus-per-task=4",
    "--mem=16384M", "--gres=gpu:1", "--time=08:00:00", *slurm.extra_options]``."""
    opts = [f"--{option}={value}" for option, value in sbatch_terms(profile, slurm).items()]
    return opts + list((slurm or {}).get("extra_options") or [])


# batchspawner's SlurmSpawner template has these req_* slots; the rest go to req_options.
BATCHSPAWNER_SLOTS = {"partition": "req_partition", "cpus-per-task": "req_nprocs", "mem": "req_memory",
                      "gres": "req_gres", "time": "req_runtime"}


def batchspawner_traits(profile, slurm=None):
    """The same terms as ``SlurmSpawner`` ``req_*`` traits (every slot set, ``""``: not asked)."""
    terms = sbatch_terms(profile, slurm)
    traits = {trait: terms.pop(option, "") for option, trait in BATCHSPAWNER_SLOTS.items()}
    rest = [f"--{option}={value}" for option, value in terms.items()]
    traits["req_options"] = " ".join(rest + list((slurm or {}).get("extra_options") or []))
    return traits


def jobqueue_kwargs(profile=None, slurm=None):
    """The same terms as ``dask_jobqueue.SLURMCluster`` keyword arguments (only what is set)."""
    terms = sbatch_terms(profile, slurm)
    kwargs = {}
    if "partition" in terms:
        kwargs["queue"] = terms.pop("partition")
    if "account" in terms:
        kwargs["account"] = terms.pop("account")
    if "cpus-per-task" in terms:
        kwargs["cores"] = int(terms.pop("cpus-per-task"))
    if "mem" in terms:
        kwargs["memory"] = terms.pop("mem")[:-1] + "MiB"
    if "time" in terms:
        kwargs["walltime"] = terms.pop("time")
    extra = [f"--{option}={value}" for option, value in terms.items()] + list((slurm or {}).get("extra_options") or [])
    if extra:
        kwargs["job_extra_directives"] = extra
    return kwargs


# ---------------------------------------------------------------- GPUs on the cluster


def gpus_of_gres(text, name="gpu"):
    """GPUs in one node's gres string: ``gpu:a100:2(S:0-1),gpu:v100:1`` -> 3; ``(null)`` -> 0."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", text or "").split(","):
        parts = item.strip().split(":")
        if parts[0] == name and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def gpus_per_node(sinfo_text, name="gpu"):
    """The most GPUs one node has, from ``sinfo -h -N -o '%N %G'`` output."""
    counts = [gpus_of_gres(line.split(None, 1)[1] if " " in line.strip() else "", name)
              for line in sinfo_text.splitlines() if line.strip()]
    return max(counts, default=0)


def cluster_gpus_per_node(slurm=None, partition=None, env=None):
    """``slurm.gpus_per_node`` if set, else ask Slurm (``sinfo``) for the biggest node's GPUs."""
    slurm = slurm or {}
    if slurm.get("gpus_per_node") is not None:
        return slurm["gpus_per_node"]
    cmd = ["sinfo", "-h", "-N", "-o", "%N %G"] + (["-p", partition] if partition else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)
    if done.returncode:
        raise SlurmSettingsError(f"cannot ask Slurm for its GPUs ({' '.join(cmd)}): {done.stderr.strip()}")
    return gpus_per_node(done.stdout, slurm.get("gres_name") or "gpu")


def slurm_nodes(partition=None, env=None):
    """The node names of the cluster (or of ``partition``), asked of Slurm (``sinfo -h -N -o %N``),
    in its order, each once."""
    cmd = ["sinfo", "-h", "-N", "-o", "%N"] + (["-p", partition] if partition else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)
    if done.returncode:
        raise SlurmSettingsError(f"cannot ask Slurm for its nodes ({' '.join(cmd)}): {done.stderr.strip()}")
    return list(dict.fromkeys(done.stdout.split()))


def gpu_refusal(profile, most, partition=None):
    """Why ``profile`` asks for more GPUs than any node has (a sentence), or ``None``."""
    wanted = int(profile.get("gpus") or 0)
    if wanted <= most:
        return None
    where = f"partition {partition!r} of the Slurm cluster" if partition else "the Slurm cluster"
    have = f"no node of {where} has more than {most}" if most else f"{where} has no GPUs"
    return f"Profile {profile['slug']!r} asks for {wanted} GPU{'s' if wanted > 1 else ''}, but {have}."
