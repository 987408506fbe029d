"""What `evaluate` draws: precision-recall curves with their operating points, and
confusion matrices with names, counts and the normalised view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tf_twohead.plots.base import save


@dataclass
class Curve:
    """One head's precision-recall curve and the points worth marking on it."""

    precision: np.ndarray
    recall: np.ndarray
    ap: float  # average precision, the area a person compares
    operating: tuple[float, float, float]  # (recall, precision, threshold) of the decisions
    target: tuple[float, float, float] | None = None  # the same at the target precision


def plot_pr_curves(curves: dict[str, Curve], out_png, title: str,
                   target_precision: float | None = None) -> Path:
    """One curve per head with its AP, the operating threshold and, with a target
    precision, the line and the point the validation threshold gives."""
    fig = Figure(figsize=(6, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    for i, (head, c) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(c.recall, c.precision, color=color, label=f"{head} (AP {c.ap:.3f})")
        r, p, t = c.operating
        ax.plot([r], [p], "o", color=color, ms=7,
                label=f"{head} at its threshold {t:.2f}: P {p:.2f}, R {r:.2f}")
        if c.target is not None:
            r, p, t = c.target
            ax.plot([r], [p], "*", color=color, ms=13, mec="k",
                    label=f"{head} at t={t:.3f} (val, P>={target_precision:g}): R {r:.2f}")
    if target_precision is not None:
        ax.axhline(target_precision, color="0.4", ls="--", lw=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title, fontsize=10)
    return save(fig, out_png)


def _matrix(ax, matrix: np.ndarray, labels: list[str], title: str, normalised: bool,
            fontsize: int = 9) -> None:
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalised else matrix
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalised else max(1, matrix.max()))
    for (r, c), v in np.ndenumerate(matrix):
        text = f"{shown[r, c]:.0%}\n({v})" if normalised else str(v)
        dark = shown[r, c] > (0.5 if normalised else matrix.max() / 2)
        ax.text(c, r, text, ha="center", va="center", fontsize=fontsize,
                color="white" if dark else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)


def plot_confusions(matrices: dict[str, tuple[np.ndarray, list[str]]], out_png) -> Path:
    """Per head, its 2x2 matrix in counts and normalised by the true class (the row)."""
    fig = Figure(figsize=(7.2, 3.4 * len(matrices)))
    for i, (title, (matrix, labels)) in enumerate(matrices.items()):
        _matrix(fig.add_subplot(len(matrices), 2, 2 * i + 1), matrix, labels,
                f"{title}: counts", False)
        _matrix(fig.add_subplot(len(matrices), 2, 2 * i + 2), matrix, labels,
                f"{title}: share of each true class", True)
    return save(fig, out_png)


def plot_class_confusion(matrix: np.ndarray, labels: list[str], out_png) -> Path:
    """A multi-class matrix, counts and row-normalised, sized for its number of classes."""
    side = max(4.0, 0.55 * len(labels) + 2.0)
    fig = Figure(figsize=(2 * side + 1, side))
    size = 7 if len(labels) <= 12 else 5
    for i, normalised in enumerate((False, True)):
        ax = fig.add_subplot(1, 2, i + 1)
        _matrix(ax, matrix, labels, f"classes ({int(matrix.sum())} images): "
                + ("share of each true class" if normalised else "counts"), normalised, size)
    return save(fig, out_png)
