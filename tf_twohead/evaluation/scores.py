"""The one place that scores predictions: binary metrics of a head, class metrics of a
softmax, and the threshold that reaches a target precision. Evaluation, the parity
check and searches all score through here.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from tf_twohead.core.defaults import TOP_K, UNKNOWN, class_metric_names


def binary_scores(truth: np.ndarray, scores: np.ndarray, decisions: np.ndarray,
                   threshold: float | None) -> dict:
    """The one metrics function: precision, recall, F1, accuracy, AUC of a yes/no task,
    over the rows whose answer is known (`truth` 1 or 0; `UNKNOWN` rows are left out).
    `support` counts the known answers."""
    truth, scores, decisions = _known_rows(truth, scores, decisions)
    decisions = decisions.astype(bool)
    both = len(np.unique(truth)) == 2
    return {
        "precision": float(skm.precision_score(truth, decisions, zero_division=0)),
        "recall": float(skm.recall_score(truth, decisions, zero_division=0)),
        "f1": float(skm.f1_score(truth, decisions, zero_division=0)),
        "accuracy": float(skm.accuracy_score(truth, decisions)),
        "auc": float(skm.roc_auc_score(truth, scores)) if both else float("nan"),
        "threshold": threshold,
        "positives": int(truth.sum()),
        "support": int(len(truth)),
    }


def class_scores(class_ids: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """Multi-class metrics of a softmax over the classes: accuracy, top-5 accuracy and
    each class's precision, recall, F1 and support (argmax decisions)."""
    labels = list(range(len(class_names)))
    predicted = probs.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        class_ids, predicted, labels=labels, zero_division=0)
    result = {
        "accuracy": float(skm.accuracy_score(class_ids, predicted)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                             "support": int(n)}
                      for name, p, r, f, n in zip(class_names, precision, recall, f1, support)},
    }
    if "top5" in class_metric_names(len(labels)):
        result["top5"] = float(skm.top_k_accuracy_score(class_ids, probs, k=TOP_K,
                                                        labels=labels))
    return result


def threshold_for_precision(truth: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The lowest threshold whose precision reaches `target` (the most recall), over the
    known answers; 1.0 if none."""
    truth, scores = _known_rows(truth, scores)
    if not truth.any():
        return 1.0  # no positives: nothing can reach any precision
    precision, _, thresholds = skm.precision_recall_curve(truth, scores)
    ok = np.nonzero(precision[:-1] >= target)[0]
    return float(thresholds[ok[0]]) if len(ok) else 1.0


def _known_rows(truth, *columns):
    """`truth` as booleans and the row-aligned `columns`, on the rows whose answer is known."""
    truth = np.asarray(truth)
    keep = truth != UNKNOWN
    return (truth[keep].astype(bool), *(np.asarray(c)[keep] for c in columns))
