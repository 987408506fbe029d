"""Validate a split by decoding every image once, and keep the resized pixels.

Decoding big phone photos with EXIF handling costs far more than a training step on
a 256 px ShuffleNet, so every image is decoded exactly once, in parallel threads
(Pillow releases the GIL), through `images.load_rgb`, and stored resized as one uint8
`.npy` array. The same pass is the validation: a truncated or undecodable image is
reported with its CSV line before training starts. Later runs with the same files and
size reuse the cache; any change to the CSV, a file's size or its mtime rebuilds it.

The same pass hashes each file's bytes (`SplitData.hashes`), so exact duplicates within
and across splits are found without reading anything twice (`data.checks`). The
cache's size is known before it is written: the space is reserved first, so a full disk
is a clear error, not a crash halfway through.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tf_twohead.config import Config
from tf_twohead.core.api import public
from tf_twohead.core.defaults import MAX_IMAGE_PIXELS, MAX_SPLIT_ROWS
from tf_twohead.core.fileio import atomic_path, atomic_write_json, reserve_space
from tf_twohead.data.images import load_rgb
from tf_twohead.data.problems import Problem, apply_bad_image_policy
from tf_twohead.data.splits import DataError, Rows, read_split, split_csv

CACHE_VERSION = 3  # 2: content hashes, the pixel budget in the key; 3: JPEG draft by pixels
MAX_FILE_BYTES = 512 << 20  # an image file larger than this is refused unread


@dataclasses.dataclass
class SplitData:
    """A validated split: resized RGB pixels and their rows, row-aligned.

    Attributes:
        name: str. "train", "val" or "test".
        images: uint8 array `(N, S, S, 3)`, memory-mapped from the cache.
        rows: `Rows`, the CSV origin of each image (its file, line and path) and its
            class id (`class_ids`, an int64 array `(N,)`, is `rows.class_ids`).
        dropped: str. Summary of rows skipped under `on_bad_image=skip`.
        hashes: list of str. A hash of each image file's bytes, row-aligned.
    """

    name: str
    images: np.ndarray
    rows: Rows
    dropped: str = ""
    hashes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def class_ids(self) -> np.ndarray:
        return self.rows.class_ids


@public
def load_split(root: str | Path, split: str, img_size: int, num_classes: int,
               on_bad_image: str = "error", cache_dir: str | Path | None = None,
               workers: int = 0, progress: bool = True,
               max_pixels: int = MAX_IMAGE_PIXELS, max_rows: int = MAX_SPLIT_ROWS) -> SplitData:
    """Read, validate and cache one split of a dataset.

    Args:
        root: str. Dataset folder holding `<split>.csv` and the images.
        split: str. Split name.
        img_size: int. Side of the square the images are resized to.
        num_classes: int. Valid class ids are `0..num_classes-1`.
        on_bad_image: str. "error" raises `DataError` listing every bad row (malformed,
            unknown class id, missing file, undecodable image) in one report; "skip"
            drops them and reports how many and why.
        cache_dir: str or None. Where resized arrays are kept; None means the default
            config's `Config.cache_dir` (`saved_models/cache`), as a run's would be.
        workers: int. Decoding threads; 0 means one per CPU core.
        progress: bool. Show a progress bar while decoding.
        max_pixels: int. Images with more pixels are bad rows, refused before decoding.
        max_rows: int. A split file of more rows is refused before it is parsed.

    Returns:
        A `SplitData`.
    """
    scanned, problems = scan_split(root, split, img_size, num_classes, cache_dir, workers,
                                   progress, max_pixels, max_rows)
    return keep_usable(scanned, problems, on_bad_image, describe(split, root))


def scan_split(root: str | Path, split: str, img_size: int, num_classes: int,
               cache_dir: str | Path | None = None, workers: int = 0, progress: bool = True,
               max_pixels: int = MAX_IMAGE_PIXELS, max_rows: int = MAX_SPLIT_ROWS,
               heads=None) -> tuple[SplitData, list[Problem]]:
    """Check every row of a split in one pass and cache the images that decode.

    Row problems (malformed, unknown class id, missing file) do not stop the scan: the
    other rows are still decoded, so undecodable images are found in the same pass and
    a user fixes everything after one report.

    Returns:
        `(split, problems)`: the usable rows with their pixels, and every problem
        found, in CSV line order. Nothing is raised for bad rows; see `keep_usable`.
    """
    csv_path = split_csv(root, split)
    rows, problems = read_split(csv_path, num_classes, max_rows, heads)
    folder = cache_folder(cache_dir or Config().cache_dir, csv_path, rows, split, img_size,
                           max_pixels)
    if not rows:
        images, meta = np.zeros((0, img_size, img_size, 3), np.uint8), {"bad": {}, "hashes": []}
    elif (cached := _cached(folder, len(rows), img_size)) is not None:
        meta, images = cached
    else:
        meta, images = _build(folder, csv_path, rows, img_size, workers,
                              f"Decoding {split} ({csv_path})" if progress else None,
                              max_pixels, num_classes)
    bad = {int(i): reason for i, reason in meta["bad"].items()}
    problems += [Problem(rows.csvs[i], rows.lines[i], rows.paths[i], "undecodable image", why)
                 for i, why in sorted(bad.items())]
    problems.sort(key=lambda p: p.line)
    if bad:
        keep = np.array([i for i in range(len(rows)) if i not in bad], dtype=np.int64)
        images = images[keep]  # copies only the good rows, once
        rows, hashes = rows.take(keep), [meta["hashes"][i] for i in keep]
    else:
        hashes = meta["hashes"]
    return SplitData(split, images, rows, hashes=hashes), problems


def _cached(folder: Path, rows: int, img_size: int):
    """`(meta, images)` of a complete cache that fits the rows, or None when there is none
    or it is broken (a malformed `meta.json`, an array of another shape): it is rebuilt."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        images = np.load(folder / "images.npy", mmap_mode="r")
        fits = (isinstance(meta, dict) and isinstance(meta.get("bad"), dict)
                and isinstance(meta.get("hashes"), list) and len(meta["hashes"]) == rows
                and all(str(i).isdigit() and int(i) < rows for i in meta["bad"])
                and images.dtype == np.uint8 and images.shape == (rows, img_size, img_size, 3))
    except (OSError, ValueError, RecursionError):
        return None
    return (meta, images) if fits else None


