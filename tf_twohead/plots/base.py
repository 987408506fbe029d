"""What every figure shares: an atomic PNG save and whole-number epoch axes."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tf_twohead.core.fileio import atomic_path

DPI = 100


def save(fig: Figure, path: str | Path) -> Path:
    """Lay out and write `fig` as a PNG, atomically."""
    FigureCanvasAgg(fig)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return Path(path)


def epoch_axis(ax) -> None:
    """Epochs are whole numbers: no ticks at 1.2, 1.4, ..."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
