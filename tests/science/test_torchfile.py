"""The restricted .pth reader: real torchvision weights, a zip-format file, and malicious pickles."""

import collections
import io
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest

from deepvre.science import torchfile


def test_reads_torchvision_mobilenet_state_dict(mobilenet_dir):
    from deepvre.science import mobilenet

    state = torchfile.load_state_dict(mobilenet.weights_path())
    assert len(state) == 314
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert state["features.0.0.weight"].dtype == np.float32
    assert all(np.isfinite(v).all() for v in state.values())
    # running variances of BatchNorm are positive: the storages line up with their tensors
    assert all((v > 0).all() for k, v in state.items() if k.endswith("running_var"))


class _Malicious:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_zip_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": _Malicious(marker)}, protocol=2))
    with pytest.raises(torchfile.UnsafePickleError, match="system"):
        torchfile.load_state_dict(path)
    assert not marker.exists()


def test_malicious_legacy_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Malicious(marker), protocol=2))
    with pytest.raises(torchfile.UnsafePickleError):
        torchfile.load_state_dict(path)
    assert not marker.exists()


def _fake_torch(monkeypatch):
    """Modules named like torch's, so pickle writes the same globals torch.save does."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    torch.FloatStorage = FloatStorage

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    torch._utils = utils
    return FloatStorage, _rebuild_tensor_v2


def test_zip_format_with_strided_views(tmp_path, monkeypatch):
    FloatStorage, rebuild = _fake_torch(monkeypatch)
    data = np.arange(12, dtype="<f4")

    class Storage:
        key, numel = "0", 12

    class Tensor:
        def __init__(self, offset, size, stride):
            self.args = (Storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return (rebuild, self.args)

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is Storage:
                return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
            return None

    state = collections.OrderedDict(
        [("w", Tensor(0, (3, 4), (4, 1))), ("wT", Tensor(0, (4, 3), (1, 4))), ("tail", Tensor(10, (2,), (1,)))]
    )
    buf = io.BytesIO()
    Writer(buf, protocol=2).dump(state)
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/data.pkl", buf.getvalue())
        zf.writestr("model/data/0", data.tobytes())
    monkeypatch.delitem(sys.modules, "torch")
    loaded = torchfile.load_state_dict(path)
    assert list(loaded) == ["w", "wT", "tail"]
    np.testing.assert_array_equal(loaded["w"], data.reshape(3, 4))
    np.testing.assert_array_equal(loaded["wT"], data.reshape(3, 4).T)
    np.testing.assert_array_equal(loaded["tail"], [10, 11])


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="magic"):
        torchfile.load_state_dict(path)
