"""Figures a person reads at a glance: training curves (`training`), precision-recall
curves and confusion matrices (`evaluation`), the error gallery (`gallery`) and a
search's Pareto fronts (`search`).

matplotlib runs with its non-interactive Agg canvas, chosen per figure (not globally),
so importing these modules changes nothing for the caller's own plots.
"""
