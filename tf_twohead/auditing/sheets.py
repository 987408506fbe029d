"""Contact sheets a person checks by eye: leaked duplicate groups side by side, and the
likeliest label errors with their given and suggested labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tf_twohead.plots.base import save

PER_ROW = 6
ROWS = 6


def leakage_sheet(found: pd.DataFrame, images: dict, out_png) -> Path | None:
    """One row per leaked group (at most `ROWS`), its members left to right."""
    leaked = found[found["leakage"]]
    group_ids = list(dict.fromkeys(leaked["group"]))[:ROWS]
    if not group_ids:
        return None
    columns = min(PER_ROW, int(leaked[leaked["group"].isin(group_ids)]
                               .groupby("group").size().max()))  # the widest group shown
    fig = Figure(figsize=(max(1.7 * columns, 5.5), 1.9 * len(group_ids) + 0.5))
    for r, gid in enumerate(group_ids):
        members = leaked[leaked["group"] == gid].head(columns)
        for c, (_, m) in enumerate(members.iterrows()):
            ax = fig.add_subplot(len(group_ids), columns, r * columns + c + 1)
            _thumb(ax, images[m["split"], m["line"]],
                   f"{m['split']}:{m['line']} {m['class_name']}\n"
                   f"{Path(m['path']).name[:20]}  sim={m['similarity']:.2f}",
                   conflict=bool(m["label_conflict"]))
    total = leaked["group"].nunique()
    fig.suptitle(f"Leakage: {total} groups of copies across splits (first {len(group_ids)})\n"
                 "sim: pixel check, 1 = identical file; red title: the labels disagree",
                 fontsize=9)
    return save(fig, out_png)


def label_sheet(issues: pd.DataFrame, images: dict, out_png) -> Path | None:
    """The likeliest label errors (lowest score first), given -> suggested label."""
    picks = issues.head(PER_ROW * ROWS)
    if picks.empty:
        return None
    rows = int(np.ceil(len(picks) / PER_ROW))
    fig = Figure(figsize=(1.7 * PER_ROW, 1.9 * rows + 0.5))
    for i, (_, m) in enumerate(picks.iterrows()):
        ax = fig.add_subplot(rows, PER_ROW, i + 1)
        suggested = m.get("suggested_class", None)
        arrow = f" -> {suggested}" if isinstance(suggested, str) else ""
        _thumb(ax, images[m["split"], m["line"]],
               f"{m['given_class']}{arrow}\n{m['split']}:{m['line']} s={m['score']:.2f} "
               f"({m['flagged_by']})", conflict=False)
    fig.suptitle(f"Likely label errors: {len(issues)} flagged (first {len(picks)}, "
                 "given -> suggested, s = label quality)", fontsize=10)
    return save(fig, out_png)


def _thumb(ax, image, title: str, conflict: bool) -> None:
    ax.imshow(np.asarray(image))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=6.5, color="tab:red" if conflict else "black")
