"""A search's trade-offs: accuracy against TFLite size and against latency."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from tf_twohead.plots.base import save


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
    return save(fig, out_png)


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
