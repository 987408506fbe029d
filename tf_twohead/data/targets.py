"""What a model learns and is scored against: each head's answers and the targets of a
model kind, from either layout of the rows (`data.layouts`).

In the class-id layout a head's answer is "the class id is one of its positive ids", for
every row. In the per-head layout it is the row's cell, possibly `UNKNOWN` (-1): the
masked loss and metrics (`recipe.masked`) and every score (`evaluation`, `export.parity`,
`auditing`) count known answers only.
"""

from __future__ import annotations

import numpy as np

from tf_twohead.core.defaults import SOFTMAX_KINDS, SOFTMAX_OUTPUT, UNKNOWN
from tf_twohead.core.errors import DataError
from tf_twohead.data.splits import Rows


def head_answers(rows: Rows, heads: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Each head's answer per row: float32 `(N,)` of 1.0 (yes), 0.0 (no), `UNKNOWN`.

    Args:
        rows: `Rows` of a split.
        heads: dict. Head name -> positive class ids (used in the class-id layout).

    Example:

    >>> head_answers(rows, {"main": [2]})["main"][:3]
    array([0., 1., -1.], dtype=float32)
    """
    if rows.answers is not None:
        return {h: rows.answers[h] for h in heads}
    return {h: np.isin(rows.class_ids, ids).astype(np.float32) for h, ids in heads.items()}


def known(answers: np.ndarray) -> np.ndarray:
    """The rows whose answer is known (not `UNKNOWN`)."""
    return np.asarray(answers) != UNKNOWN


def split_targets(rows: Rows, kind: str, heads: dict[str, list[int]],
                  num_classes: int) -> dict[str, np.ndarray]:
    """The training targets of a split for a model kind, keyed by output name: `(N, 1)`
    answers per head (unknown: `UNKNOWN`), or one-hot classes under "probs"."""
    if rows.answers is None:
        return encode_targets(rows.class_ids, kind, heads, num_classes)
    if kind in SOFTMAX_KINDS:
        raise DataError(f"model.kind={kind} learns one class per image; a split with "
                        "per-head columns has no class ids. Use model.kind=two_head.")
    return {h: a[:, None] for h, a in head_answers(rows, heads).items()}


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
