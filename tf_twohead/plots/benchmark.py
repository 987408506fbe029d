"""`benchmark.png`: each shippable file as a row, its size, latency and key head's F1 in
three panels side by side, the value written at the end of each bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tf_twohead.plots.base import save


def plot_benchmark(table: pd.DataFrame, head: str, out_png: str | Path,
                   title: str = "") -> Path:
    """Size (KiB), model-only latency (ms) and `head`'s F1, one bar per format; formats
    not made are named with no bars."""
    labels = [row.format if row.quantization == "none" else f"{row.format} {row.quantization}"
              for row in table.itertuples(index=False)]
    panels = (("kib", "file size, KiB", "{:,.0f}"),
              ("model_ms", "model only, ms (median, batch 1)", "{:.2f}"),
              ("file_to_decisions_ms", "file -> decisions, ms", "{:.2f}"),
              (f"{head}_f1", f"{head} F1", "{:.3f}"))
    fig = Figure(figsize=(15, 0.45 * len(labels) + 1.4))
    y = np.arange(len(labels))
    for i, (column, name, fmt) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        values = (pd.to_numeric(table[column], errors="coerce") if column in table
                  else pd.Series(np.nan, index=table.index)).to_numpy(float)
        ax.barh(y, np.nan_to_num(values), color=[f"C{j % 10}" for j in range(len(y))])
        top = np.nanmax(values) if np.isfinite(values).any() else 1.0
        for j, v in enumerate(values):
            ax.text(v if np.isfinite(v) else 0, j, " " + (fmt.format(v) if np.isfinite(v)
                                                          else "not made"),
                    va="center", fontsize=8)
        ax.set_xlim(0, top * 1.3 if top > 0 else 1)
        ax.set_yticks(y, labels if i == 0 else [""] * len(y))
        ax.invert_yaxis()
        ax.set_title(name, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title)
    return save(fig, out_png)
