"""What the audit finds without training: duplicate groups (exact and near copies,
leakage across splits first, label conflicts), and the balance and shape of every split.

Everything is computed from what the decode pass left in the cache (pixels at the
audit's size, a hash of each file's bytes) plus the images' headers: nothing is
decoded twice.
"""

from __future__ import annotations

import collections
import time

import numpy as np
import pandas as pd
from PIL import Image

from tf_twohead.auditing.near import (
    PER_IMAGE,
    closest_only,
    groups,
    hamming,
    near_pairs,
    phash_array,
    variant_hashes,
)
from tf_twohead.auditing.verify import similarity, thumbnail_correlation
from tf_twohead.data.cache import SplitData
from tf_twohead.data.targets import head_answers, known

RANK = {"train": 0, "val": 1, "test": 2}  # a copy in a lower split leaks a higher one
COLUMNS = ("group", "kind", "leakage", "leaked", "label_conflict", "similarity", "distance",
           "split", "line", "path", "class_id", "class_name", "phash", "file_hash")
FLAGS = ("leakage", "leaked", "label_conflict")


def rows_table(splits: dict[str, SplitData], class_names: list[str],
               heads: dict[str, list[int]], gray: np.ndarray) -> pd.DataFrame:
    """One row per usable image of every split: where it is, its class (-1 and "" in the
    per-head layout), each head's answer (`answer_<head>`: 1, 0 or `UNKNOWN`) and its
    hashes (pHash of `gray`, the splits' images as the pixel check sees them, in split
    order)."""
    parts = []
    for name, split in splits.items():
        answers = head_answers(split.rows, heads)
        parts.append(pd.DataFrame({
            "split": name, "line": split.rows.lines, "path": split.rows.paths,
            "class_id": split.class_ids,
            **{answer_column(h): answers[h] for h in heads},
            "file_hash": split.hashes or [""] * len(split)}))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    table["class_name"] = [class_names[i] if i >= 0 else "" for i in table["class_id"]]
    table["phash"] = phash_array(gray)
    return table


def duplicate_groups(table: pd.DataFrame, gray: np.ndarray, threshold: int,
                     min_similarity: float, per_image: int = PER_IMAGE
                     ) -> tuple[pd.DataFrame, dict]:
    """Rows in groups of copies of one picture, one line per member, and counts.

    Candidates are byte-identical files and pairs whose pHash (or an edited version's,
    `near.VARIANTS`) is within `threshold` bits, each image's `per_image` closest;
    a candidate pair counts when the pixel check (`verify.similarity` on `gray`, the
    64 px grayscale images) is at least `min_similarity`. -1 is pHash alone: every
    candidate counts, unchecked (`similarity` NaN).

    Columns added: `group`, `kind` ("exact": identical files; "near": edited copies),
    `similarity` (the row's best pixel check with another member; 1 for identical
    files), `distance` (pHash bits from the group's first member), `leaked` (this row is
    itself a copy of a row in a later split: a train row of a val or test image, a val
    row of a test image), `leakage` (a member of the group is leaked), `label_conflict`
    (its members carry different class ids). Rows are linked into groups through any
    chain of pairs, but only direct pairs make a row `leaked`. Leakage groups come
    first, then conflicts, then size.

    Returns:
        The rows, and counts: "candidates" (pHash pairs), "checked" (the closest of
        them), "confirmed" (pairs kept), "rejected across splits" (checked pairs across
        splits the pixel check turned down), and the seconds of the index and the check.
    """
    start = time.perf_counter()
    hashes = table["phash"].to_numpy(np.uint64)
    found = near_pairs(hashes, threshold, variant_hashes(gray))
    candidates = len(found)
    unchecked = min_similarity <= -1
    if not unchecked:
        found = found[closest_only(found, per_image, thumbnail_correlation(gray, found))]
    pairs = found[:, :2]
    searched = time.perf_counter()
    similar = np.full(len(pairs), np.nan, np.float32) if unchecked else similarity(gray, pairs)
    by_file = collections.defaultdict(list)  # byte-identical files
    for i, digest in enumerate(table["file_hash"]):
        if digest:
            by_file[digest].append(i)
    exact = np.array([(m[0], j) for m in by_file.values() for j in m[1:]], np.int64)
    rank = table["split"].map(RANK).fillna(0).to_numpy()
    kept = np.ones(len(pairs), bool) if unchecked else similar >= min_similarity
    stats = {"candidates": candidates, "checked": 0 if unchecked else len(pairs),
             "confirmed": int(kept.sum()),
             "rejected across splits": int(np.sum(~kept & (rank[pairs[:, 0]]
                                                             != rank[pairs[:, 1]]))),
             "index seconds": searched - start,
             "check seconds": time.perf_counter() - searched}
    links = np.concatenate([pairs[kept], exact.reshape(-1, 2)])
    scores = np.concatenate([similar[kept], np.ones(len(exact), np.float32)])
    best = np.full(len(table), -np.inf)
    np.fmax.at(best, links[:, 0], scores)  # fmax: an unchecked pair (NaN) leaves it be
    np.fmax.at(best, links[:, 1], scores)
    best[np.isinf(best)] = np.nan
    label = groups(len(table), links)
    leaked = np.zeros(len(table), bool)
    lower = np.where(rank[links[:, 0]] < rank[links[:, 1]], links[:, 0], links[:, 1])
    leaked[lower[rank[links[:, 0]] != rank[links[:, 1]]]] = True
    sizes = np.bincount(label)
    members = table.assign(group=label, leaked=leaked, similarity=np.round(best, 3))
    members = members[sizes[label] > 1].copy()
    columns = [*COLUMNS[:-2], *(c for c in table.columns if c.startswith("answer_")),
               *COLUMNS[-2:]]
    if members.empty:
        return pd.DataFrame({c: pd.Series(dtype=bool if c in FLAGS else object)
                             for c in columns}), stats
    out = []
    for _, g in members.groupby("group", sort=False):
        first = np.uint64(g["phash"].iloc[0])
        g = g.assign(kind="exact" if g["file_hash"].nunique() == 1 and g["file_hash"].iloc[0]
                     else "near",
                     distance=hamming(g["phash"].to_numpy(np.uint64), first))
        out.append(g.assign(leakage=bool(g["leaked"].any()), label_conflict=_conflict(g)))
    found = pd.concat(out)
    order = found.groupby("group")["group"].transform("size")
    found = found.assign(_size=order).sort_values(
        ["leakage", "label_conflict", "_size", "group", "split", "line"],
        ascending=[False, False, False, True, True, True])
    ids = {g: i for i, g in enumerate(dict.fromkeys(found["group"]))}  # 0.. in report order
    found["group"] = found["group"].map(ids)
    found["phash"] = [f"{int(h):016x}" for h in found["phash"]]
    return found.drop(columns="_size").reset_index(drop=True)[columns], stats


