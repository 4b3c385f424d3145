"""Local GPUs: discovery (``nvidia-smi`` or the settings list) and exclusive allocation.

The :class:`GpuAllocator` is pure bookkeeping: which owner (``user/server``) holds which GPU
index. The spawner stores its GPU ids in its state, so after a hub restart the allocator is
rebuilt from the running servers (:meth:`GpuAllocator.restore`).
"""

import logging
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

NVIDIA_SMI_QUERY = ["--query-gpu=index,uuid,name,memory.total,pci.bus_id", "--format=csv,noheader"]
DRIVER_GPUS = "/proc/driver/nvidia/gpus"  # <pci bus id>/information holds each GPU's "Device Minor"


@dataclass(frozen=True)
class Gpu:
    index: str
    uuid: str = ""
    name: str = ""
    memory: str = ""
    device: str = ""  # the GPU's device node, /dev/nvidia<minor>


def device_node(index, bus_id="", driver_gpus=DRIVER_GPUS):
    """``/dev/nvidia<minor>`` of a GPU: the driver's minor number for its PCI bus id (nvidia-smi's
    index need not be the minor), else ``/dev/nvidia<index>``."""
    if bus_id:
        domain, _, rest = bus_id.strip().lower().partition(":")
        try:
            with open(f"{driver_gpus}/{domain[-4:]}:{rest}/information") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key.strip() == "Device Minor" and value.strip().isdigit():
                        return f"/dev/nvidia{value.strip()}"
        except OSError:
            pass
    return f"/dev/nvidia{index}"


class NoFreeGpus(RuntimeError):
    """A request for more GPUs than are free now; the message says how many are."""


class GpuQuotaExceeded(NoFreeGpus):
    """A request that would give one user more GPUs than ``gpus.per_user``; the message says which they hold."""


def parse_nvidia_smi(text, driver_gpus=DRIVER_GPUS):
    """Parse ``nvidia-smi --query-gpu=index,uuid,name,memory.total[,pci.bus_id] --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) not in (4, 5) or not fields[0].isdigit():
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        bus_id = fields[4] if len(fields) == 5 else ""
        gpus.append(Gpu(*fields[:4], device=device_node(fields[0], bus_id, driver_gpus)))
    return gpus


def discover_gpus(settings):
    """The GPUs of this machine, from the ``gpus:`` settings section."""
    discovery = settings.get("discovery", "nvidia-smi")
    if discovery == "none":
        return []
    if discovery == "list":
        return [Gpu(d["index"], d.get("uuid", ""), d.get("name", ""), d.get("memory", ""),
                    d.get("device") or device_node(d["index"])) for d in settings.get("devices", [])]
    program = shutil.which(settings.get("nvidia_smi", "nvidia-smi"))
    if program is None:
        log.info("no nvidia-smi on PATH: this machine offers no GPUs")
        return []
    try:
        out = subprocess.run([program, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=30, check=True)
    except (subprocess.SubprocessError, OSError) as err:
        log.warning("nvidia-smi failed (%s): this machine offers no GPUs", err)
        return []
    return parse_nvidia_smi(out.stdout)


_DISCOVERED = {}


def machine_gpus(settings):
    """:func:`discover_gpus`, done once per hub process and ``gpus:`` section (``nvidia-smi`` can
    take seconds): the device locking at start and the spawners' allocator share the answer."""
    key = repr(sorted(settings.items()))
    if key not in _DISCOVERED:
        _DISCOVERED[key] = discover_gpus(settings)
    return _DISCOVERED[key]


class GpuAllocator:
    """Exclusive assignment of GPU indices to owners (``"user/server"`` strings)."""

    def __init__(self, gpu_ids):
        self.gpu_ids = [str(g) for g in gpu_ids]
        self.holders = {}  # gpu id -> owner

    @property
    def total(self):
        return len(self.gpu_ids)

    def free(self):
        """GPU ids nobody holds, in discovery order."""
        return [g for g in self.gpu_ids if g not in self.holders]

    def held_by(self, owner):
        return [g for g in self.gpu_ids if self.holders.get(g) == owner]

    def allocate(self, owner, count, per_user=None):
        """Give ``count`` free GPUs to ``owner`` (replacing what it held); raise :class:`NoFreeGpus`,
        or :class:`GpuQuotaExceeded` when the owner's user (``user/`` of ``user/server``) would
        then hold more than ``per_user``."""
        self.release(owner)
        if count <= 0:
            return []
        user = owner.split("/", 1)[0] + "/"
        theirs = sorted((g, o) for g, o in self.holders.items() if o.startswith(user))
        if per_user is not None and len(theirs) + count > per_user:
            held = ", ".join(f"GPU {g} ({o})" for g, o in theirs) or "none"
            raise GpuQuotaExceeded(
                f"GPU limit: at most {per_user} GPU{'s' if per_user != 1 else ''} per user; this profile needs "
                f"{count} and your other servers hold {len(theirs)} ({held}). Stop one of them or pick a smaller profile.")
        free = self.free()
        if count > len(free):
            busy = ", ".join(f"GPU {g} ({o})" for g, o in sorted(self.holders.items()))
            in_use = f"; in use: {busy}" if busy else ""
            raise NoFreeGpus(
                f"No free GPU: this profile needs {count} GPU{'s' if count > 1 else ''}, "
                f"{len(free)} of {self.total} free now{in_use}. Stop a GPU server or pick a CPU profile."
            )
        for g in free[:count]:
            self.holders[g] = owner
        return free[:count]

    def restore(self, owner, gpu_ids):
        """Record GPUs a running server already holds (after a hub restart). Unknown ids are ignored."""
        restored = []
        for g in map(str, gpu_ids):
            if g not in self.gpu_ids:
                log.warning("%s holds GPU %s, which this machine no longer lists", owner, g)
                continue
            other = self.holders.get(g)
            if other not in (None, owner):
                log.warning("GPU %s is recorded for both %s and %s; keeping %s", g, other, owner, other)
                continue
            self.holders[g] = owner
            restored.append(g)
        return restored

    def release(self, owner):
        """Free every GPU ``owner`` holds; returns their ids."""
        mine = self.held_by(owner)
        for g in mine:
            del self.holders[g]
        return mine
