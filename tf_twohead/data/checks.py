"""Checks of the data as a whole, before any training step: every head has positive and
negative examples in every split, and exact duplicate images are reported.

Both use what the decode pass already computed (class ids, a hash of each file's bytes),
so they read nothing again.
"""

from __future__ import annotations

import collections
import sys

from tf_twohead.core.errors import DataError
from tf_twohead.data.cache import SplitData
from tf_twohead.data.targets import head_answers, known

EXAMPLES = 3  # duplicate groups quoted per kind


def check_heads(splits: dict[str, SplitData], heads: dict[str, list[int]],
                allow_single_class: bool = False) -> None:
    """Raise one `DataError` naming every split in which a head has no positive or no
    negative example among its known answers: its F1 would be 0 (or undefined) however
    well the model learns.

    Args:
        splits: dict of split name -> `SplitData`.
        heads: dict. Head name -> positive class ids.
        allow_single_class: bool. `data.allow_single_class`: accept such splits.
    """
    if allow_single_class:
        return
    problems = []
    for name, split in splits.items():
        answers = head_answers(split.rows, heads)
        for head, ids in heads.items():
            positives, count = int((answers[head] == 1).sum()), int(known(answers[head]).sum())
            if positives == 0 or positives == count:
                missing = "positive" if positives == 0 else "negative"
                which = (f"(positive class ids {list(ids)})" if split.rows.answers is None
                         else "(its column)")
                among = (f"its {len(split)} images" if count == len(split)
                         else f"its {count} known answers ({len(split)} images)")
                problems.append(f"  {name} split: head {head!r} {which} has no {missing} "
                                f"example among {among}")
    if problems:
        raise DataError("A head cannot be trained or scored without both answers:\n"
                        + "\n".join(problems) + "\nFix the splits or model.heads, or set "
                        "data.allow_single_class=true to accept this.")


def duplicates(splits: dict[str, SplitData]) -> dict[str, list[list[str]]]:
    """Groups of rows whose image files are byte-for-byte identical.

    Returns:
        `{"within <split>": [[row, row, ...], ...], "across a/b": [...]}`: rows as
        `csv:line path`; a group spanning several splits is listed under "across".
    """
    by_hash = collections.defaultdict(list)
    for name, split in splits.items():
        for row, digest in zip(split.rows, split.hashes):
            if digest:
                by_hash[digest].append((name, row))
    groups = collections.defaultdict(list)
    for members in by_hash.values():
        if len(members) > 1:
            names = sorted({name for name, _ in members})
            kind = f"within {names[0]}" if len(names) == 1 else f"across {'/'.join(names)}"
            groups[kind].append([f"{row.where} {row.path}" for _, row in members])
    return dict(groups)


def report_duplicates(splits: dict[str, SplitData], stream=None) -> dict:
    """Print a warning with counts and examples of exact duplicates; return the groups."""
    groups = duplicates(splits)
    if groups:
        lines = ["warning: exact duplicate images (identical files), which inflate "
                 "validation and test figures when they cross splits:"]
        for kind, found in sorted(groups.items(), key=lambda g: not g[0].startswith("across")):
            rows = sum(len(g) for g in found)
            lines.append(f"  {kind}: {len(found)} groups, {rows} rows; e.g. "
                         + "; ".join(" = ".join(g[:2]) for g in found[:EXAMPLES]))
        print("\n".join(lines), file=stream or sys.stderr, flush=True)
    return groups
