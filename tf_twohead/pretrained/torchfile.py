"""Read a PyTorch `.pth` state_dict into NumPy arrays, without torch and without running code.

A `.pth` file is a pickle whose tensors point at raw little-endian storages: since
torch 1.6 a zip archive (`<name>/data.pkl` plus `<name>/data/<key>` blobs), before that
one stream of pickles followed by the storages (torchvision's 2018 ShuffleNetV2 x0.5 and
x1.0 files may be in that legacy format). No maintained pip package reads these without
torch, and a plain `pickle.load` of a downloaded file can run any code, so this is a
*restricted* unpickler: it admits only `collections.OrderedDict`, torch's tensor and
parameter rebuild functions and the typed storage classes, and refuses every other
global by name. A state_dict needs nothing more.

The file's word is never trusted for memory or time. In this order, before a storage's
bytes are read: every number of a tensor's geometry is an integer under `MAX_INDEX`
(huge integers make arithmetic slow), each tensor's size, stride and offset fit its
storage's declared element count (a tensor that reaches past its storage would read
the process's memory), and the arrays all tensors make together are bounded, in bytes
and against the bytes the file stores (stride-0 tensors repeat one stored value
endlessly: a 618-byte file asked for gigabytes). Then each storage is read, bounded, and
checked to hold what it declares. Every refusal is a `TorchFileError` (a
`WeightsError`) naming the tensor, or the file when no tensor is at fault.

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

import numpy as np

from tf_twohead.core.errors import TorchFileError
from tf_twohead.pretrained.torchpickle import (
    ARRAY_SLACK_BYTES,
    MAX_ARRAY_RATIO,
    MAX_PICKLE_BYTES,
    MAX_STORAGE_BYTES,
    MAX_TOTAL_BYTES,
    Storage,
    TensorRef,
    Unpickler,
    shown,
)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001
_READ_ERRORS = (pickle.UnpicklingError, EOFError, struct.error, KeyError, IndexError,
                TypeError, ValueError, AttributeError, MemoryError, RecursionError,
                zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError,
                RuntimeError, zlib.error)  # RuntimeError: an encrypted zip member


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a `.pth` state_dict (zip or legacy format) into `{name: ndarray}`.

    Args:
        path: str. The `.pth` file, e.g. torchvision's `shufflenetv2_x0.5-f707e7126e.pth`.

    Returns:
        An ordered dict of tensor name to a NumPy array in torch's layout (OIHW etc.).
    """
    where = os.fspath(path)
    try:
        reader = _ZipReader(where) if zipfile.is_zipfile(where) else _LegacyReader(where)
        with reader:
            refs = _tensors(reader.load(), where)
            _check(refs, reader.stored_bytes(), where)
            owners = {}  # storage key -> the first tensor that uses it, for messages
            for name, ref in refs.items():
                owners.setdefault(ref.storage.key, f"{where}: tensor {name!r}")
            reader.read_all(owners)
            for key, who in owners.items():
                if reader.storages[key].data is None:
                    raise TorchFileError(f"{who}: its storage {key!r} is referenced but "
                                         "never stored")
            return collections.OrderedDict((k, v.array()) for k, v in refs.items())
    except TorchFileError:
        raise
    except FileNotFoundError:
        raise TorchFileError(f"{where}: no such file") from None
    except _READ_ERRORS as e:
        raise TorchFileError(f"{where}: not a readable PyTorch state_dict "
                             f"({type(e).__name__}: {str(e)[:200]})") from None


def _tensors(refs, where: str) -> dict[str, TensorRef]:
    if isinstance(refs, dict) and "state_dict" in refs and isinstance(refs["state_dict"], dict):
        refs = refs["state_dict"]  # a training checkpoint {"state_dict": ..., ...}
    if not isinstance(refs, dict) or not all(isinstance(k, str) and isinstance(v, TensorRef)
                                             for k, v in refs.items()):
        raise TorchFileError(f"{where}: expected a dict of tensors (a state_dict)")
    return refs


def _check(refs: dict[str, TensorRef], stored: int, where: str) -> None:
    """Every tensor's geometry, and the bytes of all arrays together, before any is read."""
    total = 0
    limit = min(MAX_TOTAL_BYTES, MAX_ARRAY_RATIO * stored + ARRAY_SLACK_BYTES)
    for name, ref in refs.items():
        def bad(why, name=name):
            return TorchFileError(f"{where}: tensor {name!r}: {why}; the file is corrupt or "
                                  "crafted, not a state_dict torch wrote")
        total += ref.check(bad)
        if total > limit:
            raise bad(f"the tensors up to this one make {total:,} bytes of arrays from "
                      f"{stored:,} stored (at most {MAX_ARRAY_RATIO}x + "
                      f"{ARRAY_SLACK_BYTES >> 20} MiB, and {MAX_TOTAL_BYTES >> 30} GiB): "
                      "values repeated by zero strides")


