"""The figures `evaluate` writes for one model on one split: precision-recall curves,
confusion matrices and, per head, the error gallery."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from tf_twohead.core.defaults import SOFTMAX_OUTPUT, UNKNOWN
from tf_twohead.evaluation.scores import binary_scores
from tf_twohead.plots.gallery import plot_errors, worst_errors
from tf_twohead.plots.pr_confusion import (
    Curve,
    plot_class_confusion,
    plot_confusions,
    plot_pr_curves,
)


def operating_point(truth, scores, decisions) -> tuple[float, float]:
    """(recall, precision) of a head's decisions, from the one metrics function."""
    m = binary_scores(truth, scores, decisions, None)
    return m["recall"], m["precision"]


def write_figures(predictor, data, truth: dict, scores: dict, decisions: dict,
                  path_for: Callable[[str], Path], title: str,
                  target: dict | None = None) -> list[Path]:
    """Draw every figure of one evaluation; return the files written.

    Args:
        predictor: the `Predictor` evaluated.
        data: `SplitData` it was evaluated on (its images feed the gallery).
        truth, scores, decisions: per head, `(N,)` arrays.
        path_for: str -> Path. Where a figure named e.g. "pr_curves.png" goes.
        title: str. Names the model file, its format and the split.
        target: dict or None. `{"precision": P, "thresholds": {head: t}}` from the
            validation split, drawn on the PR curves.
    """
    written = []
    curves = {}
    known = {name: truth[name] != UNKNOWN for name in predictor.heads}
    for name in predictor.heads:  # every figure of a head shows its known answers only
        k = known[name]
        t, s, d = truth[name][k], scores[name][k], decisions[name][k]
        if len(np.unique(t)) < 2:
            continue
        precision, recall, _ = skm.precision_recall_curve(t.astype(bool), s)
        threshold = predictor.threshold(name)
        threshold = float("nan") if threshold is None else threshold
        at_target = None
        if target is not None:
            chosen = target["thresholds"][name]
            at_target = (*operating_point(t, s, s >= chosen), chosen)
        curves[name] = Curve(precision, recall,
                             float(skm.average_precision_score(t.astype(bool), s)),
                             (*operating_point(t, s, d), threshold), at_target)
    if curves:
        written.append(plot_pr_curves(curves, path_for("pr_curves.png"), title,
                                      target["precision"] if target else None))
    matrices = {}
    for name, ids in predictor.heads.items():
        positive = " / ".join(predictor.class_names[i] for i in ids) or name
        k = known[name]
        matrices[name] = (skm.confusion_matrix(truth[name][k].astype(bool),
                                               decisions[name][k], labels=[False, True]),
                          [f"not {positive}", positive])
    written.append(plot_confusions(matrices, path_for("confusion.png")))
    if predictor.kind == "softmax" and data.rows.answers is None:
        labels = list(range(len(predictor.class_names)))
        matrix = skm.confusion_matrix(data.class_ids, scores[SOFTMAX_OUTPUT].argmax(axis=1),
                                      labels=labels)
        written.append(plot_class_confusion(matrix, predictor.class_names,
                                            path_for("confusion_classes.png")))
    names = data.rows.paths
    for name in predictor.heads:
        # An unknown answer is never an error: its score stands in for the truth.
        t = np.where(known[name], truth[name], decisions[name])
        false_pos, false_neg = worst_errors(t, scores[name], decisions[name])
        written.append(plot_errors(data.images, names, scores[name], false_pos, false_neg,
                                   name, path_for(f"errors_{name}.png")))
    return written
