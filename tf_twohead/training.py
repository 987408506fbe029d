"""Compile and train a model from a `Config`; write the run folder; resume after a stop.

The run folder `<output_dir>/<exp>/` receives, in this order: `config.yaml` (before
any data is read), then per finished epoch `last.keras`, `best.keras` (when the
validation F1 of `train.monitor_head` improves), `train_state.json`, `history.csv`,
`curves.png` and TensorBoard logs. Model files are written atomically, so a run killed
at any moment leaves the previous `best.keras` intact and `--resume` continues from
the last finished epoch.

Example (your own script):

>>> cfg = tf_twohead.config.load("configs/two_head.yaml", ["data.root=demo_data"])
>>> model = tf_twohead.models.from_config(cfg)
>>> tf_twohead.training.compile_model(model, cfg)
>>> train_ds, val_ds = tf_twohead.data.make_datasets(cfg)
>>> model.fit(train_ds, validation_data=val_ds, epochs=3)
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import keras

from tf_twohead import config as config_lib
from tf_twohead import distribute, models, reports
from tf_twohead.config import SOFTMAX_OUTPUT, Config
from tf_twohead.data.pipeline import datasets_for, load_splits
from tf_twohead.fileio import atomic_path, atomic_write_json
from tf_twohead.metrics import class_metrics, head_metrics, softmax_head_metrics
from tf_twohead.optimizers import OneCycle, TorchAdam
from tf_twohead.weights import fetch_pretrained

STATE_FILE = "train_state.json"


class RunExistsError(RuntimeError):
    """The run folder already holds a trained model and neither resume nor overwrite was asked."""


def compile_model(model: keras.Model, cfg: Config, total_steps: int | None = None,
                  heads: dict[str, list[int]] | None = None) -> keras.Model:
    """Compile with the reference recipe: per-head losses, weights and metrics by name.

    Two-head: binary cross-entropy with label smoothing per head, `loss_weights` from
    the config (main 2, aux 1), precision/recall/F1/AUC per head. A model whose one
    output is "probs" (softmax, combined, a combined run's encoder stages): categorical
    cross-entropy with the same smoothing, class `accuracy` and `top5`, and each head's
    metrics read from the class probabilities. Adam as PyTorch defines it
    (`TorchAdam`): `train.learning_rate`, `train.adam_epsilon`, and
    `train.weight_decay` applied as `train.weight_decay_mode` says.

    Args:
        model: keras.Model. Built by `models`.
        cfg: `Config`.
        total_steps: int or None. Steps of this fit, for `train.schedule=one_cycle`
            (a cycle over exactly these steps); unused by the step schedule.
        heads: dict or None. Head name -> positive class ids; None: `model.heads`
            (a combined run's coarse stage has no heads: `{}`).
    """
    t = cfg.train
    heads = dict(cfg.model.heads if heads is None else heads)
    optimizer = TorchAdam(learning_rate(cfg, total_steps), epsilon=t.adam_epsilon,
                          weight_decay=t.weight_decay or None,
                          weight_decay_mode=t.weight_decay_mode)
    if list(model.output_names) == [SOFTMAX_OUTPUT]:
        classes = int(model.get_layer(SOFTMAX_OUTPUT).output.shape[-1])
        metrics = {SOFTMAX_OUTPUT: class_metrics(classes) + softmax_head_metrics(heads)}
        model.compile(
            optimizer=optimizer,
            loss={SOFTMAX_OUTPUT: keras.losses.CategoricalCrossentropy(
                label_smoothing=t.label_smoothing)},
            metrics=metrics,
        )
    else:
        metrics = {h: head_metrics() for h in heads}
        model.compile(
            optimizer=optimizer,
            loss={h: keras.losses.BinaryCrossentropy(label_smoothing=t.label_smoothing)
                  for h in heads},
            loss_weights={h: float(t.loss_weights.get(h, 1.0)) for h in heads},
            metrics=metrics,
        )
    _build_state(model, metrics)
    return model


def learning_rate(cfg: Config, total_steps: int | None = None):
    """`train.learning_rate` (the step schedule's start), or a `OneCycle` over
    `total_steps` peaking at it for `train.schedule=one_cycle`."""
    t = cfg.train
    if t.schedule == "step":
        return t.learning_rate
    if not total_steps:
        raise ValueError("train.schedule=one_cycle needs the number of training steps. "
                         f"Received: total_steps={total_steps}")
    return OneCycle(t.learning_rate, total_steps, t.pct_start, t.div, t.div_final)


def _build_state(model: keras.Model, metrics: dict) -> None:
    """Create the optimizer's and the metrics' variables now, eagerly.

    Adam's moments and F1Score's counters are otherwise created lazily, inside the first
    trace of the training step, and TensorFlow then traces the whole step a second time
    (about 5 s at 64 px on 2 cores). One throw-away update builds each metric.
    """
    model.optimizer.build(model.trainable_variables)
    for name, head_metrics_ in metrics.items():
        width = model.get_layer(name).output.shape[-1]
        zeros = keras.ops.zeros((1, width))
        for metric in head_metrics_:
            metric.update_state(zeros, zeros)
            metric.reset_state()


def step_decay(cfg: Config):
    """The reference schedule: multiply the learning rate by `lr_gamma` every `lr_step_epochs`."""
    t = cfg.train

    def schedule(epoch, lr=None):
        return float(t.learning_rate * t.lr_gamma ** (epoch // max(1, t.lr_step_epochs)))

    return schedule


TIE_BREAK = "val_loss"  # among epochs with an equal monitored F1, the lowest wins


class RunCheckpoint(keras.callbacks.Callback):
    """Per finished epoch: atomically save `last.keras`, `best.keras` and the run state.

    `best.keras` is the epoch with the highest `monitor`; among epochs that tie on it,
    the one with the lowest `tie_break` (validation loss). On a hard task the monitored
    F1 can stay 0.0 for several epochs, and a first-epoch-wins rule would then keep an
    untrained model for good. Keras' ModelCheckpoint writes in place (a kill mid-write
    corrupts the best model) and forgets its best score on restart; this does neither.
    """

    def __init__(self, run_dir: Path, monitor: str, best: float = -math.inf,
                 best_epoch: int | None = None, tie_break: str = TIE_BREAK,
                 best_tie_break: float = math.inf):
        super().__init__()
        self.run_dir, self.monitor, self.tie_break = Path(run_dir), monitor, tie_break
        self.best, self.best_epoch, self.best_tie_break = best, best_epoch, best_tie_break

    def is_better(self, score: float, tie_break: float) -> bool:
        """Whether an epoch scoring `score` (and `tie_break`) beats the best so far."""
        if self.best_epoch is None or score > self.best:
            return True
        return score == self.best and tie_break < self.best_tie_break

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in (self.monitor, self.tie_break):
            if logs.get(key) is None:
                raise KeyError(f"Metric {key!r} is missing; logged: {sorted(logs)}")
        score, tie_break = float(logs[self.monitor]), float(logs[self.tie_break])
        with atomic_path(self.run_dir / "last.keras") as tmp:
            self.model.save(tmp)
        if self.is_better(score, tie_break):
            with atomic_path(self.run_dir / "best.keras") as tmp:
                shutil.copyfile(self.run_dir / "last.keras", tmp)  # the same bytes, saved once
            self.best, self.best_epoch, self.best_tie_break = score, epoch + 1, tie_break
        atomic_write_json(self.run_dir / STATE_FILE, {
            "epoch": epoch + 1, "monitor": self.monitor, "best": self.best,
            "best_epoch": self.best_epoch, "tie_break": self.tie_break,
            "best_tie_break": self.best_tie_break,
        })


class PlotCurves(keras.callbacks.Callback):
    """Redraw `curves.png` from `history.csv` after every epoch (cheap, and always current)."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, epoch, logs=None):
        history = self.run_dir / "history.csv"
        if history.is_file():
            reports.plot_history(history, self.run_dir / "curves.png")


def warn_if_onednn_off() -> None:
    """Say so when TensorFlow runs without its oneDNN kernels on an x86 CPU.

    `import tf_twohead` turns them on (they are off by default on CPUs without
    AVX-512), but only if TensorFlow was not imported first; training is then about 2x
    slower. A user's explicit TF_ENABLE_ONEDNN_OPTS=0 is respected silently.
    """
    import os
    import warnings

    from tensorflow.python.util import _pywrap_util_port as port

    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" or not port.IsX86Available():
        return
    if not port.IsMklEnabled():
        warnings.warn(
            "TensorFlow's oneDNN CPU kernels are off: training runs about 2x slower on this "
            "CPU. Import tf_twohead before tensorflow and keras, or set "
            "TF_ENABLE_ONEDNN_OPTS=1 before starting Python.", stacklevel=3)


def train(cfg: Config, resume: bool = False, overwrite: bool = False,
          verbose: int | str | None = None, callbacks: list | None = None) -> dict:
    """Train the model a `Config` describes and fill its run folder.

    Args:
        cfg: `Config`. The resolved experiment configuration.
        resume: bool. Continue an interrupted run from `last.keras` and its state.
        overwrite: bool. Start again in a run folder that already has a model.
        verbose: Keras' fit verbosity; None shows a progress bar on a terminal and one
            line per epoch otherwise (logs, CI).
        callbacks: list or None. Extra Keras callbacks, run after the run's own.

    Returns:
        The run state: `{"epoch", "best", "best_epoch", "monitor", "run_dir"}`.
    """
    if cfg.model.kind == "combined":  # four staged fits, one run folder
        from tf_twohead.stages import train_staged

        return train_staged(cfg, resume, overwrite, verbose, callbacks)
    warn_if_onednn_off()
    run_dir = cfg.run_dir
    state = _check_run_dir(cfg, resume, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_lib.dump(cfg, run_dir / "config.yaml")  # first, so every run is reproducible

    if not state:  # download/convert pretrained weights now: fail before the data work
        fetch_pretrained(cfg.model, cfg.data.img_size)
    splits = load_run_splits(cfg)
    train_ds, val_ds = datasets_for(cfg, splits["train"]), datasets_for(cfg, splits["val"])
    with distribute.scope(cfg):
        if state:
            model = models.load_model(run_dir / "last.keras", compile=True)  # optimizer state
        else:
            keras.utils.set_random_seed(cfg.train.seed)
            model = models.from_config(cfg)  # compiled in fit_run, once its trainable set is known
    return fit_run(model, cfg, train_ds, val_ds, state, verbose, callbacks)


def load_run_splits(cfg: Config) -> dict:
    """Validate (and cache) every split, test included, before the first step; say what
    `data.on_bad_image=skip` dropped."""
    splits = load_splits(cfg, ("train", "val", "test"))
    for split in splits.values():
        if split.dropped:
            print(split.dropped)
    return splits


def run_callbacks(cfg: Config, folder: Path, checkpoint: RunCheckpoint, append: bool,
                  logs_dir: Path, extra: list | None = None) -> list:
    """The callbacks of one fit into a run folder: the step schedule (if any),
    `history.csv`, TensorBoard logs, the checkpoint, `curves.png`, then `extra`."""
    return [
        *schedule_callbacks(cfg),
        keras.callbacks.CSVLogger(str(Path(folder) / "history.csv"), append=append),
        keras.callbacks.TensorBoard(str(logs_dir), profile_batch=0),
        checkpoint,
        PlotCurves(folder),
        *(extra or []),
    ]


def resumable_state(run_dir: Path) -> dict | None:
    """The state of an interrupted run in `run_dir` that `fit_run` can continue, or None."""
    run_dir = Path(run_dir)
    if (run_dir / STATE_FILE).is_file() and (run_dir / "last.keras").is_file():
        return json.loads((run_dir / STATE_FILE).read_text())
    return None


def fit_run(model: keras.Model, cfg: Config, train_ds, val_ds, state: dict | None = None,
            verbose: int | str | None = None, callbacks: list | None = None,
            initial_epoch: int | None = None) -> dict:
    """Train `model` in `cfg.run_dir` from where `state` stopped to `train.epochs`.

    The epochs loop that `train` and each search trial share: the freeze stages, the
    step schedule, `history.csv`, TensorBoard logs, atomic `last.keras`/`best.keras`
    and `train_state.json` after every epoch, `curves.png`.

    Args:
        model: keras.Model. Built (and for a resumed run, loaded compiled) under
            `distribute.scope(cfg)`.
        cfg: `Config`. Its `run_dir` receives the files.
        train_ds, val_ds: tf.data.Dataset. From `data.pipeline.datasets_for`.
        state: dict or None. `resumable_state` of an interrupted run.
        verbose: Keras' fit verbosity; None: a progress bar on a terminal, else one
            line per epoch.
        callbacks: list or None. Extra Keras callbacks, run after the run's own.
        initial_epoch: int or None. Start epoch when there is no state (a search
            continuing a parent trial's weights); defaults to 0.

    Returns:
        The run state: `{"epoch", "best", "best_epoch", "monitor", "run_dir"}`.
    """
    run_dir = cfg.run_dir
    initial_epoch = int(state["epoch"]) if state else int(initial_epoch or 0)
    if state:
        print(f"Resuming {run_dir} after epoch {initial_epoch}; "
              f"best {state['monitor']}={state['best']:.4f} at epoch {state['best_epoch']}.")
    if initial_epoch >= cfg.train.epochs and state:
        print(f"{run_dir} already finished {initial_epoch} epochs; nothing to do.")
        return {**state, "run_dir": str(run_dir)}
    steps = steps_per_epoch(cfg, train_ds)
    if cfg.train.steps_per_epoch:
        train_ds = train_ds.repeat()

    monitor = cfg.monitor
    checkpoint = RunCheckpoint(run_dir, monitor, **checkpoint_state(state))
    if verbose is None:
        verbose = "auto" if sys.stdout.isatty() else 2
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
                                          run_dir / "logs", callbacks),
                  shuffle=False, verbose=verbose)
        initial_epoch = end
    final = json.loads((run_dir / STATE_FILE).read_text())
    print(f"Done: best {monitor}={final['best']:.4f} at epoch {final['best_epoch']} -> "
          f"{run_dir / 'best.keras'}")
    return {**final, "run_dir": str(run_dir)}


def steps_per_epoch(cfg: Config, train_ds) -> int:
    """Training steps per epoch: `train.steps_per_epoch`, else one pass over the data."""
    if cfg.train.steps_per_epoch:
        return int(cfg.train.steps_per_epoch)
    steps = int(train_ds.cardinality())
    if steps < 1:
        raise ValueError("The training dataset's length is unknown; set train.steps_per_epoch.")
    return steps


def schedule_callbacks(cfg: Config) -> list:
    """The step schedule is a per-epoch callback; one_cycle lives in the optimizer."""
    if cfg.train.schedule == "step":
        return [keras.callbacks.LearningRateScheduler(step_decay(cfg))]
    return []


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


def checkpoint_state(state: dict | None) -> dict:
    """The best-so-far of an interrupted run, as `RunCheckpoint` arguments."""
    if not state:
        return {}
    return {"best": state["best"], "best_epoch": state.get("best_epoch"),
            "best_tie_break": state.get("best_tie_break", math.inf)}


def _check_run_dir(cfg: Config, resume: bool, overwrite: bool) -> dict | None:
    """Refuse to clobber a trained run by accident; load the state to resume from."""
    run_dir = cfg.run_dir
    state_path = run_dir / STATE_FILE
    has_model = (run_dir / "best.keras").exists() or state_path.exists()
    if resume:
        if not (state_path.is_file() and (run_dir / "last.keras").is_file()):
            if has_model:
                raise RunExistsError(f"{run_dir} has no {STATE_FILE} or last.keras to resume from.")
            return None  # nothing to resume yet: a fresh start is what --resume means here
        check_same_settings(cfg)
        return json.loads(state_path.read_text())
    if has_model and not overwrite:
        raise RunExistsError(
            f"{run_dir} already holds a trained model. Pass --resume to continue it, "
            f"--overwrite to start again, or choose another exp=NAME."
        )
    if overwrite and state_path.exists():
        state_path.unlink()
    return None


def check_same_settings(cfg: Config, sections=("data", "model")) -> None:
    """Refuse to resume `cfg.run_dir` with other data or model settings than it started."""
    saved = cfg.run_dir / "config.yaml"
    if not saved.is_file():
        return
    before = config_lib.load(saved)
    for section in sections:
        if _model_relevant(before, section) != _model_relevant(cfg, section):
            raise RunExistsError(
                f"Cannot resume {cfg.run_dir}: the `{section}` settings differ from its "
                f"config.yaml. Resume with the same config (only train.* may change)."
            )


def _model_relevant(cfg: Config, section: str) -> dict:
    values = dict(vars(getattr(cfg, section)))
    if section == "data":  # where the data lives and how it is cached may change
        for key in ("root", "cache_dir", "workers", "on_bad_image"):
            values.pop(key, None)
    return values
