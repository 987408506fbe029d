"""The error gallery: per head, the false positives and false negatives the model is
most sure of, as thumbnails with their probabilities (what a person checks by eye)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tf_twohead.plots.base import save

PER_ROW = 8


def worst_errors(truth: np.ndarray, scores: np.ndarray,
                 decisions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of all false positives (most confident first) and false negatives."""
    truth, decisions = truth.astype(bool), decisions.astype(bool)
    fp = np.nonzero(~truth & decisions)[0]
    fn = np.nonzero(truth & ~decisions)[0]
    return fp[np.argsort(-scores[fp])], fn[np.argsort(scores[fn])]


def plot_errors(images, names: list[str], scores: np.ndarray, false_pos: np.ndarray,
                false_neg: np.ndarray, head: str, out_png) -> Path:
    """A contact sheet: one row of the surest false positives, one of false negatives."""
    fig = Figure(figsize=(1.6 * PER_ROW, 4.2))
    for row, (label, errors) in enumerate((("false positives", false_pos),
                                           ("false negatives", false_neg))):
        picks = errors[:PER_ROW]
        for col in range(PER_ROW):
            ax = fig.add_subplot(2, PER_ROW, row * PER_ROW + col + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"{label}\n{len(picks)} of {len(errors)}", fontsize=8)
                if not len(picks):
                    ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=9)
            if col >= len(picks):
                if col:
                    ax.axis("off")
                continue
            index = int(picks[col])
            ax.imshow(np.asarray(images[index]))
            ax.set_title(f"p={scores[index]:.3f}\n{Path(names[index]).name[:18]}", fontsize=7)
    fig.suptitle(f"{head}: the errors the model is most sure of", fontsize=10)
    return save(fig, out_png)
