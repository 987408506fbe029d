"""`TwoHeadHyperModel`: a Keras Tuner HyperModel over config keys that trains each
trial as a run folder and measures its accuracy, size and speed.

`build(hp)` builds the trial's model from its `Config` with the package's builders (no
model code here); `fit` trains it through `training.loop.fit_run` (resumable, `best.keras`
per trial), converts the best model with our own exporter to a dynamic-range
`.tflite`, times it per image on real validation files with one thread, and returns
plain floats: the objective at its best epoch, every head's F1, `params`, `tflite_kb`,
`latency_ms`, `train_seconds`, `parity_passed`.

Example (your own tuner):

>>> hypermodel = TwoHeadHyperModel(cfg)
>>> tuner = keras_tuner.RandomSearch(hypermodel, objective=keras_tuner.Objective(
...     "val_main_f1", "max"), max_trials=8, directory="saved_models", project_name="mine")
>>> tuner.search()
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import keras
import keras_tuner as kt
import pandas as pd

from tf_twohead.config import Config, TuneConfig, dump, load_config, with_values
from tf_twohead.core import run_folder
from tf_twohead.core.api import public
from tf_twohead.core.best import best_row
from tf_twohead.core.errors import ParityError
from tf_twohead.core.fileio import atomic_write_json
from tf_twohead.core.run_folder import BEST, CONFIG, HISTORY, LAST, TUNER_FILES, lock_run_dir
from tf_twohead.data.pipeline import checked_splits, datasets_for
from tf_twohead.evaluation.evaluate import measure_latency
from tf_twohead.export.tflite import to_tflite
from tf_twohead.inference.predictor import Predictor
from tf_twohead.keras_files.load import load_model
from tf_twohead.pretrained.load import build_model
from tf_twohead.training import distribute
from tf_twohead.training.loop import fit_run
from tf_twohead.training.resume import resumable_state
from tf_twohead.tuning.space import plain_value, search_space

PARITY_IMAGES = 200  # validation images that check each trial's .tflite against its .keras


@public
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
                 "data.cache_dir": str(base.cache_dir),  # the search's, not each trial's
                 "data.root": str(Path(base.data.root).resolve())}
        if run_dir is not None:
            fixed.update(output_dir=str(Path(run_dir).parent), exp=Path(run_dir).name)
        cfg = with_values(base, {**values, **fixed}, where="trial")
        return _without_search(cfg)

    def build(self, hp) -> keras.Model:
        self.declare_hyperparameters(hp)
        cfg = self.trial_config(hp)
        with distribute.scope(cfg):
            keras.utils.set_random_seed(cfg.train.seed)
            return build_model(cfg)

    def prepare(self) -> None:
        """Validate and cache the train and val splits at every searched image size, so
        bad data stops the search before its first trial."""
        sizes = {self.config.data.img_size}
        for dim in self.space:
            if dim.key == "data.img_size":
                sizes |= set(dim.values or (int(dim.low), int(dim.high)))
        for size in sorted(sizes):
            cfg = with_values(self.config, {"data.img_size": size})
            self._load(cfg)

    def _load(self, cfg: Config) -> dict:
        size = cfg.data.img_size
        if size not in self._splits:
            self._splits[size] = checked_splits(cfg, ("train", "val"), progress=False)
        return self._splits[size]

    def fit(self, hp, model, *args, trial_dir: str | None = None, **kwargs) -> dict:
        """Train, export and time one trial; return its figures as plain floats.

        Keyword args as Keras Tuner passes them (`callbacks`, `epochs` and
        `initial_epoch` from Hyperband, `verbose`), plus `trial_dir` from `tune()`'s
        tuners; without it the trial runs in a temporary folder.
        """
        with contextlib.ExitStack() as stack:
            if trial_dir is None:
                trial_dir = stack.enter_context(tempfile.TemporaryDirectory())
            else:
                run_folder.claim_trial_dir(trial_dir, self.config.run_dir)
            run_dir = Path(trial_dir)
            stack.enter_context(lock_run_dir(run_dir, "trial"))  # one writer per trial
            cfg = self.trial_config(hp, run_dir, kwargs.get("epochs"))
            state = _resume_or_reset(run_dir, cfg)
            if state:
                with distribute.scope(cfg):
                    model = load_model(run_dir / LAST, compile=True)
            else:
                dump(cfg, run_dir / CONFIG)
            splits = self._load(cfg)
            train_ds, val_ds = (datasets_for(cfg, splits[s]) for s in ("train", "val"))
            timer = _Seconds(run_dir)
            fit_run(model, cfg, train_ds, val_ds, state, verbose=kwargs.get("verbose", 2),
                    callbacks=[*kwargs.get("callbacks", []), timer],
                    initial_epoch=kwargs.get("initial_epoch"))
            figures = self.measure(cfg, run_dir, splits["val"])
            figures["train_seconds"] = timer.total
            print(_progress_line(run_dir.name, figures, self.config.objective, hp, self.space))
            return figures

    def measure(self, cfg: Config, run_dir: Path, val_split) -> dict:
        """The best epoch's validation metrics, and the size and speed of its `.tflite`."""
        tune, objective = self.config.tune, self.config.objective
        history = pd.read_csv(run_dir / HISTORY)
        best = best_row(history, objective, "val_loss", tune.direction == "max")
        figures = {objective: float(best[objective]), "best_epoch": float(best["epoch"])}
        for head in cfg.model.heads:
            figures[f"val_{head}_f1"] = float(best[f"val_{head}_f1"])
        figures["val_loss"] = float(best["val_loss"])
        try:
            result = to_tflite(run_dir / BEST, "dynamic",
                                      parity_images=PARITY_IMAGES, progress=False)
            tflite, passed = Path(result["path"]), True
        except ParityError as e:  # still a model of that size and speed
            tflite, passed = e.path, False
        predictor = Predictor(tflite, threads=1)
        root = Path(cfg.data.root)
        files = [root / path for path in val_split.rows.paths[:tune.latency_images]]
        figures.update(params=float(predictor.metadata["params"]),
                       tflite_kb=tflite.stat().st_size / 1024.0,
                       latency_ms=float(measure_latency(predictor, files)),
                       parity_passed=float(passed))
        return figures


def _without_search(cfg: Config) -> Config:
    """A trial's config is a plain run config: its `tune` section back to the defaults."""
    return dataclasses.replace(cfg, tune=TuneConfig())


def _resume_or_reset(run_dir: Path, cfg: Config) -> dict | None:
    """The state to continue a trial from, when `run_dir` holds this same trial cut short.

    A folder left by a different configuration (a search restarted without its
    state) is cleared, except Keras Tuner's own files.
    """
    state = resumable_state(run_dir)
    saved = run_dir / CONFIG
    if state and saved.is_file() and load_config(saved) == cfg:
        return state
    run_folder.clear_run_dir(run_dir, keep=TUNER_FILES, why="a new trial in an old folder")
    return None


class _Seconds(keras.callbacks.Callback):
    """Training seconds of a trial, summed over resumptions (kept in the trial folder)."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.path = run_dir / "train_seconds.json"
        self.total = json.loads(self.path.read_text())["seconds"] if self.path.is_file() else 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
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
