"""Keras Tuner searches over config keys, recording accuracy, size and speed per trial.

- `space`: the `tune.space` mapping of config keys to choices or ranges, checked.
- `hypermodel`: `TwoHeadHyperModel`, which trains, exports and times each trial.
- `tuners`: the Keras Tuner tuner `tune.oracle` names.
- `search`: `tune(cfg)`, a whole (resumable, chief/worker) search and its reports.
- `results`: the trials table, Pareto fronts and best config, read from `trial.json`
  files without Keras Tuner.

Keras Tuner optimises one objective; `results` draws the Pareto fronts of accuracy
against size and latency afterwards (Keras Tuner's list objectives are an unweighted
sum, not a front). `results` and `space` load neither Keras Tuner nor TensorFlow.
"""
