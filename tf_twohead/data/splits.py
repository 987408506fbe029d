"""Read CSV splits and validate their rows.

A split file has rows `relative/path.jpg,class_id` (or `|`-separated), with or without
a header row, or a header `path,<head>,...` and one answer per head (`data.layouts`).
Every problem is collected as a `Problem` naming the CSV file, the line and the image
path, so the whole report comes out at once (`data.problems`), before training starts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tf_twohead.core.defaults import MAX_SPLIT_ROWS
from tf_twohead.core.errors import DataError
from tf_twohead.data.layouts import HEADS, answers_parser, class_parser, layout_of
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
    """A split's usable rows, by column: a million rows cost a few lists, not a million
    objects (which took half of reading them). Indexing or iterating gives `Row`s.

    Attributes:
        csvs: list of str. Each row's CSV file.
        lines: list of int. Each row's line in it.
        paths: list of str. Each row's image, relative to the CSV's folder.
        class_ids: int64 array; -1 in the per-head layout, which has no class ids.
        answers: dict or None. In the per-head layout (`data.layouts`), head name ->
            float32 array of 1.0, 0.0 or `UNKNOWN` (-1); None in the class-id layout.
    """

    csvs: list[str]
    lines: list[int]
    paths: list[str]
    class_ids: np.ndarray
    answers: dict[str, np.ndarray] | None = None

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
        at = np.asarray(index, np.int64)
        return Rows([self.csvs[i] for i in index], [self.lines[i] for i in index],
                    [self.paths[i] for i in index], self.class_ids[at],
                    None if self.answers is None else
                    {h: a[at] for h, a in self.answers.items()})

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        """Several splits' rows as one (all of one layout)."""
        answers = None
        if parts and parts[0].answers is not None:
            answers = {h: np.concatenate([p.answers[h] for p in parts])
                       for h in parts[0].answers}
        return cls([c for p in parts for c in p.csvs], [n for p in parts for n in p.lines],
                   [q for p in parts for q in p.paths],
                   np.concatenate([p.class_ids for p in parts] or [np.zeros(0, np.int64)]),
                   answers)


def split_csv(root: str | Path, split: str) -> Path:
    """The CSV file of a split: `<root>/<split>.csv`."""
    return Path(root) / f"{split}.csv"


def read_split(csv_path: str | Path, num_classes: int, max_rows: int = MAX_SPLIT_ROWS,
               heads=None) -> tuple[Rows, list[Problem]]:
    """Parse a split file into rows and row-level problems (no image is opened here).

    Either layout (`data.layouts`): class ids, or one answer per head. The work per row
    is a CSV record, dictionary look-ups for its label(s) and one for its path
    (`rowpaths.PathChecker`), so a million rows read in seconds; a file with more than
    `max_rows` lines is refused before it is parsed.

    Args:
        csv_path: str. The CSV file; image paths in it are relative to its folder.
        num_classes: int. Valid class ids are `0..num_classes-1`.
        max_rows: int. `data.max_rows`: the most rows a split may have.
        heads: the config's head names, which a per-head header must name; None accepts
            any header.

    Returns:
        `(rows, problems)`: the well-formed rows whose file exists, and the rest.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(
            f"Split file not found: {csv_path}. Expected rows 'relative/path.jpg,class_id' "
            f"(or a header 'path,<head>,...' and one answer per head) in "
            f"<data.root>/{{train,val,test}}.csv.")
    text = _read_text(csv_path)
    _check_row_count(text, csv_path, max_rows)
    first = next((ln for ln in io.StringIO(text) if ln.strip()), "")
    delimiter = "|" if "|" in first else ","
    name = str(csv_path)
    first_reader = csv.reader([first], delimiter=delimiter)
    layout, columns = layout_of(next(_records(first_reader, name), []), heads, name)
    many = layout == HEADS
    if many:
        parse, expected = answers_parser(columns), f"path{delimiter}{delimiter.join(columns)}"
    else:
        parse, expected = class_parser(num_classes), f"path{delimiter}class_id"
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=False)
    checker = PathChecker(csv_path.parent)
    listing = checker.listing
    lines, paths, labels, problems = [], [], [], []
    first_record, last_folder, files = True, None, frozenset()
    for fields in _records(reader, name):
        # The loop runs once per row, millions of times: plain look-ups only.
        header = first_record and bool(fields)  # the first record that is not blank
        if header:
            first_record = False
            if many:
                continue
        path = fields[0].strip() if fields else ""
        if not path or (len(fields) != 2 and not many):
            if any(f.strip() for f in fields):
                problems.append(Problem(name, reader.line_num, "", "malformed row",
                                        f"expected '{expected}', got {fields[:8]}"))
            continue
        label = parse(fields[1:] if many else fields[1].strip())
        if label.__class__ is tuple and label and label[0].__class__ is str:  # a problem
            if not header or label[0] != "malformed row":  # else a header ("path,label")
                problems.append(Problem(name, reader.line_num, path[:MAX_PATH_SHOWN], *label))
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
        labels.append(label)
    if not paths and not problems:
        raise DataError(f"Split file {csv_path} has no rows.")
    if len(paths) + len(problems) > max_rows:  # the exact count, past a header
        _too_many(csv_path, f"{len(paths) + len(problems):,} rows", max_rows)
    if not many:
        return Rows([name] * len(paths), lines, paths, np.array(labels, np.int64)), problems
    table = np.array(labels, np.float32).reshape(len(paths), len(columns))
    return Rows([name] * len(paths), lines, paths, np.full(len(paths), -1, np.int64),
                {h: table[:, i].copy() for i, h in enumerate(columns)}), problems


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
