"""Keras Tuner searches over config keys, recording accuracy, size and speed per trial.

- `space`: the `tune.space` mapping of config keys to choices or ranges, checked.
- `hypermodel`: `TwoHeadHyperModel`, which trains, exports and times each trial.
- `tuners`: the Keras Tuner tuner `tune.oracle` names.
- `search`: `tune(cfg)`, a whole (resumable, chief/worker) search and its reports.
- `results`: the trials table, Pareto fronts and best config, read from `trial.json`
  files without Keras Tuner.

Keras Tuner optimises one objective; `results` draws the Pareto fronts of accuracy
against size and latency afterwards (Keras Tuner's list objectives are an unweighted
sum, not a front). Names are re-exported lazily, so `tuning.results` loads neither
Keras Tuner nor TensorFlow.
"""

import importlib

_EXPORTS = {
    "Dimension": "space", "search_space": "space", "plain_value": "space",
    "TwoHeadHyperModel": "hypermodel", "make_tuner": "tuners",
    "ResumableGridOracle": "tuners", "tune": "search", "check_search_dir": "search",
    "write_reports": "results", "load_trials": "results", "analyse": "results",
    "pareto_mask": "results", "best_trial": "results",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tf_twohead.tuning' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tf_twohead.tuning.{_EXPORTS[name]}"), name)
