"""Write `.pth` files in torch's zip format without torch, with any tensor geometry.

The tests use it to build what an attacker could: tensors that claim more values than
their storage holds, negative or huge strides, storages shorter than they declare.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np

DTYPES = {"<f4": "FloatStorage", "<f8": "DoubleStorage", "<i8": "LongStorage"}


class Global:
    """A global the pickle names (`torch._utils._rebuild_tensor_v2`) without importing it."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants the reduce function to be callable
        raise NotImplementedError


class Storage:
    def __init__(self, key: str, values: np.ndarray, numel: int | None = None):
        self.key, self.values = key, np.ascontiguousarray(values)
        self.numel = len(self.values) if numel is None else numel


class Tensor:
    def __init__(self, storage: Storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                 collections.OrderedDict()))


class _Pickler(pickle._Pickler):  # the pure-Python pickler, whose globals we can write
    dispatch = dict(pickle._Pickler.dispatch)

    def save_fake_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = save_fake_global

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            kind = Global("torch", DTYPES[obj.values.dtype.str])
            return ("storage", kind, obj.key, "cpu", obj.numel)
        return None


def write_pth(path, tensors: dict[str, Tensor]) -> None:
    """A zip-format `.pth` holding `tensors` (an OrderedDict state_dict)."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(collections.OrderedDict(tensors))
    storages = {t.storage.key: t.storage for t in tensors.values()}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for key, storage in storages.items():
            archive.writestr(f"archive/data/{key}", storage.values.tobytes())


def contiguous(key: str, array: np.ndarray) -> Tensor:
    """A well-formed tensor of `array`, in its own storage."""
    array = np.asarray(array, np.float32)
    strides = tuple(s // array.itemsize for s in array.strides)
    return Tensor(Storage(key, array.ravel()), 0, array.shape, strides)
