"""The epochs loop every run shares: a plain run, each search trial and each stage of
a combined run write their run folder through it.

Per finished epoch: `last.keras`, `best.keras` (when the monitored metric improves, by
`core.best.rank_key`), `train_state.json`, `history.csv`, `curves.png` and TensorBoard logs.
Model files are written atomically, so a run killed at any moment leaves the previous
`best.keras` intact and `--resume` continues from the last finished epoch.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras

from tf_twohead import models
from tf_twohead.config import Config
from tf_twohead.core.best import TIE_BREAK, rank_key
from tf_twohead.core.errors import DivergedError
from tf_twohead.core.fileio import atomic_path, atomic_write_json
from tf_twohead.core.run_folder import BEST, CURVES, HISTORY, LAST, LOGS, STATE
from tf_twohead.data.pipeline import checked_splits
from tf_twohead.plots.curves import plot_history
from tf_twohead.recipe.compiling import compile_model, schedule_callbacks
from tf_twohead.training import distribute
from tf_twohead.training.progress import closing_line, epoch_lines
from tf_twohead.training.resume import checkpoint_state, trim_history


class RunCheckpoint(keras.callbacks.Callback):
    """Per finished epoch: atomically save `last.keras`, `best.keras` and the run state.

    `best.keras` is the epoch `core.best.rank_key` picks: the highest `monitor`, ties to the
    lowest `tie_break` (validation loss). It is saved for inference, without the
    optimizer's state (a third of the size); `last.keras` keeps that state for
    `--resume`. Keras' ModelCheckpoint writes in place (a kill mid-write corrupts the
    best model) and forgets its best score on restart; this does neither.
    """

    def __init__(self, run_dir: Path, monitor: str, best: float = -math.inf,
                 best_epoch: int | None = None, tie_break: str = TIE_BREAK,
                 best_tie_break: float = math.inf):
        super().__init__()
        self.run_dir, self.monitor, self.tie_break = Path(run_dir), monitor, tie_break
        self.best, self.best_epoch, self.best_tie_break = best, best_epoch, best_tie_break
        self.saved_best = False  # this epoch's: the compact output marks it
        self._inference = None  # (model, its uncompiled copy): built once per fit

    def is_better(self, score: float, tie_break: float) -> bool:
        """Whether an epoch scoring `score` (and `tie_break`) beats the best so far."""
        if self.best_epoch is None:
            return True
        return rank_key(score, tie_break) < rank_key(self.best, self.best_tie_break)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in (self.monitor, self.tie_break):
            if logs.get(key) is None:
                raise KeyError(f"Metric {key!r} is missing; logged: {sorted(logs)}")
        score, tie_break = float(logs[self.monitor]), float(logs[self.tie_break])
        with atomic_path(self.run_dir / LAST) as tmp:
            self.model.save(tmp)
        self.saved_best = self.is_better(score, tie_break)
        if self.saved_best:
            if self._inference is None or self._inference[0] is not self.model:
                self._inference = (self.model, inference_copy(self.model))
            save_for_inference(self.model, self.run_dir / BEST, self._inference[1])
            self.best, self.best_epoch, self.best_tie_break = score, epoch + 1, tie_break
        atomic_write_json(self.run_dir / STATE, {
            "epoch": epoch + 1, "monitor": self.monitor, "best": self.best,
            "best_epoch": self.best_epoch, "tie_break": self.tie_break,
            "best_tie_break": self.best_tie_break,
        })


def inference_copy(model: keras.Model) -> keras.Model:
    """An uncompiled model of the same architecture (building one takes a second or two:
    `RunCheckpoint` keeps it for the whole fit)."""
    return keras.Model.from_config(model.get_config())


def save_for_inference(model: keras.Model, path: Path,
                       copy: keras.Model | None = None) -> Path:
    """Save `model` atomically without its optimizer state: an uncompiled copy with the
    same weights, as Keras' `.keras` format has no `include_optimizer` (and
    `clone_model` compiles its clone with the same optimizer)."""
    copy = copy or inference_copy(model)
    copy.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        copy.save(tmp)
    return Path(path)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """End the run when an epoch's training loss is NaN or infinite, before anything of
    that epoch is saved (it runs first), as Keras' `TerminateOnNaN` would stop it, but as
    a `DivergedError` the command line turns into one line: a diverged model never
    becomes `best.keras` or `last.keras`, and `--resume` (say with a lower learning
    rate) starts again from the last good epoch.
    Checked per epoch, so the training steps stay asynchronous."""

    def __init__(self, learning_rate: float):
        super().__init__()
        self.learning_rate = learning_rate

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise DivergedError(
                f"Training diverged: the loss of epoch {epoch + 1} is {float(loss)}. Nothing "
                f"of that epoch was saved ({BEST} and {LAST} are from the epochs before). "
                f"Lower train.learning_rate (now {self.learning_rate:g}) or check the data, "
                "then --resume (from the last good epoch) or --overwrite.")


class HistoryCSV(keras.callbacks.CSVLogger):
    """Keras' CSVLogger with epochs counted from 1, as everything a person reads."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


