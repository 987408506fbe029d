"""Keras Tuner searches over config keys, recording accuracy, size and speed per trial.

The search space is the `tune.space` mapping of dotted config keys to choices
(`model.head_width: [64, 256, 1024]`) or ranges (`{min: 1e-4, max: 3e-3, log: true}`),
so every trial is a normal, validated `Config` and the winner is a config file.
`TwoHeadHyperModel` maps a trial's values onto the config and calls the model builders
(no model code here); its `fit` trains the trial as a run folder (`training.fit_run`:
resumable, `best.keras` per trial), converts the best model with our own exporter to
a dynamic-range `.tflite`, times it per image on real validation files with one
thread, and returns plain floats: the objective at its best epoch, every head's F1,
`params`, `tflite_kb`, `latency_ms`, `train_seconds`. Keras Tuner optimises the one
objective; `tuning_results` draws the Pareto fronts of accuracy against size and
latency afterwards (Keras Tuner's list objectives are an unweighted sum, not a front).

`tune(cfg)` runs a whole search into `<output_dir>/<exp>/` (Keras Tuner's project
folder plus `trials.csv`, `trials.md`, `pareto.csv`, `pareto.png`,
`best_config.yaml`), continues an interrupted one, and runs as Keras Tuner's chief or
as a worker for searches over several machines sharing that folder.

Example (your own tuner):

>>> hypermodel = TwoHeadHyperModel(cfg)
>>> tuner = keras_tuner.RandomSearch(hypermodel, objective=keras_tuner.Objective(
...     "val_main_f1", "max"), max_trials=8, directory="saved_models", project_name="mine")
>>> tuner.search()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
from omegaconf import OmegaConf

from tf_twohead import config as config_lib
from tf_twohead import distribute, models, training
from tf_twohead.config import Config, ConfigError

SEARCH_FILE = "search.yaml"  # the search's resolved config, to check a resumed search
# Keys a search cannot vary: where things are written and read, and the search itself.
UNSEARCHABLE = ("exp", "output_dir", "data.root", "data.cache_dir", "data.workers",
                "data.class_names", "model.heads", "train.monitor_head", "tune")
RANGE_KEYS = {"min", "max", "log", "step"}
PARITY_IMAGES = 200  # validation images that check each trial's .tflite against its .keras


@dataclass(frozen=True)
class Dimension:
    """One searched config key: a choice of values, or a numeric range."""

    key: str
    values: tuple | None = None  # a choice
    low: float | None = None  # a range
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def declare(self, hp: kt.HyperParameters):
        """Register the dimension with `hp` (under its dotted key) and return its value."""
        if self.values is not None:
            return hp.Choice(self.key, list(self.values))
        sampling = "log" if self.log else "linear"
        if self.integer:
            return hp.Int(self.key, int(self.low), int(self.high),
                          step=int(self.step) if self.step else None, sampling=sampling)
        return hp.Float(self.key, self.low, self.high, step=self.step, sampling=sampling)


def search_space(cfg: Config) -> list[Dimension]:
    """Parse and check `cfg.tune.space` before any trial runs.

    Every key must be a config key a search may vary, and every choice (each end of a
    range) must give a valid `Config` on its own; values are cast to the key's type.

    Raises:
        ConfigError: naming `tune.space.<key>`, the value, and why.
    """
    space = cfg.tune.space
    kinds = space.get("model.kind", [])
    if cfg.model.kind == "combined" or (isinstance(kinds, (list, tuple)) and "combined" in kinds):
        raise ConfigError("model.kind=combined cannot be searched yet: a trial trains one "
                          "model, and a combined run is four staged fits (train it with "
                          "tf-twohead train). Search two_head or softmax models.")
    if not space:
        raise ConfigError("tune.space is empty: map dotted config keys to choices or ranges, "
                          "e.g. model.head_width: [64, 256, 1024] (configs/tune_head_width.yaml).")
    dims = []
    for key, spec in space.items():
        where = f"tune.space.{key}"
        if any(key == k or key.startswith(k + ".") for k in UNSEARCHABLE):
            raise ConfigError(f"{where}: {key} cannot be searched (it says where runs and data "
                              f"live, or what the heads mean). Keys that cannot: {UNSEARCHABLE}.")
        if isinstance(spec, (list, tuple)):
            if not spec or len(set(map(repr, spec))) != len(spec):
                raise ConfigError(f"{where} must be a non-empty list of distinct values. "
                                  f"Received: {spec!r}")
            values = tuple(_typed(cfg, key, v, where) for v in spec)
            if len({type(v) for v in values}) != 1 or isinstance(values[0], (list, dict)):
                raise ConfigError(f"{where}: choices must be plain values of one type "
                                  f"(numbers, strings or booleans). Received: {spec!r}")
            dims.append(Dimension(key, values=values))
        elif isinstance(spec, dict):
            dims.append(_range(cfg, key, spec, where))
        else:
            raise ConfigError(f"{where} must be a list of choices or a range {{min, max, "
                              f"log, step}}. Received: {spec!r}")
    return dims


def _range(cfg: Config, key: str, spec: dict, where: str) -> Dimension:
    unknown = sorted(set(spec) - RANGE_KEYS)
    if unknown or not {"min", "max"} <= set(spec):
        raise ConfigError(f"{where}: a range needs min and max (and optionally log, step). "
                          f"Received: {dict(spec)}")
    low, high = (_typed(cfg, key, spec[k], where) for k in ("min", "max"))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numeric or not low < high:
        raise ConfigError(f"{where}: a range needs numbers with min < max. "
                          f"Received: min={spec['min']!r}, max={spec['max']!r}")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs min > 0. Received: min={low}")
    return Dimension(key, low=low, high=high, log=log, step=spec.get("step"),
                     integer=isinstance(low, int))


def _typed(cfg: Config, key: str, value: Any, where: str) -> Any:
    """`value` as the config stores it at `key` (1 -> 1.0 for a float key), checked."""
    try:
        trial = config_lib.with_values(cfg, {key: value}, where="tune.space")
    except ConfigError as e:
        if str(e).startswith("Invalid tune.space"):  # already names the key and value
            raise
        raise ConfigError(f"{where}: the value {value!r} is not usable: {e}") from None
    return OmegaConf.select(OmegaConf.structured(trial), key)


class TwoHeadHyperModel(kt.HyperModel):
    """A Keras Tuner HyperModel over the config keys of `cfg.tune.space`.

    `build(hp)` builds the trial's model from its `Config`; `fit(hp, model, ...)`
    trains it as a run folder, exports and times it, and returns plain floats (see the
    module docstring). Works with any Keras Tuner tuner; with `tune()`'s tuners each
    trial's folder (`trial_<id>/`) is a run folder that `tf-twohead evaluate` and
    `convert` read, and an interrupted trial continues from its last epoch.

    Args:
        cfg: `Config`. The base config; `tune.space` says what varies.
    """

    def __init__(self, cfg: Config, name: str | None = None):
        super().__init__(name=name or cfg.exp, tunable=True)
        self.config = cfg
        self.space = search_space(cfg)
        self._splits: dict[int, dict] = {}

    def declare_hyperparameters(self, hp):
        for dim in self.space:
            dim.declare(hp)

    def trial_config(self, hp, run_dir: str | Path | None = None,
                     epochs: int | None = None) -> Config:
        """The `Config` of the trial `hp` describes, writing into `run_dir` if given."""
        values = {dim.key: plain_value(hp.get(dim.key)) for dim in self.space}
        base = self.config
        fixed = {"train.epochs": epochs or base.tune.epochs or base.train.epochs,
                 "data.cache_dir": base.data.cache_dir or str(Path(base.output_dir) / "cache")}
        if run_dir is not None:
            fixed.update(output_dir=str(Path(run_dir).parent), exp=Path(run_dir).name)
        cfg = config_lib.with_values(base, {**values, **fixed}, where="trial")
        return _without_search(cfg)

    def build(self, hp) -> keras.Model:
        self.declare_hyperparameters(hp)
        cfg = self.trial_config(hp)
        with distribute.scope(cfg):
            keras.utils.set_random_seed(cfg.train.seed)
            return models.from_config(cfg)

    def prepare(self) -> None:
        """Validate and cache the train and val splits at every searched image size, so
        bad data stops the search before its first trial."""
        sizes = {self.config.data.img_size}
        for dim in self.space:
            if dim.key == "data.img_size":
                sizes |= set(dim.values or (int(dim.low), int(dim.high)))
        for size in sorted(sizes):
            cfg = config_lib.with_values(self.config, {"data.img_size": size})
            self._load(cfg)

    def _load(self, cfg: Config) -> dict:
        from tf_twohead.data.pipeline import load_splits

        size = cfg.data.img_size
        if size not in self._splits:
            self._splits[size] = load_splits(cfg, ("train", "val"), progress=False)
        return self._splits[size]

    def fit(self, hp, model, *args, trial_dir: str | None = None, **kwargs) -> dict:
        """Train, export and time one trial; return its figures as plain floats.

        Keyword args as Keras Tuner passes them (`callbacks`, `epochs` and
        `initial_epoch` from Hyperband, `verbose`), plus `trial_dir` from `tune()`'s
        tuners; without it the trial runs in a temporary folder.
        """
        from tf_twohead.data.pipeline import datasets_for

        with contextlib.ExitStack() as stack:
            if trial_dir is None:
                trial_dir = stack.enter_context(tempfile.TemporaryDirectory())
            run_dir = Path(trial_dir)
            cfg = self.trial_config(hp, run_dir, kwargs.get("epochs"))
            state = _resume_or_reset(run_dir, cfg)
            if state:
                with distribute.scope(cfg):
                    model = models.load_model(run_dir / "last.keras", compile=True)
            else:
                config_lib.dump(cfg, run_dir / "config.yaml")
            splits = self._load(cfg)
            train_ds, val_ds = (datasets_for(cfg, splits[s]) for s in ("train", "val"))
            timer = _Seconds(run_dir)
            training.fit_run(model, cfg, train_ds, val_ds, state,
                             verbose=kwargs.get("verbose", 2),
                             callbacks=[*kwargs.get("callbacks", []), timer],
                             initial_epoch=kwargs.get("initial_epoch"))
            figures = self.measure(cfg, run_dir, splits["val"])
            figures["train_seconds"] = timer.total
            print(_progress_line(run_dir.name, figures, self.config.objective, hp, self.space))
            return figures

    def measure(self, cfg: Config, run_dir: Path, val_split) -> dict:
        """The best epoch's validation metrics, and the size and speed of its `.tflite`."""
        import pandas as pd

        from tf_twohead import export
        from tf_twohead.evaluation import measure_latency
        from tf_twohead.inference import Predictor

        tune, objective = self.config.tune, self.config.objective
        history = pd.read_csv(run_dir / "history.csv")
        best = _best_row(history, objective, tune.direction)
        figures = {objective: float(best[objective]), "best_epoch": float(best["epoch"] + 1)}
        for head in cfg.model.heads:
            figures[f"val_{head}_f1"] = float(best[f"val_{head}_f1"])
        figures["val_loss"] = float(best["val_loss"])
        try:
            result = export.to_tflite(run_dir / "best.keras", "dynamic",
                                      parity_images=PARITY_IMAGES, progress=False)
            tflite, passed = Path(result["path"]), True
        except export.ParityError as e:  # still a model of that size and speed
            tflite, passed = e.path, False
        predictor = Predictor(tflite, threads=1)
        root = Path(cfg.data.root)
        files = [root / row.path for row in val_split.rows[:tune.latency_images]]
        figures.update(params=float(predictor.metadata["params"]),
                       tflite_kb=tflite.stat().st_size / 1024.0,
                       latency_ms=float(measure_latency(predictor, files)),
                       parity_passed=float(passed))
        return figures


