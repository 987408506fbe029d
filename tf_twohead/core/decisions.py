"""The one decision rule of a head, and the one default threshold.

A sigmoid head says yes when its score reaches its threshold: `DEFAULT_THRESHOLD` unless a
model's `.tflite` metadata or the user chose another. A softmax-kind model has no
threshold: a head says yes when the most probable class is one of its positive classes.
Training metrics, `evaluate`, figures, `predict`, the exported metadata and the parity
check all ask here.
"""

from __future__ import annotations

import numpy as np

from tf_twohead.core.defaults import SOFTMAX_KINDS

DEFAULT_THRESHOLD = 0.5


def default_threshold(kind: str) -> float | None:
    """A head's threshold when nothing chose one: None (argmax) for softmax kinds."""
    return None if kind in SOFTMAX_KINDS else DEFAULT_THRESHOLD


def decide(scores: np.ndarray, threshold: float | None, probs: np.ndarray | None = None,
           positive_ids=()) -> np.ndarray:
    """Yes/no per image: `scores >= threshold`, or with no threshold, whether the argmax
    of the softmax `probs` is one of `positive_ids`."""
    if threshold is not None:
        return np.asarray(scores) >= threshold
    if probs is None:
        raise ValueError("A head without a threshold decides by argmax: pass probs.")
    return np.isin(np.asarray(probs).argmax(axis=1), list(positive_ids))