def balance(splits: dict[str, SplitData], class_names: list[str],
            heads: dict[str, list[int]]) -> pd.DataFrame:
    """Counts per split: images, each class (class-id layout), each head's positives and,
    where some answers are unknown, its known answers."""
    records = []
    partly = any(split.rows.answers is not None for split in splits.values())
    for name, split in splits.items():
        record = {"split": name, "images": len(split)}
        if split.rows.answers is None:
            for i, cls in enumerate(class_names):
                record[f"class {cls}"] = int(np.sum(split.class_ids == i))
        answers = head_answers(split.rows, heads)
        for head in heads:
            record[f"{head} positives"] = int((answers[head] == 1).sum())
            if partly:
                record[f"{head} known"] = int(known(answers[head]).sum())
        records.append(record)
    return pd.DataFrame(records)


def image_shapes(root, splits: dict[str, SplitData]) -> pd.DataFrame:
    """Per split: formats, modes and the range of sizes, read from the files' headers."""
    from pathlib import Path

    records = []
    for name, split in splits.items():
        widths, heights = [], []
        kinds = collections.Counter()
        for row in split.rows:
            with Image.open(Path(root) / row.path) as img:  # the header only
                widths.append(img.size[0])
                heights.append(img.size[1])
                kinds[f"{img.format} {img.mode}"] += 1
        records.append({
            "split": name, "images": len(split),
            "formats and modes": ", ".join(f"{k} x{v}" for k, v in kinds.most_common()),
            "width min/median/max": _spread(widths), "height min/median/max": _spread(heights)})
    return pd.DataFrame(records)


def _spread(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{min(values)} / {int(np.median(values))} / {max(values)}"


def single_class_heads(table: pd.DataFrame, heads: dict[str, list[int]]) -> list[str]:
    """"split: head" for each split in which a head has no positive or no negative among
    its known answers."""
    found = []
    for name, rows in table.groupby("split", sort=False):
        for head in heads:
            answers = rows[answer_column(head)].to_numpy()
            positives = int((answers == 1).sum())
            if positives in (0, int(known(answers).sum())):
                missing = "positive" if positives == 0 else "negative"
                found.append(f"{name}: {head} has no {missing}")
    return found


def answer_column(head: str) -> str:
    """The audit table's column of a head's answers."""
    return f"answer_{head}"


def _conflict(group: pd.DataFrame) -> bool:
    """Members of one duplicate group answer differently: other class ids, or another
    known answer to some head (an unknown answer conflicts with nothing)."""
    ids = group["class_id"][group["class_id"] >= 0]
    if ids.nunique() > 1:
        return True
    for column in (c for c in group.columns if c.startswith("answer_")):
        answers = group[column][known(group[column].to_numpy())]
        if answers.nunique() > 1:
            return True
    return False