def plain_value(value):
    """Keras Tuner's numpy scalars and float steps (0.30000000000000004) as plain values."""
    if hasattr(value, "item"):
        value = value.item()
    return round(value, 10) if isinstance(value, float) else value


def _without_search(cfg: Config) -> Config:
    """A trial's config is a plain run config: its `tune` section back to the defaults."""
    import dataclasses

    return dataclasses.replace(cfg, tune=config_lib.TuneConfig())


def _resume_or_reset(run_dir: Path, cfg: Config) -> dict | None:
    """The state to continue a trial from, when `run_dir` holds this same trial cut short.

    A folder left by a different configuration (a search restarted without its
    state) is cleared, except Keras Tuner's own files.
    """
    state = training.resumable_state(run_dir)
    saved = run_dir / "config.yaml"
    if state and saved.is_file() and config_lib.load(saved) == cfg:
        return state
    for path in run_dir.iterdir() if run_dir.is_dir() else ():
        if path.name not in ("trial.json", "checkpoint.weights.h5", "build_config.json"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return None


def _best_row(history, objective: str, direction: str):
    """The epoch with the best objective; ties go to the lowest validation loss."""
    sign = -1.0 if direction == "max" else 1.0
    order = history.assign(_key=sign * history[objective]).sort_values(
        ["_key", "val_loss", "epoch"], kind="stable")
    return order.iloc[0]


class _Seconds(keras.callbacks.Callback):
    """Training seconds of a trial, summed over resumptions (kept in the trial folder)."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.path = run_dir / "train_seconds.json"
        self.total = json.loads(self.path.read_text())["seconds"] if self.path.is_file() else 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        from tf_twohead.fileio import atomic_write_json

        self.total += time.perf_counter() - self._start
        atomic_write_json(self.path, {"seconds": self.total})


def _progress_line(name, figures, objective, hp, space) -> str:
    values = " ".join(f"{d.key}={plain_value(hp.get(d.key))}" for d in space)
    heads = " ".join(f"{k}={v:.3f}" for k, v in figures.items()
                     if k.endswith("_f1") and k != objective)
    return (f"[tune] {name}: {objective}={figures[objective]:.4f} ({heads}) "
            f"params={int(figures['params']):,} tflite={figures['tflite_kb']:.0f} KiB "
            f"latency={figures['latency_ms']:.2f} ms train={figures['train_seconds']:.0f} s | "
            f"{values}")


class _TrialDirs:
    """Tuner mixin: hand `HyperModel.fit` its trial's folder (`<project>/trial_<id>/`)."""

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
        import collections

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


def make_tuner(hypermodel: TwoHeadHyperModel, overwrite: bool = False) -> kt.Tuner:
    """The Keras Tuner tuner `cfg.tune.oracle` names, writing into `<output_dir>/<exp>/`."""
    cfg = hypermodel.config
    tune = cfg.tune
    base = _TUNERS[tune.oracle]
    cls = type(f"TwoHead{base.__name__}", (_TrialDirs, base), {})
    kwargs = dict(hypermodel=hypermodel, objective=kt.Objective(cfg.objective, tune.direction),
                  seed=cfg.train.seed, directory=cfg.output_dir, project_name=cfg.exp,
                  overwrite=overwrite, max_consecutive_failed_trials=tune.max_failed_trials)
    if tune.oracle == "hyperband":
        kwargs.update(max_epochs=tune.epochs or cfg.train.epochs, factor=tune.hyperband_factor)
    elif tune.oracle == "grid":  # kt.GridSearch is kt.Tuner with the (non-resumable) oracle
        oracle_args = ("objective", "seed", "max_consecutive_failed_trials")
        kwargs["oracle"] = ResumableGridOracle(max_trials=tune.max_trials,
                                               **{k: kwargs.pop(k) for k in oracle_args})
    else:
        kwargs["max_trials"] = tune.max_trials
    return cls(**kwargs)


def check_search_dir(cfg: Config, overwrite: bool, worker: bool = False) -> None:
    """Refuse to continue a search folder with another search's settings.

    `tune.max_trials` may grow (more trials), `tune.constraints` may change (the best
    trial is picked again, without training) and the data may move; anything else
    changes what the trials mean.
    """
    saved = cfg.run_dir / SEARCH_FILE
    if overwrite or not saved.is_file():
        return
    before = config_lib.load(saved)
    if _comparable(before) != _comparable(cfg):
        diff = sorted(k for k, v in _comparable(cfg).items() if _comparable(before).get(k) != v)
        raise training.RunExistsError(
            f"{cfg.run_dir} holds a search with other settings ({', '.join(diff)} differ from "
            f"its {SEARCH_FILE}). Continue it with the same config, start again with "
            f"--overwrite{' on the chief' if worker else ''}, or choose another exp=NAME.")


def _comparable(cfg: Config) -> dict:
    flat = json.loads(json.dumps(OmegaConf.to_container(OmegaConf.structured(cfg))))
    for section, key in (("tune", "max_trials"), ("tune", "constraints"), ("data", "root"),
                         ("data", "cache_dir"), ("data", "workers")):
        flat[section].pop(key, None)
    return {f"{s}.{k}": v for s, d in flat.items() if isinstance(d, dict) for k, v in d.items()}


@contextlib.contextmanager
def _distributed_env(chief: str | None, worker: str | None):
    """Keras Tuner's distributed mode is configured by environment variables only."""
    if chief is None:
        yield None
        return
    host, _, port = chief.rpartition(":")
    if worker is None:
        tuner_id, host = "chief", host or "0.0.0.0"
    else:
        if not host:
            raise ValueError(f"A worker needs --chief HOST:PORT. Received: {chief!r}")
        if "chief" in worker:
            raise ValueError(f"Worker IDs must not contain 'chief' (Keras Tuner would take "
                             f"the worker for the chief). Received: {worker!r}")
        tuner_id = f"worker{worker}" if worker.isdigit() else worker
    if not port.isdigit():
        raise ValueError(f"--chief needs a port number (PORT or HOST:PORT). Received: {chief!r}")
    env = {"KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": port,
           "KERASTUNER_TUNER_ID": tuner_id}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield tuner_id
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tune(cfg: Config, overwrite: bool = False, chief: str | None = None,
         worker: str | None = None, verbose: int | str = 2) -> dict:
    """Run (or continue) the search `cfg.tune` describes, and write its reports.

    Args:
        cfg: `Config` with a `tune` section.
        overwrite: bool. Delete `<output_dir>/<exp>/` and start again (never on a worker).
        chief: str or None. "PORT" (or "HOST:PORT") to run Keras Tuner's oracle for
            workers (this process trains nothing), or the chief's "HOST:PORT" for a worker.
        worker: str or None. This worker's ID; a restarted worker with the same ID gets
            its unfinished trial back and continues it from its last epoch.
        verbose: Keras' fit verbosity inside trials.

    Returns:
        `{"run_dir", "trials", "best"}` (the summary `tuning_results.write_reports`
        returns); for a worker, `{"run_dir", "worker"}` once the search is over.

    Example:

    >>> cfg = tt.load_config("configs/tune_head_width.yaml", ["data.root=demo_data/fm6k"])
    >>> summary = tt.tune(cfg)
    >>> summary["best"]["config"]
    'saved_models/tune_head_width/best_config.yaml'
    """
    from tf_twohead import tuning_results

    if worker is not None and overwrite:
        raise ValueError("--overwrite is never used on a worker: it would delete the shared "
                         "search folder under the other workers. Use it on the chief.")
    if worker is not None and chief is None:
        raise ValueError("A worker needs --chief HOST:PORT.")
    training.warn_if_onednn_off()
    hypermodel = TwoHeadHyperModel(cfg)  # checks the space: fails before anything runs
    check_search_dir(cfg, overwrite, worker is not None)
    if chief is None or worker is not None:
        hypermodel.prepare()  # the chief trains nothing and needs no data
    with _distributed_env(chief, worker) as role:
        tuner = make_tuner(hypermodel, overwrite)
        if worker is None:
            config_lib.dump(cfg, cfg.run_dir / SEARCH_FILE)
            tuner.save()  # so a search cut short in its first trial still reloads
        if role == "chief":
            print(f"[tune] chief: serving the oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
                  f"{os.environ['KERASTUNER_ORACLE_PORT']}; start workers with "
                  f"--worker ID --chief HOST:{os.environ['KERASTUNER_ORACLE_PORT']}")
        tuner.search(verbose=verbose)
    if worker is not None:
        print(f"[tune] worker {role}: no trials left; the chief writes the reports.")
        return {"run_dir": str(cfg.run_dir), "worker": role}
    return tuning_results.write_reports(cfg, hypermodel.space)