def describe(split: str, root: str | Path) -> str:
    """How reports name a split: `train split (dataset/train.csv)`."""
    return f"{split} split ({split_csv(root, split)})"


def keep_usable(split: SplitData, problems: list[Problem], on_bad_image: str,
                where: str) -> SplitData:
    """Apply `data.on_bad_image` to a scanned split: raise the report, or note what was dropped."""
    split.dropped = apply_bad_image_policy(on_bad_image, problems, where)
    if len(split) == 0:
        raise DataError(f"{where}: no usable rows remain after skipping bad rows.")
    return split


def cache_folder(cache_dir, csv_path: Path, rows: Rows, split: str, size: int,
                  max_pixels: int) -> Path:
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{csv_path.resolve()}|{size}|{max_pixels}".encode())
    root = csv_path.parent
    for line, path in zip(rows.lines, rows.paths):
        stat = os.stat(root / path)
        digest.update(f"|{line}|{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return Path(cache_dir) / f"{split}-{size}px-{digest.hexdigest()[:16]}"


def decode_file(path: Path, size: int, max_pixels: int) -> tuple[np.ndarray, str]:
    """One image file's resized pixels and a hash of its bytes, from a single read."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"file larger than {MAX_FILE_BYTES >> 20} MiB")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return load_rgb(io.BytesIO(data), size, max_pixels), digest


def _build(folder: Path, csv_path: Path, rows: Rows, size: int, workers: int,
           description: str | None, max_pixels: int = MAX_IMAGE_PIXELS,
           num_classes: int | None = None):
    """Decode every row into `folder/images.npy`; remember the rows that failed."""
    root = csv_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    bad: dict[int, str] = {}
    hashes = [""] * len(rows)

    def decode(index: int):
        try:
            return index, decode_file(root / rows.paths[index], size, max_pixels)
        except Exception as e:  # Pillow raises many types for broken files
            return index, f"{type(e).__name__}: {e}"

    shape = (len(rows), size, size, 3)
    with atomic_path(folder / "images.npy") as tmp, warnings.catch_warnings():
        # Pillow warns about images over its own limit; the pixel budget refuses them.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        # The file is sparse until written: claim its blocks now, so a full disk is a
        # clear error here and not a SIGBUS from the memory map later.
        reserve_space(tmp, tmp.stat().st_size, "the decode cache (data.cache_dir)")
        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            results = pool.map(decode, range(len(rows)))
            # A bar on a terminal; in a log (not a TTY) one line when done, below.
            bar = tqdm(results, total=len(rows), desc=description, unit="img",
                       disable=True if description is None else None)
            for index, result in bar:
                if isinstance(result, str):
                    bad[index] = result
                else:
                    out[index], hashes[index] = result
        out.flush()
        del out
    if description is not None and bar.disable:
        print(f"{description}: {len(rows):,} images, {len(bad)} undecodable", flush=True)
    meta = {"version": CACHE_VERSION, "dataset": str(root.resolve()),
            "csv": str(csv_path.resolve()), "split": csv_path.stem, "size": size,
            "max_pixels": max_pixels, "classes": num_classes, "rows": len(rows),
            "bad": {str(i): why for i, why in bad.items()}, "hashes": hashes}
    atomic_write_json(folder / "meta.json", meta)  # written last: marks the cache complete
    return meta, np.load(folder / "images.npy", mmap_mode="r")
