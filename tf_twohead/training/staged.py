"""Staged training of the combined-encoders model, as one resumable run.

`tf-twohead train` with `model.kind: combined` runs the fastai recipe's stages in order:

1. `coarse`: encoder A as a softmax classifier of the `data.coarse` groups;
2. `fine`: encoder B as a softmax classifier of the fine classes;
3. `frozen`: the combined model (`models.combined`) with both encoders cut from the
   last epoch of stages 1 and 2 and frozen; only the new head learns (and, with
   `train.frozen_bn=train`, the encoders' BatchNorm, as fastai's `train_bn`);
4. `unfrozen`: the same model from the last epoch of stage 3, everything trainable.

Each stage is a fit of its own with a fresh optimizer (fastai's `reset_opt` and
`freeze`/`unfreeze` clear Adam's state too) and, with `train.schedule=one_cycle`, its
own one-cycle over its steps. Stage lengths are `train.stages.*` (0 skips a stage: the
"control" joins two untrained encoders); every other `train.*` key applies to every
stage. Both encoders and the combined model see the same split, images and order.

The run folder holds, besides `config.yaml`:

- `stages/<stage>/`: `last.keras`, `best.keras`, `train_state.json`, `history.csv`,
  as any run folder, so `--resume` continues the current stage after its last
  finished epoch;
- `history.csv`: every stage's rows, with `stage`, `stage_epoch` and `epoch`
  counting over the whole run (the axis an equal-budget baseline is plotted on);
- `best.keras` / `last.keras`: the combined model, once its stages have finished
  (the best of the combined stages' best epochs by `train.monitor`).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import keras
import pandas as pd

from tf_twohead.config import Config, coarse_ids, dump, with_absolute_paths
from tf_twohead.core.api import public
from tf_twohead.core.best import rank_key
from tf_twohead.core.defaults import STAGES
from tf_twohead.core.fileio import atomic_path, atomic_write_json
from tf_twohead.core.run_folder import (
    BEST,
    CONFIG,
    CURVES,
    HISTORY,
    LAST,
    LOGS,
    STAGES_DIR,
    STATE,
    lock_run_dir,
)
from tf_twohead.core.runtime import warn_if_onednn_off
from tf_twohead.data.pipeline import datasets_for
from tf_twohead.data.targets import encode_targets
from tf_twohead.keras_files.load import load_model
from tf_twohead.models.combined import load_encoder, set_encoders_frozen
from tf_twohead.plots.curves import plot_history
from tf_twohead.pretrained.load import build_model, fetch_pretrained
from tf_twohead.recipe.compiling import compile_model
from tf_twohead.training import distribute
from tf_twohead.training.loop import RunCheckpoint, load_run_splits, run_callbacks, steps_per_epoch
from tf_twohead.training.progress import closing_line, epoch_lines, run_summary
from tf_twohead.training.resume import (
    check_run_dir,
    checkpoint_state,
    resumable_state,
    trim_history,
)

ENCODER_OF = {"coarse": "coarse_encoder", "fine": "fine_encoder"}
DESCRIPTION = {
    "coarse": "encoder A on the coarse groups",
    "fine": "encoder B on the fine classes",
    "frozen": "combined model, encoders frozen",
    "unfrozen": "combined model, everything trainable",
}


def stage_dir(cfg: Config, stage: str) -> Path:
    """Where a stage of a combined run writes its model files and history."""
    return cfg.run_dir / STAGES_DIR / stage


def stage_plan(cfg: Config) -> list[tuple[str, int, int]]:
    """`(stage, first global epoch, epochs)` of the stages that run, in order."""
    plan, offset = [], 0
    for stage in STAGES:
        epochs = getattr(cfg.train.stages, stage)
        if epochs:
            plan.append((stage, offset, epochs))
            offset += epochs
    return plan


def stage_monitor(cfg: Config, stage: str) -> str:
    """The metric that picks a stage's `best.keras`: the coarse stage has no heads (its
    classes are the groups), so it keeps the best accuracy."""
    return "val_accuracy" if stage == "coarse" else cfg.monitor


@public
def train_staged(cfg: Config, resume: bool = False, overwrite: bool = False,
                 verbose: int | str | None = None, callbacks: list | None = None) -> dict:
    """Train a `model.kind=combined` config stage by stage; see the module docstring.

    Args and returns as `training.train` (which calls this for `model.kind=combined`):
    the returned state is the run's best combined epoch, `{"stage", "epoch", "best",
    "best_epoch", "monitor", "run_dir"}`.
    """
    warn_if_onednn_off()
    with lock_run_dir(cfg.run_dir):  # one writer per run folder
        # on resume, other data, model or stage lengths are refused
        check_run_dir(cfg, resume, overwrite, ("data", "model", "train.stages"))
        return _train_stages(cfg, verbose, callbacks)


def _train_stages(cfg: Config, verbose, callbacks) -> dict:
    run_dir = cfg.run_dir
    dump(with_absolute_paths(cfg), run_dir / CONFIG)
    fetch_pretrained(cfg.model, cfg.data.img_size)
    splits = load_run_splits(cfg)  # every split checked before stage 1
    compact, started = verbose is None, time.perf_counter()
    verbose = 0 if compact else verbose
    plan = stage_plan(cfg)
    total = sum(epochs for _, _, epochs in plan)
    for index, (stage, offset, epochs) in enumerate(plan):
        folder = stage_dir(cfg, stage)
        state = resumable_state(folder)
        done = int(state["epoch"]) if state else 0
        print(f"Stage {index + 1}/{len(plan)} {stage} ({DESCRIPTION[stage]}): run epochs "
              f"{offset + 1}-{offset + epochs} of {total}"
              + (f"; resuming after its epoch {done}" if 0 < done < epochs else "")
              + ("; already finished" if done >= epochs else "") + ".")
        if done >= epochs:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        trim_history(folder, done)
        train_ds, val_ds = (_stage_dataset(cfg, splits[name], stage) for name in ("train", "val"))
        steps = steps_per_epoch(cfg, train_ds)
        if cfg.train.steps_per_epoch:
            train_ds = train_ds.repeat()
        with distribute.scope(cfg):
            if state:
                model = load_model(folder / LAST, compile=True)  # + optimizer
            else:
                keras.utils.set_random_seed(cfg.train.seed + STAGES.index(stage))
                model = _stage_model(cfg, stage)
                compile_model(model, cfg, total_steps=epochs * steps,
                              heads={} if stage == "coarse" else None)
        checkpoint = RunCheckpoint(folder, stage_monitor(cfg, stage), **checkpoint_state(state))
        lines = epoch_lines(cfg, checkpoint, heads={} if stage == "coarse" else None)
        if compact and index == 0:
            print(run_summary(cfg, splits, model), flush=True)
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=done,
                  steps_per_epoch=cfg.train.steps_per_epoch,
                  callbacks=run_callbacks(cfg, folder, checkpoint, done > 0,
                                          run_dir / LOGS / stage,
                                          [MergedHistory(cfg), *(lines if compact else []),
                                           *(callbacks or [])]),
                  shuffle=False, verbose=verbose)
    final = _publish_best(cfg)
    print(closing_line(final, run_dir, time.perf_counter() - started)
          + f"\n(best epoch {final['epoch']} of the run is in its {final['stage']} stage)")
    return final


def _stage_dataset(cfg: Config, split, stage: str):
    """A split with the stage's targets: coarse groups for `coarse`, else the classes."""
    if stage != "coarse":
        return datasets_for(cfg, split)
    groups = coarse_ids(cfg)[split.class_ids]
    return datasets_for(cfg, split, encode_targets(groups, "softmax", {}, len(cfg.data.coarse)))


def _stage_model(cfg: Config, stage: str) -> keras.Model:
    """A new model for a stage: a softmax encoder, or the combined model with its
    encoders cut from the finished encoder stages (untrained when a stage was skipped)."""
    if stage == "coarse":
        return build_model(cfg, kind="softmax", num_classes=len(cfg.data.coarse))
    if stage == "fine":
        return build_model(cfg, kind="softmax")
    previous = stage_dir(cfg, "frozen") / LAST
    if stage == "unfrozen" and cfg.train.stages.frozen:
        model = load_model(previous)
    else:
        model = build_model(cfg)
        for encoder_stage, encoder in ENCODER_OF.items():
            if getattr(cfg.train.stages, encoder_stage):
                source = load_model(stage_dir(cfg, encoder_stage) / LAST)
                load_encoder(model, encoder, source)
    set_encoders_frozen(model, stage == "frozen", cfg.train.frozen_bn)
    return model


class MergedHistory(keras.callbacks.Callback):
    """After every epoch, rewrite the run's `history.csv` and `curves.png` from the
    stages' own histories, with `stage`, `stage_epoch` and the run-wide `epoch`."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg

    def on_epoch_end(self, epoch, logs=None):
        merged = merged_history(self.cfg)
        if merged is not None:
            with atomic_path(self.cfg.run_dir / HISTORY) as tmp:
                merged.to_csv(tmp, index=False)
            plot_history(self.cfg.run_dir / HISTORY, self.cfg.run_dir / CURVES,
                         self.cfg.monitor, list(self.cfg.model.heads))


def merged_history(cfg: Config) -> pd.DataFrame | None:
    """Every finished epoch of every stage, in run order; None before the first."""
    frames = []
    for stage, offset, _ in stage_plan(cfg):
        path = stage_dir(cfg, stage) / HISTORY
        if path.is_file() and path.stat().st_size:
            df = pd.read_csv(path)
            df.insert(0, "stage_epoch", df["epoch"])
            df.insert(0, "stage", stage)
            df["epoch"] = df["stage_epoch"] + offset
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else None


def _publish_best(cfg: Config) -> dict:
    """Copy the best combined epoch to the run's `best.keras` (and the last to
    `last.keras`); write the run's `train_state.json`."""
    run_dir = cfg.run_dir
    combined = [(s, o, e) for s, o, e in stage_plan(cfg) if s in ("frozen", "unfrozen")]
    candidates = [(stage, offset, json.loads((stage_dir(cfg, stage) / STATE).read_text()))
                  for stage, offset, _ in combined]
    stage, offset, state = min(candidates, key=lambda c: rank_key(
        c[2]["best"], c[2].get("best_tie_break", float("inf"))))
    with atomic_path(run_dir / BEST) as tmp:
        shutil.copyfile(stage_dir(cfg, stage) / BEST, tmp)
    with atomic_path(run_dir / LAST) as tmp:
        shutil.copyfile(stage_dir(cfg, combined[-1][0]) / LAST, tmp)
    final = {"stage": stage, "epoch": offset + int(state["best_epoch"]),
             "best": state["best"], "best_epoch": offset + int(state["best_epoch"]),
             "monitor": state["monitor"], "stages": {s: e for s, _, e in stage_plan(cfg)}}
    atomic_write_json(run_dir / STATE, final)
    return {**final, "run_dir": str(run_dir)}
