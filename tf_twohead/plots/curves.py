"""Training curves: one run's `curves.png`, and several runs side by side (`compare --plot`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tf_twohead.core.best import TIE_BREAK, best_index
from tf_twohead.plots.base import epoch_axis, grid, save

HEAD_PANELS = (("loss", "loss"), ("f1", "F1"), ("auc", "AUC"))


def history_panels(df: pd.DataFrame, heads: list[str]) -> list[tuple[str, str]]:
    """`(column, title)` of each panel, in reading order: the total loss, then each head's
    loss, F1 and AUC, then class accuracy, then the learning rate."""
    panels = [("loss", "total loss")]
    for head in heads:
        panels += [(f"{head}_{m}", f"{head}: {title}") for m, title in HEAD_PANELS
                   if f"{head}_{m}" in df]
    panels += [(c, c) for c in ("accuracy", "top5") if c in df]
    if "learning_rate" in df:
        panels.append(("learning_rate", "learning rate"))
    return [(c, t) for c, t in panels if c in df]


def best_epoch(df: pd.DataFrame, monitor: str | None) -> tuple[int, float] | None:
    """The epoch `best.keras` holds and its score, by the one rule
    (`core.best.rank_key`: the highest `monitor`, ties to the lowest validation loss, NaN
    never wins); None without one."""
    if monitor not in df:
        return None
    ties = df[TIE_BREAK] if TIE_BREAK in df else np.zeros(len(df))
    index = best_index(df[monitor], ties)
    if index is None:
        return None
    epochs = df["epoch"] if "epoch" in df else pd.Series(np.arange(1, len(df) + 1))
    return int(epochs.iloc[index]), float(df[monitor].iloc[index])


def plot_history(history_csv: str | Path, out_png: str | Path, monitor: str | None = None,
                 heads: list[str] | None = None) -> Path:
    """`curves.png`: panels ordered by head (train beside validation), the best epoch by
    `monitor` marked on each, whole-number epochs and the learning rate."""
    df = pd.read_csv(history_csv)
    if heads is None:
        heads = sorted({c[:-3] for c in df.columns if c.endswith("_f1")
                        and not c.startswith("val_")})
    epochs = df["epoch"] if "epoch" in df else np.arange(1, len(df) + 1)  # 1-based
    marked = best_epoch(df, monitor)
    best = marked[0] if marked else None
    panels = history_panels(df, heads)
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig = Figure(figsize=(4 * cols, 3 * rows))
    axes = grid(fig, rows, cols, title=best is not None)
    for ax in axes[len(panels):]:
        ax.remove()
    for i, ((column, title), ax) in enumerate(zip(panels, axes)):
        ax.plot(epochs, df[column], "o-", ms=3, label="train")
        if f"val_{column}" in df:
            ax.plot(epochs, df[f"val_{column}"], "o-", ms=3, label="validation")
        if column == "learning_rate":
            ax.set_yscale("log")
        if best is not None:
            ax.axvline(best, color="C3", ls="--", lw=1, label=f"best (epoch {best})")
        ax.set_title(title)
        epoch_axis(ax)
        if i == 0:
            ax.legend(fontsize=8)
    if best is not None:
        fig.suptitle(f"best.keras: epoch {best} ({monitor} {marked[1]:.4f})")
    return save(fig, out_png, tight=False)


def plot_runs(histories: dict[str, pd.DataFrame], out_png, title: str = "") -> Path:
    """Three panels, train loss, valid loss and F1 (or accuracy), of several runs.

    `histories` maps a run's label to its `history.csv` (with `epoch` counted from 1
    over the whole run). A staged run (a `stage` column) is drawn on the same epoch axis:
    its fine-class stages as a line per stage, its coarse stage (another task, other
    classes) left out, so an equal-budget baseline and the staged model line up.
    """
    score = "val_accuracy" if any("val_accuracy" in d for d in histories.values()) else \
        next((c for d in histories.values() for c in d if c.startswith("val_")
              and c.endswith("_f1")), "val_loss")
    fig = Figure(figsize=(15, 4.2))
    panels = (("loss", "train loss"), ("val_loss", "valid loss"), (score, score))
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    for color, (label, df) in enumerate(histories.items()):
        parts = ([(label, df)] if "stage" not in df else
                 [(f"{label}: {stage}", part) for stage, part in df.groupby("stage", sort=False)
                  if stage != "coarse"])
        for style, (name, part) in enumerate(parts):
            for ax, (column, _) in zip(axes, panels):
                if column in part:
                    ax.plot(part["epoch"], part[column], ("o-", "s--", "^-", "d:")[style % 4],
                            color=f"C{color}", label=name, ms=4)
    for ax, (_, name) in zip(axes, panels):
        ax.set_title(name)
        epoch_axis(ax)
        ax.legend(fontsize=7)  # every panel: no hunting for which line is which run
    if title:
        fig.suptitle(title)
    return save(fig, out_png)
