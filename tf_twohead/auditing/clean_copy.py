"""`--write-clean DIR`: a new dataset folder without the flagged rows, the original
untouched.

The evaluation splits are never made easier. Leakage is removed from the side that can
lose it: a train row that is a copy or near copy of a val or test image goes, and a val
row that copies a test image (the `leaked` rows of duplicates.csv); test stays as it
was, so figures measured on it stay comparable. With `drop_label_issues`, the flagged
*train* rows go too: dropping flagged val or test rows would remove the hard cases
from the figures, so their labels are left for a person to fix (label_issues.csv).

The kept images are copied into DIR (never hard-linked: an edit of the copy must not
change the original) under their real path inside the dataset folder, symlinks and `..`
resolved, so DIR is a dataset folder like any other and nothing is ever written outside
it, whatever a row's path spells: its CSVs point inside it, as the loader requires.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from tf_twohead.core.errors import DataError
from tf_twohead.core.fileio import atomic_write_text


def rows_to_drop(found: pd.DataFrame, issues: pd.DataFrame | None,
                 drop_label_issues: bool) -> set[tuple[str, int]]:
    """(split, CSV line) of every row the clean copy leaves out."""
    leaked = found[found["leaked"].astype(bool)]
    drop = {(s, int(line)) for s, line in zip(leaked["split"], leaked["line"])}
    if drop_label_issues and issues is not None:
        train = issues[issues["split"] == "train"]
        drop |= {("train", int(line)) for line in train["line"]}
    return drop


def write_clean(root, out, table: pd.DataFrame, drop: set[tuple[str, int]]) -> dict:
    """Write DIR/<split>.csv and link the kept images; returns rows kept per split."""
    root, out = Path(root).resolve(), Path(out).resolve()
    if out == root or out in root.parents:
        raise DataError(f"--write-clean {out} holds the dataset {root}; choose a new folder "
                        "(the originals are never rewritten).")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"--write-clean {out} is not empty; choose a new folder.")
    kept = {}
    for split, rows in table.groupby("split", sort=False):
        rows = rows.sort_values("line")
        rows = rows[[(split, int(line)) not in drop for line in rows["line"]]]
        inside = [_copy(root, path, out) for path in rows["path"]]
        rows = rows.assign(path=inside)
        atomic_write_text(out / f"{split}.csv", _csv_text(rows))
        kept[split] = len(rows)
    return kept


def _csv_text(rows: pd.DataFrame) -> str:
    """The split in its own layout, as the reader parses it: `path,class_id` rows, or a
    `path,<head>,...` header and answers (1, 0, empty for unknown)."""
    if (rows["class_id"] >= 0).all():
        return rows[["path", "class_id"]].to_csv(header=False, index=False,
                                                 lineterminator="\n")
    columns = [c for c in rows.columns if c.startswith("answer_")]
    cells = rows[columns].apply(lambda a: a.map({1.0: "1", 0.0: "0"}).fillna(""))
    cells.columns = [c[len("answer_"):] for c in columns]
    return pd.concat([rows[["path"]], cells], axis=1).to_csv(index=False,
                                                             lineterminator="\n")


def _copy(root: Path, path: str, out: Path) -> str:
    """Copy the image a row names into `out`, under its resolved path inside `root`;
    returns that path (the clean copy's CSV row). A row that resolves outside `root`
    (the row check refuses those; a symlink swapped in since) is a `DataError`."""
    source = (root / path).resolve()
    if not source.is_relative_to(root) or not source.is_file():
        raise DataError(f"{path}: resolves to {source}, not a file inside the dataset folder "
                        f"{root}; the clean copy is not written past it.")
    relative = source.relative_to(root)
    target = out / relative
    if not target.resolve().is_relative_to(out):  # a folder of out swapped for a symlink
        raise DataError(f"--write-clean {out}: {relative} would be written outside it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copyfile(source, target)
    return relative.as_posix()
