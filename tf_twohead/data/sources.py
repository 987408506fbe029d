"""Write real datasets in our layout (class folders + headerless CSV splits).

Fashion-MNIST stands in for the reference's documents/screens photos so the demo runs
offline. Garment classes map to the three reference classes so that the **main** task
is hard and the **aux** task is easy, like the original:

| reference class (id, folder)          | Fashion-MNIST classes (ids)                  |
|---------------------------------------|----------------------------------------------|
| 0 document (`documents`)              | T-shirt/top 0, Pullover 2, Dress 3, Coat 4   |
| 1 not a document (`not a documents`)  | Trouser 1, Sandal 5, Sneaker 7, Bag 8, Boot 9 |
| 2 screen (`screens`)                  | Shirt 6                                      |

main = "screen" is Shirt against every other top, the classic hard Fashion-MNIST
confusion; aux = "not a document" separates shoes, trousers and bags from tops, which
is easy. Images are written as grayscale JPEGs upscaled to `size`, so the pipeline's
grayscale -> RGB path is exercised too.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from tf_twohead.core.errors import DataError
from tf_twohead.core.fileio import atomic_write_text

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_TO_CLASS = {0: 0, 2: 0, 3: 0, 4: 0, 1: 1, 5: 1, 7: 1, 8: 1, 9: 1, 6: 2}
CLASS_FOLDERS = ("documents", "not a documents", "screens")
# Fashion-MNIST's own 10 classes (`classes=10`), for the combined-encoders demo.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


MAX_IDX_BYTES = 256 << 20  # Fashion-MNIST's training images are 47 MB


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (optionally gzipped) into a numpy array.

    The header is read first and the shape it declares bounded (`MAX_IDX_BYTES`); then
    exactly that many bytes are read, so a 1 MB gzip of zeros cannot unpack gigabytes.

    Args:
        path: str. The file (`*-idx3-ubyte` or `*-idx3-ubyte.gz`).
        ndim: int or None. The dimensions it must have (3 for images, 1 for labels).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:3] != b"\0\0\x08" or not 1 <= head[3] <= 4:
                raise DataError(f"{path} is not an unsigned-byte IDX file of 1 to 4 dimensions.")
            if ndim is not None and head[3] != ndim:
                raise DataError(f"{path} has {head[3]} dimensions; expected {ndim}.")
            shape = struct.unpack(f">{head[3]}I", f.read(4 * head[3]))
            size = math.prod(shape)
            if size > MAX_IDX_BYTES:
                raise DataError(f"{path} declares shape {shape} ({size:,} bytes), more than "
                                f"the {MAX_IDX_BYTES >> 20} MiB an IDX file here may hold.")
            data = f.read(size + 1)
    except (OSError, EOFError, struct.error, zlib.error) as e:
        raise DataError(f"{path}: not a readable IDX file ({type(e).__name__}: {e})") from None
    if len(data) != size:
        raise DataError(f"{path} is truncated: expected {shape}, found {len(data)} values."
                        if len(data) < size else
                        f"{path} holds more than the {shape} its header declares.")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def load_fashion_mnist(source: str | Path | None = None):
    """Fashion-MNIST as `{"train": (images, labels), "test": (images, labels)}`.

    Looks in `source`, then in Debian's `dataset-fashion-mnist` folder; when neither has
    the files and `source` was not given, falls back to Keras' download (online only).
    """
    folders = [Path(source)] if source else [Path(DEBIAN_FASHION_MNIST)]
    for folder in folders:
        found = {}
        for split, names in IDX_FILES.items():
            paths = [_find(folder, name) for name in names]
            if all(paths):
                images, labels = read_idx(paths[0], 3), read_idx(paths[1], 1)
                if len(images) != len(labels) or (len(labels) and labels.max() > 9):
                    raise DataError(f"{paths[1]}: {len(labels):,} labels of 0-9 expected, for "
                                    f"the {len(images):,} images of {paths[0]}.")
                found[split] = (images, labels)
        if len(found) == len(IDX_FILES):
            return found
    if source:
        raise FileNotFoundError(
            f"No Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], ...) in {source}.")
    try:
        import keras

        (xtr, ytr), (xte, yte) = keras.datasets.fashion_mnist.load_data()
    except Exception as e:  # offline, blocked, ...
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {DEBIAN_FASHION_MNIST} and the download failed "
            f"({e}). Install it with `apt-get install dataset-fashion-mnist` or pass "
            f"--source DIR."
        ) from None
    return {"train": (xtr, ytr), "test": (xte, yte)}


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def write_fashion_mnist(out: str | Path, source: str | Path | None = None, size: int = 64,
                        train: int = 6000, val: int = 1000, test: int = 2000,
                        seed: int = 0, progress: bool = True, classes: int = 3
                        ) -> dict[str, int]:
    """Write a Fashion-MNIST subset in the reference layout.

    Args:
        out: str. Output dataset folder (class folders and train/val/test.csv).
        source: str or None. Folder with the IDX files; see `load_fashion_mnist`.
        size: int. Side of the written images in pixels. Defaults to 64.
        train, val: int. Images drawn (without replacement) from Fashion-MNIST's
            training set for our train and val splits.
        test: int. Images drawn from Fashion-MNIST's test set.
        seed: int. Sampling seed.
        classes: int. 3: the reference's classes (the table above); 10: Fashion-MNIST's
            own classes, ids 0-9 in folders named after them (`FASHION_CLASSES`).

    Returns:
        Rows written per split.
    """
    if classes not in (3, 10):
        raise ValueError(f"classes must be 3 (the reference's) or 10 (Fashion-MNIST's). "
                         f"Received: classes={classes}")
    folders = CLASS_FOLDERS if classes == 3 else [n.replace("/", "_") for n in FASHION_CLASSES]
    data = load_fashion_mnist(source)
    rng = np.random.default_rng(seed)
    xtr, ytr = data["train"]
    xte, yte = data["test"]
    if train + val > len(xtr) or test > len(xte):
        raise ValueError(f"Asked for train+val={train + val} (max {len(xtr)}) and "
                         f"test={test} (max {len(xte)}) images.")
    order = rng.permutation(len(xtr))
    picks = {"train": (xtr, ytr, order[:train]), "val": (xtr, ytr, order[train:train + val]),
             "test": (xte, yte, rng.permutation(len(xte))[:test])}
    out = Path(out)
    for folder in folders:
        (out / folder).mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, (images, labels, index) in picks.items():
        rows = []
        quiet = None if progress else True  # None: a bar on a terminal only
        for i in tqdm(index, desc=f"Writing {split}", disable=quiet, unit="img"):
            class_id = FASHION_TO_CLASS[int(labels[i])] if classes == 3 else int(labels[i])
            rel = f"{folders[class_id]}/{split}_{i:05d}.jpg"
            img = Image.fromarray(images[i], "L")
            if size != img.width:
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            img.save(out / rel, quality=95)
            rows.append((rel, class_id))
        csv_text = pd.DataFrame(rows).to_csv(header=False, index=False, lineterminator="\n")
        atomic_write_text(out / f"{split}.csv", csv_text)
        counts[split] = len(rows)
    atomic_write_text(out / "README.txt", (
        "Fashion-MNIST in the tf-twohead layout. Class ids: 0 document = T-shirt/top, "
        "Pullover, Dress, Coat; 1 not a document = Trouser, Sandal, Sneaker, Bag, "
        "Ankle boot; 2 screen = Shirt.\n") if classes == 3 else (
        "Fashion-MNIST in the tf-twohead layout, its own 10 classes: "
        + ", ".join(f"{i} {n}" for i, n in enumerate(FASHION_CLASSES)) + ".\n"))
    return counts