def _storage_array(raw: bytes, storage: Storage, where: str) -> np.ndarray:
    """A storage's elements, after checking that the bytes hold as many as it declares."""
    need = storage.numel * storage.dtype.itemsize
    if need > len(raw):
        raise TorchFileError(f"{where}: storage {storage.key!r} declares {storage.numel:,} "
                             f"elements ({need:,} bytes) but holds {len(raw):,} bytes")
    return np.frombuffer(raw, storage.dtype, count=storage.numel)


class _ZipReader:
    """torch >= 1.6: `<prefix>data.pkl` and one member per storage, `<prefix>data/<key>`."""

    def __init__(self, where: str):
        self.where, self.archive = where, zipfile.ZipFile(where)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.archive.close()

    def load(self):
        pickles = [n for n in self.archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise TorchFileError(f"{self.where}: a zip without exactly one */data.pkl")
        self.prefix = pickles[0][: -len("data.pkl")]
        raw = self._member(pickles[0], MAX_PICKLE_BYTES, self.where)
        self.unpickler = Unpickler(io.BytesIO(raw), self.where)
        return self.unpickler.load()

    @property
    def storages(self) -> dict[str, Storage]:
        return self.unpickler.storages

    def stored_bytes(self) -> int:
        """The bytes the referenced storages declare in the archive's directory."""
        names = (f"{self.prefix}data/{key}" for key in self.storages)
        sizes = [self.archive.getinfo(n).file_size for n in names if n in self.archive.NameToInfo]
        if sum(sizes) > MAX_TOTAL_BYTES:
            raise TorchFileError(f"{self.where}: storages of more than "
                                 f"{MAX_TOTAL_BYTES >> 30} GiB")
        return sum(sizes)

    def read_all(self, owners: dict[str, str]) -> None:
        """Each storage a tensor uses; `owners` names that tensor in every refusal."""
        for key, who in owners.items():
            name = f"{self.prefix}data/{key}"
            if name in self.archive.NameToInfo:
                storage = self.storages[key]
                storage.data = _storage_array(self._member(name, MAX_STORAGE_BYTES, who),
                                              storage, who)

    def _member(self, name: str, limit: int, who: str) -> bytes:
        """One member, refused before reading when it would unpack past `limit`."""
        info = self.archive.getinfo(name)
        if info.file_size > limit:
            raise TorchFileError(f"{who}: {name} unpacks to {info.file_size:,} bytes, more "
                                 f"than the {limit:,} a state_dict needs")
        if info.flag_bits & 0x1:
            raise TorchFileError(f"{who}: {name} is encrypted; torch never writes that")
        with self.archive.open(name) as member:
            data = member.read(limit + 1)  # the header's size is the file's word: read at most this
        if len(data) > limit:
            raise TorchFileError(f"{who}: {name} unpacks to more than {limit:,} bytes")
        return data


class _LegacyReader:
    """torch's pre-1.6 format: magic, protocol, sys info, the object, storage keys, storages.

    Every one of those pickles goes through the restricted unpickler: the header ones need
    no globals at all, so a file cannot smuggle code in before the state_dict either.
    """

    def __init__(self, where: str):
        self.where, self.f = where, open(where, "rb")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def _pickle(self):
        return Unpickler(self.f, self.where).load()

    def load(self):
        if self._pickle() != LEGACY_MAGIC:
            raise TorchFileError(f"{self.where}: neither a zip nor a legacy PyTorch file (bad "
                                 "magic number); is it a .pth file?")
        if self._pickle() != LEGACY_PROTOCOL:
            raise TorchFileError(f"{self.where}: unknown legacy PyTorch protocol")
        sys_info = self._pickle()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
            raise TorchFileError(f"{self.where}: big-endian PyTorch files are not supported")
        self.unpickler = Unpickler(self.f, self.where)
        result = self.unpickler.load()
        self.keys = self._pickle()
        if not isinstance(self.keys, list):
            raise TorchFileError(f"{self.where}: no list of storage keys after the state_dict")
        self.start = self.f.tell()
        return result

    @property
    def storages(self) -> dict[str, Storage]:
        return self.unpickler.storages

    def stored_bytes(self) -> int:
        return os.fstat(self.f.fileno()).st_size - self.start

    def read_all(self, owners: dict[str, str]) -> None:
        """The storages, in the order the file keeps them: int64 element count, bytes."""
        remaining = self.stored_bytes()
        for key in self.keys:
            storage = self.storages.get(str(key))
            if storage is None:
                raise TorchFileError(f"{self.where}: stores {shown(key)}, a storage no "
                                     "tensor references")
            who = owners.get(storage.key, self.where)
            numel, = struct.unpack("<q", self.f.read(8))
            nbytes = numel * storage.dtype.itemsize
            if numel < 0 or nbytes > min(MAX_STORAGE_BYTES, remaining):
                raise TorchFileError(f"{who}: its storage {storage.key!r} declares {numel:,} "
                                     "elements, more than the file holds")
            remaining -= 8 + nbytes
            storage.data = _storage_array(self.f.read(nbytes), storage, who)
