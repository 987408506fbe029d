"""Read a PyTorch `.pth` state_dict into NumPy arrays, without torch and without running code.

A `.pth` file is a pickle whose tensors point at raw little-endian storages: since
torch 1.6 a zip archive (`<name>/data.pkl` plus `<name>/data/<key>` blobs), before that
one stream of pickles followed by the storages (torchvision's 2018 ShuffleNetV2 x0.5 and
x1.0 files may be in that legacy format). No maintained pip package reads these without
torch, and a plain `pickle.load` of a downloaded file can run any code, so this is a
*restricted* unpickler: it admits only `collections.OrderedDict`, torch's tensor and
parameter rebuild functions and the typed storage classes, and refuses every other
global by name. A state_dict needs nothing more.

The file's word is never trusted for memory: every storage's element count is checked
against the bytes that hold it, and every tensor's size, stride and offset against its
storage, before any view is made (a tensor that reaches past its storage would otherwise
read the process's memory). Sizes are bounded too: the pickle, each storage and each
tensor. Every violation is a `TorchFileError` (a `WeightsError`) naming the tensor.

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
import zlib
from dataclasses import dataclass

import numpy as np

from tf_twohead.core.errors import TorchFileError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001
# Bounds on what a file may make us allocate. torchvision's largest ShuffleNetV2 (x2.0)
# holds 7.4 M values in 30 MB; these leave room for much bigger state_dicts.
MAX_PICKLE_BYTES = 64 << 20  # the pickled structure itself (names, shapes)
MAX_STORAGE_BYTES = 1 << 30  # one storage's raw bytes
MAX_TOTAL_BYTES = 4 << 30  # all storages of a file
MAX_DIMS = 8

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

    def array(self, key: str, where: str) -> np.ndarray:
        """The tensor as a new array, after checking its geometry against its storage."""
        def bad(why: str):
            return TorchFileError(f"{where}: tensor {key!r}: {why}; the file is corrupt or "
                                  "crafted, not a state_dict torch wrote")

        if not isinstance(self.storage, _Storage):
            raise bad("its storage is not a storage")
        data = self.storage.data
        if data is None:
            raise bad(f"storage {self.storage.key!r} is referenced but never stored")
        size, stride, offset = self.size, self.stride, self.offset
        if not (_ints(size) and _ints(stride) and type(offset) is int):
            raise bad(f"size {size!r}, stride {stride!r} and offset {offset!r} must be integers")
        if len(size) > MAX_DIMS or len(stride) != len(size):
            raise bad(f"{len(size)} sizes and {len(stride)} strides (at most {MAX_DIMS}, "
                      "one stride per size)")
        if offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
            raise bad(f"negative size, stride or offset (size {size}, stride {stride}, "
                      f"offset {offset})")
        numel = int(np.prod(size, dtype=object)) if size else 1
        if numel == 0:
            return np.zeros(size, data.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= len(data):
            raise bad(f"size {size}, stride {stride} and offset {offset} reach element "
                      f"{last}, past the {len(data)} its storage holds")
        if numel * data.itemsize > MAX_STORAGE_BYTES:
            raise bad(f"{numel:,} values, more than {MAX_STORAGE_BYTES >> 20} MiB")
        if not size:
            return np.array(data[offset])
        item = data.itemsize
        return np.lib.stride_tricks.as_strided(
            data[offset:], size, tuple(s * item for s in stride), writeable=False).copy()


def _ints(values) -> bool:
    return isinstance(values, tuple) and all(type(v) is int for v in values)


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))):
        raise TorchFileError(f"a tensor's size and stride must be tuples. Received: size={size!r}")
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


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
        if len(pid) < 5:
            raise TorchFileError(f"{self.where}: a storage reference with too few fields")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, type) or not hasattr(storage_type, "dtype"):
            raise TorchFileError(f"{self.where}: storage {key!r} has no storage type")
        if type(numel) is not int or numel < 0:
            raise TorchFileError(f"{self.where}: storage {key!r} declares {numel!r} elements")
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
    except TorchFileError:
        raise
    except FileNotFoundError:
        raise TorchFileError(f"{where}: no such file") from None
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, IndexError, TypeError,
            ValueError, AttributeError, MemoryError, RecursionError, zipfile.BadZipFile,
            zipfile.LargeZipFile, NotImplementedError, OSError, zlib.error) as e:
        raise TorchFileError(f"{where}: not a readable PyTorch state_dict "
                             f"({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(refs, dict) and "state_dict" in refs and isinstance(refs["state_dict"], dict):
        refs = refs["state_dict"]  # a training checkpoint {"state_dict": ..., ...}
    if not isinstance(refs, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef)
                                             for k, v in refs.items()):
        raise TorchFileError(f"{where}: expected a dict of tensors (a state_dict)")
    return collections.OrderedDict((k, v.array(k, where)) for k, v in refs.items())


def _read_zip(where: str):
    with zipfile.ZipFile(where) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise TorchFileError(f"{where}: a zip without exactly one */data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        unpickler = _Unpickler(io.BytesIO(_read_member(archive, pickles[0], MAX_PICKLE_BYTES,
                                                       where)), where)
        result = unpickler.load()
        total = 0
        for key, storage in unpickler.storages.items():
            name = f"{prefix}data/{key}"
            if name not in archive.NameToInfo:
                raise TorchFileError(f"{where}: storage {key!r} is referenced but not stored")
            total += archive.getinfo(name).file_size
            if total > MAX_TOTAL_BYTES:
                raise TorchFileError(f"{where}: storages of more than "
                                     f"{MAX_TOTAL_BYTES >> 30} GiB")
            raw = _read_member(archive, name, MAX_STORAGE_BYTES, where)
            storage.data = _storage_array(raw, storage, where)
    return result


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, where: str) -> bytes:
    """One archive member, refused before reading when it would unpack past `limit`."""
    size = archive.getinfo(name).file_size
    if size > limit:
        raise TorchFileError(f"{where}: {name} unpacks to {size:,} bytes, more than the "
                             f"{limit:,} a state_dict needs")
    with archive.open(name) as member:
        data = member.read(limit + 1)  # the header's size is the file's word: read at most this
    if len(data) > limit:
        raise TorchFileError(f"{where}: {name} unpacks to more than {limit:,} bytes")
    return data


def _storage_array(raw: bytes, storage: _Storage, where: str) -> np.ndarray:
    """A storage's elements, after checking that the bytes hold as many as it declares."""
    need = storage.numel * storage.dtype.itemsize
    if need > len(raw):
        raise TorchFileError(f"{where}: storage {storage.key!r} declares {storage.numel:,} "
                             f"elements ({need:,} bytes) but holds {len(raw):,} bytes")
    return np.frombuffer(raw, storage.dtype, count=storage.numel)


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
    remaining = os.fstat(f.fileno()).st_size - f.tell()
    for key in load():
        storage = unpickler.storages.get(str(key))
        if storage is None:
            raise TorchFileError(f"{where}: stores {key!r}, a storage no tensor references")
        numel, = struct.unpack("<q", f.read(8))  # each storage: int64 element count, bytes
        nbytes = numel * storage.dtype.itemsize
        if numel < 0 or nbytes > min(MAX_STORAGE_BYTES, remaining):
            raise TorchFileError(f"{where}: storage {key!r} declares {numel:,} elements, "
                                 "more than the file holds")
        remaining -= 8 + nbytes
        storage.data = _storage_array(f.read(nbytes), storage, where)
    return result
