"""The one report of bad rows: every problem of every split, named by CSV file, line and
path, so one round of fixes is enough; or, under `data.on_bad_image=skip`, one line of
what was dropped."""

from __future__ import annotations

import collections
import dataclasses

from tf_twohead.core.errors import DataError


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
