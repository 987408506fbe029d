"""What every figure shares: an atomic PNG save and whole-number epoch axes."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tf_twohead.core.fileio import atomic_path

DPI = 100


def save(fig: Figure, path: str | Path, tight: bool = True) -> Path:
    """Lay out (`tight_layout`, unless the figure placed its axes itself, as `grid`
    does) and write `fig` as a PNG, atomically."""
    FigureCanvasAgg(fig)
    if tight:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return Path(path)


def grid(fig: Figure, rows: int, cols: int, title: bool = False) -> list:
    """`rows` x `cols` axes of a figure sized 4 x 3 inches a panel, with fixed margins
    in inches: room for tick labels, a panel title and (with `title`) a suptitle. The
    price of `tight_layout`, which measures every tick label, is 0.7-1.4 s a figure on
    2 cores, and `curves.png` is drawn during training."""
    width, height = fig.get_size_inches()
    top = 0.55 + (0.35 if title else 0)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.5 / height,
                        top=1 - top / height, wspace=0.3, hspace=0.55)
    return [fig.add_subplot(rows, cols, i + 1) for i in range(rows * cols)]


def epoch_axis(ax) -> None:
    """Epochs are whole numbers: no ticks at 1.2, 1.4, ..."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
