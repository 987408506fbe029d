"""Read CSV splits, validate their rows, and map class ids to per-head targets.

A split file has rows `relative/path.jpg,class_id` (or `|`-separated), with or without
a header row. Every problem is collected as a `Problem` naming the CSV file, the line
and the image path, so the whole report comes out at once, before training starts.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
from pathlib import Path

import numpy as np

from tf_twohead.core.defaults import SOFTMAX_KINDS, SOFTMAX_OUTPUT
from tf_twohead.core.errors import DataError


@dataclasses.dataclass(frozen=True)
class Row:
    """One usable CSV row: where it came from, the image file and its class id."""

    csv: str
    line: int
    path: str
    class_id: int

    @property
    def where(self) -> str:
        return f"{self.csv}:{self.line}"


@dataclasses.dataclass(frozen=True)
class Problem:
    """A row that cannot be used, and why."""

    csv: str
    line: int
    path: str
    reason: str  # short category used in summaries, e.g. "missing file"
    detail: str = ""

    def __str__(self) -> str:
        path = f" {self.path!r}" if self.path else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.csv}:{self.line}:{path} {self.reason}{detail}"


def split_csv(root: str | Path, split: str) -> Path:
    """The CSV file of a split: `<root>/<split>.csv`."""
    return Path(root) / f"{split}.csv"


def read_split(csv_path: str | Path, num_classes: int) -> tuple[list[Row], list[Problem]]:
    """Parse a split file into rows and row-level problems (no image is opened here).

    Args:
        csv_path: str. The CSV file; image paths in it are relative to its folder.
        num_classes: int. Valid class ids are `0..num_classes-1`.

    Returns:
        `(rows, problems)`: the well-formed rows whose file exists, and the rest.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(
            f"Split file not found: {csv_path}. Expected headerless rows "
            f"'relative/path.jpg,class_id' in <data.root>/{{train,val,test}}.csv."
        )
    text = _read_text(csv_path)
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    delimiter = "|" if "|" in first else ","
    root = csv_path.parent
    inside = root.resolve()
    rows, problems = [], []
    name = str(csv_path)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=False)
    for index, fields in _records(reader, name):
        line = reader.line_num
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue
        if len(fields) != 2 or not fields[0]:
            problems.append(Problem(name, line, "", "malformed row",
                                    f"expected 'path{delimiter}class_id', got {fields}"))
            continue
        path, label = fields
        try:
            class_id = int(label)
        except ValueError:
            if index == 0:  # a header row such as "path,label"
                continue
            problems.append(Problem(name, line, path, "malformed row",
                                    f"class id {label!r} is not an integer"))
            continue
        if not 0 <= class_id < num_classes:
            problems.append(Problem(name, line, path, "unknown class id",
                                    f"{class_id} is not in 0..{num_classes - 1}"))
            continue
        problem = _check_path(root, inside, path)
        if problem:
            problems.append(Problem(name, line, path[:MAX_PATH_SHOWN], *problem))
            continue
        rows.append(Row(name, line, path, class_id))
    if not rows and not problems:
        raise DataError(f"Split file {csv_path} has no rows.")
    return rows, problems


MAX_CSV_BYTES = 256 << 20  # 256 MiB: millions of rows; more is not a split file
MAX_PATH_SHOWN = 120  # characters of a row's path quoted in a report


def _read_text(csv_path: Path) -> str:
    """The split file as text: bounded in size, and UTF-8 (a BOM is fine)."""
    size = csv_path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise DataError(f"{csv_path}: {size:,} bytes, more than a split file of "
                        f"{MAX_CSV_BYTES >> 20} MiB; is it the right file?")
    try:
        return csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{csv_path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at "
                        f"offset {e.start:,}). Save it as UTF-8.") from None


