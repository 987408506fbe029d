"""File helpers: atomic writes (a temporary file beside the target, then a rename) and
hashing.

A rename within one folder is atomic on POSIX, so a reader (or a run interrupted
mid-write) sees either the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

KERAS_WEIGHTS_SUFFIX = ".weights.h5"  # Keras' save_weights insists on the whole suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success rename it over `path`.

    The temporary name keeps the suffix (Keras insists on `.keras` and `.weights.h5`),
    and is removed if the block raises, so the previous file stays intact.

    Example:

    >>> with atomic_path("run/best.keras") as tmp:
    ...     model.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = KERAS_WEIGHTS_SUFFIX if path.name.endswith(KERAS_WEIGHTS_SUFFIX) else path.suffix
    tmp = path.with_name(f".{path.name[:-len(suffix) or None]}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
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
