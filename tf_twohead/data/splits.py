"""Read CSV splits, validate their rows, and map class ids to per-head targets.

A split file has rows `relative/path.jpg,class_id` (or `|`-separated), with or without
a header row. Every problem is collected as a `Problem` naming the CSV file, the line
and the image path, so the whole report comes out at once (`data.problems`), before
training starts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tf_twohead.core.defaults import MAX_SPLIT_ROWS, SOFTMAX_KINDS, SOFTMAX_OUTPUT
from tf_twohead.core.errors import DataError
from tf_twohead.data.problems import Problem
from tf_twohead.data.rowpaths import PathChecker


class Row(NamedTuple):
    """One usable CSV row: where it came from, the image file and its class id."""

    csv: str
    line: int
    path: str
    class_id: int

    @property
    def where(self) -> str:
        return f"{self.csv}:{self.line}"


@dataclasses.dataclass
class Rows:
    """A split's usable rows, by column: a million rows cost four lists, not a million
    objects (which took half of reading them). Indexing or iterating gives `Row`s.

    Attributes:
        csvs: list of str. Each row's CSV file.
        lines: list of int. Each row's line in it.
        paths: list of str. Each row's image, relative to the CSV's folder.
        class_ids: int64 array.
    """

    csvs: list[str]
    lines: list[int]
    paths: list[str]
    class_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(range(len(self))[i])
        return Row(self.csvs[i], self.lines[i], self.paths[i], int(self.class_ids[i]))

    def __iter__(self):
        return map(Row, self.csvs, self.lines, self.paths, self.class_ids.tolist())

    def take(self, index) -> Rows:
        """The rows at `index` (a sequence of positions), in its order."""
        index = list(index)
        return Rows([self.csvs[i] for i in index], [self.lines[i] for i in index],
                    [self.paths[i] for i in index], self.class_ids[np.asarray(index, np.int64)])

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        return cls([c for p in parts for c in p.csvs], [n for p in parts for n in p.lines],
                   [q for p in parts for q in p.paths],
                   np.concatenate([p.class_ids for p in parts] or [np.zeros(0, np.int64)]))


def split_csv(root: str | Path, split: str) -> Path:
    """The CSV file of a split: `<root>/<split>.csv`."""
    return Path(root) / f"{split}.csv"


def read_split(csv_path: str | Path, num_classes: int,
               max_rows: int = MAX_SPLIT_ROWS) -> tuple[Rows, list[Problem]]:
    """Parse a split file into rows and row-level problems (no image is opened here).

    The work per row is a CSV record, a dictionary look-up for its class id and one for
    its path (`rowpaths.PathChecker`), so a million rows read in seconds; a file with
    more than `max_rows` lines is refused before it is parsed.

    Args:
        csv_path: str. The CSV file; image paths in it are relative to its folder.
        num_classes: int. Valid class ids are `0..num_classes-1`.
        max_rows: int. `data.max_rows`: the most rows a split may have.

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
    _check_row_count(text, csv_path, max_rows)
    first = next((ln for ln in io.StringIO(text) if ln.strip()), "")
    delimiter = "|" if "|" in first else ","
    checker = PathChecker(csv_path.parent)
    listing = checker.listing
    ids: dict[str, int | tuple[str, str]] = {}  # a label's text -> its id, or why not
    lines, paths, class_ids, problems = [], [], [], []
    name = str(csv_path)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=False)
    first_record, last_folder, files = True, None, frozenset()
    for fields in _records(reader, name):
        # The loop runs once per row, millions of times: plain look-ups only.
        header, first_record = first_record, False
        path, label = (fields[0].strip(), fields[1].strip()) if len(fields) == 2 else ("", "")
        if not path:
            if any(f.strip() for f in fields):
                problems.append(Problem(name, reader.line_num, "", "malformed row",
                                        f"expected 'path{delimiter}class_id', got {fields}"))
            continue
        class_id = ids.get(label)
        if class_id is None:
            class_id = ids[label] = _class_id(label, num_classes)
        if class_id.__class__ is not int:
            if not header or class_id[0] != "malformed row":  # else a header ("path,label")
                problems.append(Problem(name, reader.line_num, path[:MAX_PATH_SHOWN], *class_id))
            continue
        folder, _, base = path.rpartition("/")
        if folder != last_folder:  # rows come grouped by folder: one look-up per group
            files, last_folder = listing(folder), folder
        if base not in files or path[0] == "/":
            problem = checker.full_check(path)
            if problem:
                problems.append(Problem(name, reader.line_num, path[:MAX_PATH_SHOWN], *problem))
                continue
        lines.append(reader.line_num)
        paths.append(path)
        class_ids.append(class_id)
    if not paths and not problems:
        raise DataError(f"Split file {csv_path} has no rows.")
    if len(paths) + len(problems) > max_rows:  # the exact count, past a header
        _too_many(csv_path, f"{len(paths) + len(problems):,} rows", max_rows)
    return Rows([name] * len(paths), lines, paths, np.array(class_ids, np.int64)), problems


def _class_id(label: str, num_classes: int) -> int | tuple[str, str]:
    """A label's class id, or the problem (reason, detail) of every row that has it."""
    try:
        class_id = int(label)
    except ValueError:
        return ("malformed row", f"class id {label[:40]!r} is not an integer")
    if not 0 <= class_id < num_classes:
        return ("unknown class id", f"{class_id} is not in 0..{num_classes - 1}")
    return class_id


def _check_row_count(text: str, csv_path: Path, max_rows: int) -> None:
    """Refuse a split of more lines than `data.max_rows` (and a header), before parsing:
    ten million rows would take minutes to check and a cache of tens of gigabytes."""
    lines = text.count("\n") + (not text.endswith("\n"))
    if lines > max_rows + 1:
        _too_many(csv_path, f"{lines:,} lines", max_rows)


def _too_many(csv_path: Path, count: str, max_rows: int):
    raise DataError(f"{csv_path}: {count}, more than data.max_rows={max_rows:,} rows a split "
                    "may have. Raise data.max_rows if the split is meant to be this big.")


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
        yield from reader
    except csv.Error as e:
        raise DataError(f"{name}:{reader.line_num}: unreadable CSV ({e}); rows are "
                        "'relative/path.jpg,class_id'. Is it a split file?") from None


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