def _records(reader, name: str):
    """The CSV reader's rows, with a `DataError` naming the line when one cannot be read
    (a field over the csv module's limit, a NUL byte)."""
    try:
        yield from enumerate(reader)
    except csv.Error as e:
        raise DataError(f"{name}:{reader.line_num}: unreadable CSV ({e}); rows are "
                        "'relative/path.jpg,class_id'. Is it a split file?") from None


def _check_path(root: Path, inside: Path, path: str) -> tuple[str, str] | None:
    """Why a row's image path cannot be used, or None.

    The path must stay inside the dataset folder once `..` and links are resolved. A
    path that leaves it gets the same answer whether its target exists or not, so a
    split file cannot probe the rest of the disk.
    """
    try:
        real = (root / path).resolve()
        if not real.is_relative_to(inside):
            return ("outside the dataset folder", "rows name files under the CSV's folder "
                    "(no absolute paths, no '..' or links leading out)")
        if not real.is_file():
            return ("missing file", f"{root / path} does not exist")
    except (OSError, RuntimeError, ValueError) as e:  # too long, a link loop, a NUL
        return ("unreadable path", getattr(e, "strerror", None) or str(e)[:100])
    return None


def apply_bad_image_policy(policy: str, problems: list[Problem], what: str) -> str:
    """Apply `data.on_bad_image` to the problems found in a split.

    Args:
        policy: str. "error" raises `DataError` listing every problem; "skip" returns a
            one-line summary of what was dropped and why.
        problems: list of `Problem`.
        what: str. Name of the split, for the messages.

    Returns:
        The summary line ("" when there was nothing to drop).
    """
    if not problems:
        return ""
    if policy == "skip":
        return f"{what}: skipped {len(problems)} bad rows ({_counts(problems)})."
    raise_bad_rows({what: problems})
    return ""  # unreachable: raise_bad_rows raised


def raise_bad_rows(problems_by_split: dict[str, list[Problem]]) -> None:
    """Raise one `DataError` naming every bad row of every split; do nothing if none.

    Rows of all kinds (malformed, unknown class id, missing file, undecodable image)
    and all splits come in one report, so one round of fixes is enough.
    """
    sections = []
    for what, problems in problems_by_split.items():
        if not problems:
            continue
        shown = "\n".join(f"  {p}" for p in problems[:MAX_SHOWN])
        more = (f"\n  ... and {len(problems) - MAX_SHOWN} more"
                if len(problems) > MAX_SHOWN else "")
        sections.append(f"{what}: {len(problems)} bad rows ({_counts(problems)}):\n"
                        f"{shown}{more}")
    if sections:
        raise DataError("\n".join(sections) + "\nFix or remove these rows, or set "
                        "data.on_bad_image=skip to drop them.")


MAX_SHOWN = 50  # rows listed per split; the counts cover all of them


def _counts(problems: list[Problem]) -> str:
    counts = collections.Counter(p.reason for p in problems)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())


def encode_targets(class_ids, kind: str, heads: dict[str, list[int]],
                   num_classes: int) -> dict[str, np.ndarray]:
    """Map class ids to the training targets of a model, keyed by output name.

    Args:
        class_ids: int array of shape `(N,)`.
        kind: str. "two_head" gives one `(N, 1)` binary target per head (1 where the
            class id is among the head's positive ids); "softmax" and "combined" give one-hot
            `(N, num_classes)` targets under the key "probs".
        heads: dict. Head name -> positive class ids.
        num_classes: int. Number of classes.

    Example:

    >>> encode_targets([0, 1, 2], "two_head", {"main": [2], "aux": [1]}, 3)["main"].ravel()
    array([0., 0., 1.], dtype=float32)
    """
    class_ids = np.asarray(class_ids, dtype=np.int64)
    if kind in SOFTMAX_KINDS:
        return {SOFTMAX_OUTPUT: np.eye(num_classes, dtype=np.float32)[class_ids]}
    return {
        name: np.isin(class_ids, positive).astype(np.float32)[:, None]
        for name, positive in heads.items()
    }