PLOT_EVERY_SECONDS = 30.0  # curves.png is redrawn at most this often while a fit runs


class PlotCurves(keras.callbacks.Callback):
    """Redraw `curves.png` from `history.csv`: after an epoch when the fit's start or the
    last drawing is `every` seconds old (the first epoch, when epochs are that long), and
    after the fit's last epoch. A drawing of eight panels takes 0.5-1 s on 2 cores: after
    every epoch of a short fit it cost more than the epoch."""

    def __init__(self, run_dir: Path, monitor: str | None = None, heads=None,
                 every: float = PLOT_EVERY_SECONDS):
        super().__init__()
        self.run_dir, self.monitor, self.heads = Path(run_dir), monitor, heads
        self.every, self.drawn = every, time.monotonic()

    def on_train_begin(self, logs=None):
        self.drawn = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 >= (self.params or {}).get("epochs", 0)
        if last or time.monotonic() - self.drawn >= self.every:
            self.draw()

    def draw(self):
        history = self.run_dir / HISTORY
        if history.is_file():
            plot_history(history, self.run_dir / CURVES, self.monitor, self.heads)
            self.drawn = time.monotonic()



def load_run_splits(cfg: Config) -> dict:
    """Validate (and cache) every split, test included, before the first step; say what
    `data.on_bad_image=skip` dropped."""
    splits = checked_splits(cfg, ("train", "val", "test"))
    for split in splits.values():
        if split.dropped:
            print(split.dropped)
    return splits


def run_callbacks(cfg: Config, folder: Path, checkpoint: RunCheckpoint, append: bool,
                  logs_dir: Path, extra: list | None = None) -> list:
    """The callbacks of one fit into a run folder: the non-finite loss stop, the step
    schedule (if any), `history.csv`, TensorBoard logs, the checkpoint, `curves.png`,
    then `extra`."""
    return [
        StopOnNonFiniteLoss(cfg.train.learning_rate),  # first: before anything is saved
        *schedule_callbacks(cfg),
        HistoryCSV(str(Path(folder) / HISTORY), append=append),
        keras.callbacks.TensorBoard(str(logs_dir), profile_batch=0),
        checkpoint,
        PlotCurves(folder, checkpoint.monitor, list(cfg.model.heads)),
        *(extra or []),
    ]


