"""The one rule that picks a best epoch, stage or trial.

The best has the highest score (the lowest when not maximising); among equal scores, the
lowest tie-break (validation loss for epochs, file size for trials); a NaN score never
wins. The checkpoint that writes `best.keras`, the staged run that publishes its best
stage, a search's best trial and the mark on `curves.png` all ask here, so they always
agree.
"""

from __future__ import annotations

import math

TIE_BREAK = "val_loss"  # among epochs with an equal monitored score, the lowest wins


def rank_key(score: float, tie_break: float, maximize: bool = True) -> tuple[float, float]:
    """The rule as a sort key (lower wins).

    On a hard task the monitored F1 can stay 0.0 for several epochs, and a
    first-epoch-wins rule would keep an untrained model for good. A NaN score never
    wins; a NaN tie-break loses every tie.
    """
    score, tie_break = float(score), float(tie_break)
    if math.isnan(score):
        return (math.inf, math.inf)
    return (-score if maximize else score, math.inf if math.isnan(tie_break) else tie_break)


def best_index(scores, tie_breaks, maximize: bool = True) -> int | None:
    """The position `rank_key` picks (the first among exact ties); None when every score
    is NaN or there are none."""
    keys = [rank_key(s, t, maximize) for s, t in zip(scores, tie_breaks)]
    if not keys or min(keys)[0] == math.inf:
        return None
    return min(range(len(keys)), key=keys.__getitem__)


def best_row(table, score: str, tie_break: str = TIE_BREAK, maximize: bool = True):
    """The row of a DataFrame that `rank_key` picks (the first one among exact ties).

    A table without the tie-break column ranks on the score alone."""
    ties = table[tie_break] if tie_break in table else [0.0] * len(table)
    index = best_index(table[score], ties, maximize)
    return table.iloc[0 if index is None else index]
