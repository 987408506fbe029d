"""File helpers: atomic writes (a temporary file beside the target, then a rename) and
hashing.

A rename within one folder is atomic on POSIX, so a reader (or a run interrupted
mid-write) sees either the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

from tf_twohead.core.errors import DataError

KERAS_WEIGHTS_SUFFIX = ".weights.h5"  # Keras' save_weights insists on the whole suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success rename it over `path`.

    The temporary name is hidden and ends in `.tmp`, so nothing half-written ever looks
    like a model (`.tflite`, `.npy`, ...), except where Keras insists on the suffix
    (`.keras`, `.weights.h5`). It is removed if the block raises (Ctrl-C and SIGTERM in
    the CLI included), so the previous file stays intact.

    Example:

    >>> with atomic_path("run/best.keras") as tmp:
    ...     model.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(KERAS_WEIGHTS_SUFFIX):
        suffix = KERAS_WEIGHTS_SUFFIX
    else:
        suffix = path.suffix if path.suffix == ".keras" else ""
    tmp = path.with_name(f".{path.name[:-len(suffix) or None]}.tmp-{os.getpid()}{suffix or '.tmp'}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None or str(e.filename) == str(tmp):  # name the file meant
            raise type(e)(e.errno, e.strerror or str(e), str(path)) from e
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data) -> Path:
    """Write `data` as indented JSON to `path` atomically and return the path."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reserve_space(path: str | os.PathLike, nbytes: int, what: str) -> None:
    """Allocate `nbytes` for the file at `path` now (`posix_fallocate`), or raise a
    `DataError` naming the folder, the bytes needed and the bytes free.

    A memory-mapped file that is still sparse kills the process with SIGBUS when the
    disk fills up under it; a reserved one cannot run out of space.
    """
    path = Path(path)
    try:
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, nbytes)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # no fallocate on this filesystem
                free = shutil.disk_usage(path.parent).free
                if free >= nbytes:
                    return
            else:
                raise
        free = shutil.disk_usage(path.parent).free
        raise DataError(f"Not enough disk space for {what} in {path.parent}: {nbytes:,} bytes "
                        f"needed, {free:,} free. Free some space, or point data.cache_dir "
                        "at a bigger disk.") from None
