"""The two layouts of a split CSV, told apart by its first row, and how each row's label
is read.

- **class ids** (the reference's): `path,class_id` rows, headerless or under a header
  such as `path,class_id`; the config's `model.heads` turns a class id into every head's
  answer, so the heads are exclusive facts of one label.
- **per-head columns**: a header `path,<head>,<head>,...` naming the config's heads, and
  in each cell that head's answer: `1`/`true`/`yes`, `0`/`false`/`no`, or unknown (an
  empty cell, `-1` or `?`). Independent questions, each answered where someone answered
  it; an unknown answer trains and scores nothing for its head (`recipe.masked`).

A per-head header is one whose first column is `path` and whose other columns are not a
class id column's usual name; its columns must be exactly the config's heads, in any
order. Reading a row costs one dictionary look-up per cell (answers are cached by text).
"""

from __future__ import annotations

from pathlib import Path

from tf_twohead.core.defaults import UNKNOWN
from tf_twohead.core.errors import DataError

CLASSES, HEADS = "class ids", "per-head columns"
CLASS_COLUMNS = {"class_id", "classid", "class", "label", "labels", "target", "category", "y"}
ANSWERS = {"1": 1.0, "true": 1.0, "yes": 1.0, "0": 0.0, "false": 0.0, "no": 0.0,
           "": UNKNOWN, "-1": UNKNOWN, "?": UNKNOWN}


def layout_of(first: list[str], heads, where: str) -> tuple[str, list[str]]:
    """`(layout, columns)` of a split whose first record is `first`; for per-head columns
    `columns` are the head names in the file's order.

    Args:
        first: list of str. The first non-empty record.
        heads: the config's head names, or None to accept any (a cache's re-check).
        where: str. The CSV file, for the message.

    Raises:
        DataError: a per-head header whose columns are not the config's heads.
    """
    names = [f.strip() for f in first]
    if (len(names) < 2 or names[0].lower() != "path"
            or (len(names) == 2 and names[1].lower() in CLASS_COLUMNS)):
        return CLASSES, []
    columns = names[1:]
    if heads is not None:
        check_columns(columns, list(heads), where)
    return HEADS, columns


def check_columns(columns: list[str], heads: list[str], where: str) -> None:
    """The per-head columns must be the config's heads, each once."""
    twice = sorted({c for c in columns if columns.count(c) > 1})
    missing = [h for h in heads if h not in columns]
    extra = [c for c in columns if c not in heads]
    if twice or missing or extra:
        said = "; ".join(part for part in (
            f"heads without a column: {', '.join(missing)}" if missing else "",
            f"columns that are not heads: {', '.join(extra)}" if extra else "",
            f"columns named twice: {', '.join(twice)}" if twice else "") if part)
        raise DataError(f"{where}: its per-head columns ({', '.join(columns)}) are not the "
                        f"config's heads (model.heads: {', '.join(heads)}): {said}. Name one "
                        "column per head in the header 'path,<head>,...', or set "
                        "model.heads to the columns.")


def class_parser(num_classes: int):
    """`parse(label) -> class id or (reason, detail)`, cached by the label's text."""
    cache: dict[str, int | tuple[str, str]] = {}

    def parse(label: str):
        found = cache.get(label)
        if found is None:
            found = cache[label] = _class_id(label, num_classes)
        return found

    return parse


def _class_id(label: str, num_classes: int) -> int | tuple[str, str]:
    try:
        class_id = int(label)
    except ValueError:
        return ("malformed row", f"class id {label[:40]!r} is not an integer")
    if not 0 <= class_id < num_classes:
        return ("unknown class id", f"{class_id} is not in 0..{num_classes - 1}")
    return class_id


def answers_parser(columns: list[str]):
    """`parse(cells) -> tuple of answers (1.0, 0.0, UNKNOWN) or (reason, detail)`."""
    cache = dict(ANSWERS)

    def parse(cells: list[str]):
        if len(cells) != len(columns):
            return ("malformed row", f"{len(cells)} answers for the {len(columns)} columns "
                                     f"{', '.join(columns)}")
        out = []
        for column, cell in zip(columns, cells):
            answer = cache.get(cell)
            if answer is None:
                answer = cache.setdefault(cell, ANSWERS.get(cell.strip().lower(), cell))
            if answer.__class__ is str:
                return ("bad label", f"column {column!r}: {answer[:40]!r} is not 1, 0, "
                                     "true/false, yes/no, or unknown (empty, -1, ?)")
            out.append(answer)
        return tuple(out)

    return parse


def csv_heads(csv_path: Path) -> list[str] | None:
    """The head columns of a per-head split file, from its first line alone (no parsing
    of the rest), or None for the class-id layout. For checks before TensorFlow loads."""
    import csv

    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as f:
            first = f.readline(1 << 16)
    except (OSError, UnicodeDecodeError):
        return None  # read_split says what is wrong with the file
    delimiter = "|" if "|" in first else ","
    try:
        record = next(csv.reader([first], delimiter=delimiter), [])
    except csv.Error:
        return None  # read_split names the line
    layout, columns = layout_of(record, None, str(csv_path))
    return columns if layout == HEADS else None


def check_layouts(cfg, csv_paths: list[Path]) -> None:
    """One layout for a whole dataset, per-head columns that are the config's heads, and a
    model kind that can learn them: from each file's first line, before TensorFlow loads.

    Raises:
        DataError: naming the file and what to change.
    """
    found = {}
    for path in csv_paths:
        columns = csv_heads(path)
        if columns is not None:
            check_columns(columns, list(cfg.model.heads), str(path))
        found[str(path)] = HEADS if columns is not None else CLASSES
    if len(set(found.values())) > 1:
        said = "; ".join(f"{p}: {layout}" for p, layout in found.items())
        raise DataError(f"The splits mix layouts ({said}). Write every split in one layout: "
                        "class ids, or a header 'path,<head>,...' with one answer per head.")
    if HEADS in found.values() and cfg.model.kind != "two_head":
        raise DataError(f"model.kind={cfg.model.kind} learns one class per image, but the "
                        "splits answer each head in its own column (no class ids). Use "
                        "model.kind=two_head.")
