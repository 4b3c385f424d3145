"""Read a PyTorch ``.pth`` state dict as numpy arrays, without torch and without trusting pickle.

A ``.pth`` file is either the zip format (torch >= 1.6: ``*/data.pkl`` plus one raw
file per tensor storage under ``*/data/``) or the legacy format (a run of pickles:
magic number, protocol, system info, the state dict, the storage keys, then the
raw storages). Both hold a pickle, and a pickle can call any Python function.
:class:`RestrictedUnpickler` therefore resolves only the few names a state dict
needs (torch's tensor rebuild functions, its storage types and ``OrderedDict``),
each mapped to a numpy builder; any other name raises :class:`UnsafePickleError`.
"""

import collections
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage type name -> numpy dtype (little-endian, as torch writes them)
STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for a global outside the allowed list."""


class _StorageRef:
    """A tensor storage named in the pickle, filled with its bytes once they are read."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, np.dtype(dtype), numel
        self.array = None


class _PendingTensor:
    """A tensor view on a storage, materialised by :meth:`resolve`."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def resolve(self):
        data = self.storage.array
        if data is None:
            raise pickle.UnpicklingError(f"storage {self.storage.key!r} has no data")
        if self.size and max(
            self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1, 0
        ) > data.size:
            raise pickle.UnpicklingError(f"tensor on storage {self.storage.key!r} runs past its end")
        base = data[self.offset :]
        strides = tuple(s * data.itemsize for s in self.stride)
        return np.lib.stride_tricks.as_strided(base, self.size, strides).copy()


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.: carries the dtype only."""

    def __init__(self, name):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict; refuses every global not in :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file, storage_bytes=None):
        super().__init__(file)
        self.storages = {}
        self._storage_bytes = storage_bytes  # key -> bytes (zip format); None: legacy

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global {module}.{name} from a weights file") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r:.80}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (legacy view_metadata) are not supported")
        key = str(key)
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = _StorageRef(key, storage_type.dtype, int(numel))
            if self._storage_bytes is not None:
                ref.array = np.frombuffer(self._storage_bytes(key), dtype=ref.dtype, count=ref.numel)
        return ref


def _resolve(obj):
    if isinstance(obj, _PendingTensor):
        return obj.resolve()
    if isinstance(obj, dict):
        out = collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _load_zip(path):
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise pickle.UnpicklingError(f"{path}: expected one data.pkl in the archive, found {len(pkl)}")
        prefix = pkl[0][: -len("data.pkl")]
        with zf.open(pkl[0]) as fh:
            unpickler = RestrictedUnpickler(fh, storage_bytes=lambda key: zf.read(f"{prefix}data/{key}"))
            return _resolve(unpickler.load())


def _load_legacy(path):
    with open(path, "rb") as fh:
        magic = RestrictedUnpickler(fh).load()
        if magic != LEGACY_MAGIC:
            raise pickle.UnpicklingError(f"{path}: not a PyTorch file (bad magic number)")
        if RestrictedUnpickler(fh).load() != LEGACY_PROTOCOL:
            raise pickle.UnpicklingError(f"{path}: unsupported legacy protocol version")
        sys_info = RestrictedUnpickler(fh).load()
        if not sys_info.get("little_endian", True):
            raise pickle.UnpicklingError(f"{path}: big-endian files are not supported")
        unpickler = RestrictedUnpickler(fh)
        result = unpickler.load()
        keys = RestrictedUnpickler(fh).load()
        for key in keys:
            ref = unpickler.storages[str(key)]
            (numel,) = struct.unpack("<q", fh.read(8))
            nbytes = numel * ref.dtype.itemsize
            raw = fh.read(nbytes)
            if len(raw) != nbytes:
                raise pickle.UnpicklingError(f"{path}: truncated storage {key!r}")
            ref.array = np.frombuffer(raw, dtype=ref.dtype)
        return _resolve(result)


def load_state_dict(path):
    """Read a ``.pth`` state dict: an ``OrderedDict`` of parameter name -> ``numpy.ndarray``.

    Raises :class:`UnsafePickleError` if the file's pickle names anything but
    tensors, storages and ``OrderedDict``.
    """
    path = str(path)
    state = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state
