"""The audit's arguments, checked in one place: by `tf-twohead data audit` before
TensorFlow loads, and by `audit()` for a user's own script. Each error names the
argument both ways (`threshold` / `--threshold`), the value and the range. No heavy
imports."""

from __future__ import annotations

from pathlib import Path

from tf_twohead.core.errors import ConfigError, DataError
from tf_twohead.data.splits import split_csv

SPLITS = ("train", "val", "test")


def check_options(root, *, threshold: int, min_similarity: float, per_image: int,
                  folds: int = 0, model=None, write_clean=None,
                  drop_label_issues: bool = False, out=None) -> None:
    """Refuse arguments the audit cannot use, before any image is read.

    Raises:
        DataError: the dataset folder lacks a split's CSV, `write_clean` is not empty,
            or `out` is the dataset folder.
        ConfigError: a number out of range, or arguments that exclude each other.
    """
    root = Path(root)
    missing = [str(split_csv(root, s)) for s in SPLITS if not split_csv(root, s).is_file()]
    if missing:
        raise DataError(f"{root}: no {', '.join(missing)}. data audit reads a dataset folder "
                        "with train, val and test CSV files.")
    if not 0 <= threshold < 32:
        raise ConfigError(f"threshold (--threshold) {threshold}: a pHash distance in 0..31 bits.")
    if not -1 <= min_similarity <= 1:
        raise ConfigError(f"min_similarity (--min-similarity) {min_similarity}: a correlation "
                          "in [-1, 1] (-1 keeps every pHash candidate, unchecked).")
    if per_image < 1:
        raise ConfigError(f"per_image (--per-image) {per_image}: check at least 1 pair per image.")
    if folds == 1 or folds < 0:
        raise ConfigError(f"folds (--folds) {folds}: use 0 (no label-error audit) or K >= 2.")
    if folds and model:
        raise ConfigError("--folds and --model both score labels; pass one of them.")
    if drop_label_issues and not write_clean:
        raise ConfigError("--drop-label-issues applies to --write-clean DIR; pass both.")
    if write_clean and Path(write_clean).exists() and any(Path(write_clean).iterdir()):
        raise DataError(f"--write-clean {write_clean} is not empty; choose a new folder.")
    if out is not None and Path(out).resolve() == root.resolve():
        raise DataError(f"--out {out} is the dataset folder; the audit writes beside it.")
