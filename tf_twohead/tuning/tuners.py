"""The Keras Tuner tuners `tune.oracle` names, each handing a trial its own folder.

`make_tuner` builds `RandomSearch`, `BayesianOptimization`, `Hyperband` or a grid
search (with `ResumableGridOracle`, which survives a restart) over a
`TwoHeadHyperModel`, writing into `<output_dir>/<exp>/`.
"""

from __future__ import annotations

import collections

import keras_tuner as kt

from tf_twohead.core.run_folder import check_trial_id, claim_run_dir
from tf_twohead.tuning.hypermodel import TwoHeadHyperModel


class _TrialDirs:
    """Tuner mixin: hand `HyperModel.fit` its trial's folder (`<project>/trial_<id>/`),
    and check every trial id (on a worker, the chief's answer) before Keras Tuner makes a
    folder of it."""

    def get_trial_dir(self, trial_id):
        return super().get_trial_dir(check_trial_id(trial_id))

    def run_trial(self, trial, *args, **kwargs):
        return super().run_trial(trial, *args, trial_dir=self.get_trial_dir(trial.trial_id),
                                 **kwargs)


class ResumableGridOracle(kt.oracles.GridSearchOracle):
    """Keras Tuner's grid oracle, able to continue after a restart.

    keras-tuner 1.4.8's `GridSearchOracle` keeps the order of the grid it has walked
    (`_ordered_ids`, `_populate_next`) in memory only, so a reloaded grid search fails
    with `KeyError: '<trial id>'` when its first trial ends. This saves and restores both
    with the rest of the oracle's state in `oracle.json`.
    """

    def get_state(self):
        state = super().get_state()
        ids = self._ordered_ids
        state["grid_order"] = {"memory": list(ids._memory), "last": ids._last_index,
                               "next": {str(k): v for k, v in ids._next_index.items()}}
        state["grid_populate_next"] = list(self._populate_next)
        return state

    def set_state(self, state):
        super().set_state(state)
        order = state.get("grid_order")
        if order:
            ids = self._ordered_ids
            ids._memory = list(order["memory"])
            ids._data_to_index = {data: i for i, data in enumerate(ids._memory)}
            ids._next_index = collections.defaultdict(
                lambda: None, {None if k == "None" else int(k): v
                               for k, v in order["next"].items()})
            ids._last_index = order["last"]
        self._populate_next = list(state.get("grid_populate_next", []))


_TUNERS = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization,
           "hyperband": kt.Hyperband, "grid": kt.Tuner}


def make_tuner(hypermodel: TwoHeadHyperModel) -> kt.Tuner:
    """The Keras Tuner tuner `cfg.tune.oracle` names, writing into `<output_dir>/<exp>/`.

    It never uses Keras Tuner's own `overwrite` (a recursive delete of the folder):
    `tune(overwrite=True)` empties the folder itself, and only one that tf-twohead made.
    The folder is claimed (marked as tf-twohead's when new or empty) first, so its trial
    folders can be (`core.run_folder.claim_trial_dir`).
    """
    cfg = hypermodel.config
    claim_run_dir(cfg.run_dir)
    tune = cfg.tune
    base = _TUNERS[tune.oracle]
    cls = type(f"TwoHead{base.__name__}", (_TrialDirs, base), {})
    kwargs = dict(hypermodel=hypermodel, objective=kt.Objective(cfg.objective, tune.direction),
                  seed=cfg.train.seed, directory=cfg.output_dir, project_name=cfg.exp,
                  overwrite=False, max_consecutive_failed_trials=tune.max_failed_trials)
    if tune.oracle == "hyperband":
        kwargs.update(max_epochs=tune.epochs or cfg.train.epochs, factor=tune.hyperband_factor)
    elif tune.oracle == "grid":  # kt.GridSearch is kt.Tuner with the (non-resumable) oracle
        oracle_args = ("objective", "seed", "max_consecutive_failed_trials")
        kwargs["oracle"] = ResumableGridOracle(max_trials=tune.max_trials,
                                               **{k: kwargs.pop(k) for k in oracle_args})
    else:
        kwargs["max_trials"] = tune.max_trials
    return cls(**kwargs)
