"""Plots (training curves, PR curves, confusion matrices) and plain-text tables.

matplotlib runs with the non-interactive Agg backend, chosen per figure (not globally)
so importing this module changes nothing for the caller's own plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tf_twohead.fileio import atomic_path


def _save(fig: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return Path(path)


def plot_history(history_csv: str | Path, out_png: str | Path) -> Path:
    """Plot every logged quantity of `history.csv` per epoch, train next to validation."""
    df = pd.read_csv(history_csv)
    names = [c for c in df.columns if c not in ("epoch", "learning_rate") and
             not c.startswith("val_")]
    cols = 4
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig = Figure(figsize=(4 * cols, 3 * rows))
    epochs = df["epoch"] + 1 if "epoch" in df else np.arange(1, len(df) + 1)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(epochs, df[name], "o-", label="train")
        if f"val_{name}" in df:
            ax.plot(epochs, df[f"val_{name}"], "o-", label="val")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return _save(fig, out_png)


def plot_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_png, title="") -> Path:
    """One precision-recall curve per head: `{head: (precision, recall)}`."""
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot(1, 1, 1)
    for head, (precision, recall) in curves.items():
        ax.plot(recall, precision, label=head)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "precision-recall")
    return _save(fig, out_png)


def plot_confusions(matrices: dict[str, tuple[np.ndarray, list[str]]], out_png) -> Path:
    """Confusion matrices side by side: `{title: (matrix, class labels)}`."""
    fig = Figure(figsize=(3.6 * len(matrices), 3.4))
    for i, (title, (matrix, labels)) in enumerate(matrices.items()):
        ax = fig.add_subplot(1, len(matrices), i + 1)
        ax.imshow(matrix, cmap="Blues")
        for (r, c), v in np.ndenumerate(matrix):
            ax.text(c, r, str(v), ha="center", va="center",
                    color="white" if v > matrix.max() / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    return _save(fig, out_png)


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else floatfmt.format(v)
        return str(v)

    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def plot_pareto(trials: pd.DataFrame, objective: str, labels: list[str], out_png,
                constraints: dict[str, float] | None = None, best: str | None = None) -> Path:
    """A search's trade-offs: `objective` against TFLite size and against latency.

    Every completed trial is a grey dot; the non-dominated front (columns `size_front`,
    `latency_front`) is joined and each of its points labelled with the trial id and
    its searched values (`labels`); constraint bounds are dashed; the best trial is a star.
    """
    fig = Figure(figsize=(13, 5.2))
    short = _short_names(labels)
    panels = (("tflite_kb", "size_front", "dynamic-range TFLite size (KiB)"),
              ("latency_ms", "latency_front", "TFLite latency per image, 1 thread (ms)"))
    for i, (cost, front_col, xlabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.scatter(trials[cost], trials[objective], color="0.65", s=22, label="trial")
        front = trials[trials[front_col]].sort_values(cost)
        ax.plot(front[cost], front[objective], "o-", color="C0", label="Pareto front")
        for _, row in front.iterrows():
            text = f"{row['trial']}: " + ", ".join(
                f"{short[k]}={_short(row[k])}" for k in labels)
            ax.annotate(text, (row[cost], row[objective]), fontsize=6.5,
                        xytext=(4, 4), textcoords="offset points")
        if best is not None:
            star = trials[trials["trial"] == best]
            ax.scatter(star[cost], star[objective], marker="*", s=220, color="C3",
                       zorder=5, label=f"best (trial {best})")
        if constraints and cost in constraints:
            ax.axvline(constraints[cost], ls="--", color="C3", lw=1,
                       label=f"{cost} <= {constraints[cost]:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(objective)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{objective} against size and speed ({len(trials)} completed trials)")
    return _save(fig, out_png)


def _short_names(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that no other key shares
    (`model.head_widths.aux` -> `head_widths.aux` beside `train.loss_weights.aux`)."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(other != key and f".{other}".endswith(f".{suffix}") for other in keys):
                break
        names[key] = suffix
    return names


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def plot_class_confusion(matrix: np.ndarray, labels: list[str], out_png) -> Path:
    """One multi-class confusion matrix (counts), sized for its number of classes."""
    side = max(4.0, 0.55 * len(labels) + 2.0)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    if len(labels) <= 30:  # numbers stay readable
        for (r, c), v in np.ndenumerate(matrix):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"classes ({int(matrix.sum())} images)")
    return _save(fig, out_png)


def plot_runs(histories: dict[str, pd.DataFrame], out_png, title: str = "") -> Path:
    """Three panels, train loss, valid loss and accuracy, of several runs per epoch.

    `histories` maps a run's label to its `history.csv` (with `epoch` 0-based over the
    whole run). A staged run (a `stage` column) is drawn on the same epoch axis: its
    fine-class stages as a line per stage, its coarse stage (another task, other
    classes) left out, so an equal-budget baseline and the staged model line up.
    """
    fig = Figure(figsize=(15, 4.2))
    panels = (("loss", "train loss"), ("val_loss", "valid loss"), ("val_accuracy", "accuracy"))
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    for color, (label, df) in enumerate(histories.items()):
        parts = ([(label, df)] if "stage" not in df else
                 [(f"{label}: {stage}", part) for stage, part in df.groupby("stage", sort=False)
                  if stage != "coarse"])
        for style, (name, part) in enumerate(parts):
            for ax, (column, _) in zip(axes, panels):
                if column in part:
                    ax.plot(part["epoch"] + 1, part[column], ("o-", "s--", "^-", "d:")[style % 4],
                            color=f"C{color}", label=name, ms=4)
    for ax, (_, name) in zip(axes, panels):
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, out_png)
