"""Read a PyTorch `.pth` state_dict into NumPy arrays, without torch and without running code.

A `.pth` file is a pickle whose tensors point at raw little-endian storages: since
torch 1.6 a zip archive (`<name>/data.pkl` plus `<name>/data/<key>` blobs), before that
one stream of pickles followed by the storages (torchvision's 2018 ShuffleNetV2 x0.5 and
x1.0 files may be in that legacy format). No maintained pip package reads these without
torch, and a plain `pickle.load` of a downloaded file can run any code, so this is a
*restricted* unpickler: it admits only `collections.OrderedDict`, torch's tensor and
parameter rebuild functions and the typed storage classes, and refuses every other
global by name. A state_dict needs nothing more.

Example:

>>> arrays = read_state_dict("shufflenetv2_x0.5-f707e7126e.pth")
>>> arrays["conv1.0.weight"].shape
(24, 3, 3, 3)
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from tf_twohead.errors import TorchFileError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001

# torch.<Name>Storage -> NumPy dtype (little-endian, as torch writes them).
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise TorchFileError(f"storage {self.storage.key} is referenced but never stored")
        if not self.size:
            return np.array(data[self.offset])
        item = data.itemsize
        return np.lib.stride_tricks.as_strided(
            data[self.offset:], self.size, tuple(s * item for s in self.stride)).copy()


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    return data


def _storage_class(name: str):
    dtype = np.dtype(STORAGE_DTYPES[name])
    return type(name, (), {"dtype": dtype})


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _storage_class(name) for name in STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Admits only the globals a state_dict uses; collects the storages it references."""

    def __init__(self, file, where: str):
        super().__init__(file)
        self.where, self.storages = where, {}

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise TorchFileError(
                f"{self.where}: refusing to load {module}.{name}: a state_dict holds only "
                "tensors. Save `model.state_dict()`, not the model object.") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise TorchFileError(f"{self.where}: unknown persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise TorchFileError(f"{self.where}: storage views (torch < 0.4 files) are not "
                                 "supported; re-save the state_dict with a recent torch")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self.storages[key]


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a `.pth` state_dict (zip or legacy format) into `{name: ndarray}`.

    Args:
        path: str. The `.pth` file, e.g. torchvision's `shufflenetv2_x0.5-f707e7126e.pth`.

    Returns:
        An ordered dict of tensor name to a NumPy array in torch's layout (OIHW etc.).
    """
    where = os.fspath(path)
    try:
        if zipfile.is_zipfile(where):
            refs = _read_zip(where)
        else:
            with open(where, "rb") as f:
                refs = _read_legacy(f, where)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, zipfile.BadZipFile) as e:
        raise TorchFileError(f"{where}: not a readable PyTorch state_dict ({e})") from e
    if isinstance(refs, dict) and "state_dict" in refs and isinstance(refs["state_dict"], dict):
        refs = refs["state_dict"]  # a training checkpoint {"state_dict": ..., ...}
    if not isinstance(refs, dict) or not all(isinstance(v, _TensorRef) for v in refs.values()):
        raise TorchFileError(f"{where}: expected a dict of tensors (a state_dict)")
    return collections.OrderedDict((k, v.array()) for k, v in refs.items())


def _read_zip(where: str):
    with zipfile.ZipFile(where) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise TorchFileError(f"{where}: a zip without exactly one */data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        unpickler = _Unpickler(io.BytesIO(archive.read(pickles[0])), where)
        result = unpickler.load()
        for key, storage in unpickler.storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            storage.data = np.frombuffer(raw, storage.dtype, count=storage.numel)
    return result


def _read_legacy(f, where: str):
    """torch's pre-1.6 format: magic, protocol, sys info, the object, storage keys, storages.

    Every one of those pickles goes through the restricted unpickler: the header ones need
    no globals at all, so a file cannot smuggle code in before the state_dict either.
    """
    def load():
        return _Unpickler(f, where).load()

    if load() != LEGACY_MAGIC:
        raise TorchFileError(f"{where}: neither a zip nor a legacy PyTorch file (bad magic "
                             "number); is it a .pth file?")
    if load() != LEGACY_PROTOCOL:
        raise TorchFileError(f"{where}: unknown legacy PyTorch protocol")
    sys_info = load()
    if not sys_info.get("little_endian", True):
        raise TorchFileError(f"{where}: big-endian PyTorch files are not supported")
    unpickler = _Unpickler(f, where)
    result = unpickler.load()
    for key in load():
        storage = unpickler.storages[str(key)]
        numel, = struct.unpack("<q", f.read(8))  # each storage: int64 element count, bytes
        raw = f.read(numel * storage.dtype.itemsize)
        storage.data = np.frombuffer(raw, storage.dtype, count=numel)
    return result
