"""The restricted unpickler of `.pth` files, and the checked geometry of their tensors.

`torchfile` reads the file (zip or legacy); this module turns its pickle into storages and
tensor references without running code, and says whether a tensor's size, stride and
offset fit its storage before any array is made. The bounds here are the file's whole
word on memory: every number is an integer under `MAX_INDEX` before any arithmetic (a
61 KB file of huge integers ran for minutes), and a tensor reaches no element past the
count its storage declares (it would read the process's memory).
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass

import numpy as np

from tf_twohead.core.errors import TorchFileError

# Bounds on what a file may make us allocate. torchvision's largest ShuffleNetV2 (x2.0)
# holds 7.4 M values in 30 MB; these leave room for much bigger state_dicts.
MAX_PICKLE_BYTES = 64 << 20  # the pickled structure itself (names, shapes)
MAX_STORAGE_BYTES = 1 << 30  # one storage's raw bytes, and one tensor's array
MAX_TOTAL_BYTES = 4 << 30  # all storages of a file, and all arrays made from them
# The arrays may hold more bytes than the storages (tied weights share a storage), but
# not more than this many times, plus a little: past it a small file asks for a lot.
MAX_ARRAY_RATIO, ARRAY_SLACK_BYTES = 2, 16 << 20
MAX_DIMS = 8
MAX_INDEX = 1 << 40  # any size, stride, offset or element count (checked before arithmetic)

# torch.<Name>Storage -> NumPy dtype (little-endian, as torch writes them).
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}
@dataclass
class Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class TensorRef:
    storage: Storage
    offset: int
    size: tuple
    stride: tuple

    def check(self, bad) -> int:
        """The bytes of this tensor's array, after checking its geometry against the
        element count its storage declares; `bad(why)` makes the error."""
        if not isinstance(self.storage, Storage):
            raise bad("its storage is not a storage")
        if not 0 <= self.storage.numel < MAX_INDEX:
            raise bad(f"its storage {self.storage.key!r} declares {shown(self.storage.numel)} "
                      "elements (at most 2**40)")
        size, stride, offset = self.size, self.stride, self.offset
        if not (_ints(size) and _ints(stride) and type(offset) is int):
            raise bad("size, stride and offset must be integers")
        if len(size) > MAX_DIMS or len(stride) != len(size):
            raise bad(f"{len(size)} sizes and {len(stride)} strides (at most {MAX_DIMS}, "
                      "one stride per size)")
        if not all(0 <= v < MAX_INDEX for v in (offset, *size, *stride)):
            raise bad("negative size, stride or offset, or one over 2**40 (size "
                      f"{shown(size)}, stride {shown(stride)}, offset {shown(offset)})")
        numel = int(np.prod(size, dtype=object)) if size else 1
        if numel == 0:
            return 0
        nbytes = numel * self.storage.dtype.itemsize
        if nbytes > MAX_STORAGE_BYTES:
            raise bad(f"{numel:,} values, more than {MAX_STORAGE_BYTES >> 20} MiB")
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= self.storage.numel:
            raise bad(f"size {size}, stride {stride} and offset {offset} reach element "
                      f"{last}, past the {self.storage.numel} its storage holds")
        return nbytes

    def array(self) -> np.ndarray:
        """The tensor as a new array (its geometry checked, its storage read)."""
        data, size = self.storage.data, self.size
        if not size:
            return np.array(data[self.offset])
        if 0 in size:
            return np.zeros(size, data.dtype)
        item = data.itemsize
        return np.lib.stride_tricks.as_strided(
            data[self.offset:], size, tuple(s * item for s in self.stride),
            writeable=False).copy()


def _ints(values) -> bool:
    return isinstance(values, tuple) and all(type(v) is int for v in values)


def shown(value) -> str:
    """A number or tuple for a message, huge integers abbreviated (never converted whole)."""
    if isinstance(value, tuple):
        return "(" + ", ".join(shown(v) for v in value[:MAX_DIMS + 1]) + ")"
    if type(value) is int and abs(value) >= MAX_INDEX:
        return f"{'-' if value < 0 else ''}2**{abs(value).bit_length() - 1}+"
    return repr(value)[:40]


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))):
        raise TorchFileError("a tensor's size and stride must be tuples")
    return TensorRef(storage, offset, tuple(size), tuple(stride))


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


class Unpickler(pickle.Unpickler):
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
            raise TorchFileError(f"{self.where}: unknown persistent id {shown(pid)}")
        if len(pid) < 5:
            raise TorchFileError(f"{self.where}: a storage reference with too few fields")
        storage_type, key, _location, numel = pid[1:5]
        key = str(key)[:100]
        if not isinstance(storage_type, type) or not hasattr(storage_type, "dtype"):
            raise TorchFileError(f"{self.where}: storage {key!r} has no storage type")
        if type(numel) is not int:
            raise TorchFileError(f"{self.where}: storage {key!r} declares {shown(numel)} "
                                 "elements")
        if len(pid) > 5 and pid[5] is not None:
            raise TorchFileError(f"{self.where}: storage views (torch < 0.4 files) are not "
                                 "supported; re-save the state_dict with a recent torch")
        if key not in self.storages:
            self.storages[key] = Storage(key, storage_type.dtype, numel)
        return self.storages[key]