def fit_run(model: keras.Model, cfg: Config, train_ds, val_ds, state: dict | None = None,
            verbose: int | str | None = None, callbacks: list | None = None,
            initial_epoch: int | None = None, writer: bool = True) -> dict:
    """Train `model` in `cfg.run_dir` from where `state` stopped to `train.epochs`.

    The epochs loop that `training.train` and each search trial share: the freeze stages, the
    step schedule, `history.csv`, TensorBoard logs, atomic `last.keras`/`best.keras`
    and `train_state.json` after every epoch, `curves.png`.

    Args:
        model: keras.Model. Built (and for a resumed run, loaded compiled) under
            `distribute.scope(cfg)`.
        cfg: `Config`. Its `run_dir` receives the files.
        train_ds, val_ds: tf.data.Dataset. From `data.pipeline.datasets_for`.
        state: dict or None. `resumable_state` of an interrupted run.
        verbose: Keras' fit verbosity; None: one compact line per epoch
            (`training.progress.EpochLine`), with a step counter on a terminal.
        callbacks: list or None. Extra Keras callbacks, run after the run's own.
        initial_epoch: int or None. Start epoch when there is no state (a search
            continuing a parent trial's weights); defaults to 0.
        writer: bool. False for the processes of a data-parallel group other than
            process 0: they run the same epochs and callbacks (every variable a save
            creates is a collective under JAX) in a scratch folder, and print nothing.

    Returns:
        The run state: `{"epoch", "best", "best_epoch", "monitor", "run_dir"}`.
    """
    run_dir = cfg.run_dir
    initial_epoch = int(state["epoch"]) if state else int(initial_epoch or 0)
    if state and writer:
        print(f"Resuming {run_dir} after epoch {initial_epoch}; "
              f"best {state['monitor']}={state['best']:.4f} at epoch {state['best_epoch']}.")
    if initial_epoch >= cfg.train.epochs and state:
        print(f"{run_dir} already finished {initial_epoch} epochs; nothing to do.")
        return {**state, "run_dir": str(run_dir)}
    trim_history(run_dir, initial_epoch)  # one row per finished epoch, whatever stopped us
    steps = steps_per_epoch(cfg, train_ds)
    if cfg.train.steps_per_epoch:
        train_ds = train_ds.repeat()

    monitor = cfg.monitor
    checkpoint = RunCheckpoint(run_dir, monitor, **checkpoint_state(state))
    started = time.perf_counter()
    extra = list(callbacks or [])
    if verbose is None:  # our compact line per epoch instead of Keras' metric soup
        verbose, extra = 0, [*epoch_lines(cfg, checkpoint), *extra]
    # With train.freeze_epochs, two fits: the heads on a frozen backbone, then everything.
    phases = ((0, cfg.train.freeze_epochs, True),
              (cfg.train.freeze_epochs, cfg.train.epochs, False))
    for start, end, frozen in phases:
        if initial_epoch >= end:
            continue
        changed = set_backbone_trainable(model, not frozen)
        if changed or not model.compiled:
            # Keras applies a changed `trainable` only at compile: a fresh optimizer for
            # the new set of variables (Keras' transfer-learning convention).
            with distribute.scope(cfg):  # one_cycle: a cycle per phase, as fastai's fine_tune
                compile_model(model, cfg, total_steps=(end - start) * steps)
        if cfg.train.freeze_epochs:
            print(f"Epochs {initial_epoch + 1}-{end}: backbone "
                  f"{'frozen (its BatchNorm in inference mode)' if frozen else 'unfrozen'}.")
        model.fit(train_ds, validation_data=val_ds, epochs=end, initial_epoch=initial_epoch,
                  steps_per_epoch=cfg.train.steps_per_epoch,
                  callbacks=run_callbacks(cfg, run_dir, checkpoint, initial_epoch > 0,
                                          run_dir / LOGS, extra),
                  shuffle=False, verbose=verbose)
        initial_epoch = end
    final = json.loads((run_dir / STATE).read_text())
    if writer:
        print(closing_line(final, run_dir, time.perf_counter() - started), flush=True)
    return {**final, "run_dir": str(run_dir)}


def steps_per_epoch(cfg: Config, train_ds) -> int:
    """Training steps per epoch: `train.steps_per_epoch`, else one pass over the data."""
    if cfg.train.steps_per_epoch:
        return int(cfg.train.steps_per_epoch)
    steps = int(train_ds.cardinality())
    if steps < 1:
        raise ValueError("The training dataset's length is unknown; set train.steps_per_epoch.")
    return steps


def set_backbone_trainable(model: keras.Model, trainable: bool) -> bool:
    """Freeze or unfreeze the backbone's layers; True if anything changed.

    A frozen Keras layer also runs its BatchNorm in inference mode (moving statistics,
    no updates): Keras' convention for fine-tuning, which keeps a small dataset's batch
    statistics from overwriting ImageNet's.
    """
    layers = models.backbone_layers(model)
    changed = any(layer.trainable != trainable for layer in layers)
    for layer in layers:
        layer.trainable = trainable
    return changed
