"""Train the model a `Config` describes into its run folder: `train(cfg)`.

A plain run (two-head, softmax) is one `training.loop.fit_run`; `model.kind: combined` is
four staged fits (`training.staged.train_staged`). The run folder `<output_dir>/<exp>/`
receives `config.yaml` first (before any data is read), then per finished epoch
`last.keras`, `best.keras`, `train_state.json`, `history.csv`, `curves.png` and
TensorBoard logs (`training.loop`); `--resume` continues after the last finished epoch.

This module sits on top of the training stack: `recipe` (compile, optimizer,
schedules), `core.run_folder` (the folder's files, lock and marker), `resume` (new,
resumed or overwritten runs), `loop` (the epochs loop) and `staged`. Nothing below
imports it.

Example (your own script):

>>> cfg = tt.load_config("configs/two_head.yaml", ["data.root=demo_data"])
>>> state = tt.train(cfg)
>>> state["best_epoch"], state["run_dir"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile

import keras

from tf_twohead.config import Config, dump, with_absolute_paths
from tf_twohead.core.api import public
from tf_twohead.core.errors import ConfigError, RunExistsError
from tf_twohead.core.run_folder import CONFIG, LAST, STATE, lock_run_dir
from tf_twohead.core.runtime import select_backend, warn_if_onednn_off
from tf_twohead.data.pipeline import datasets_for
from tf_twohead.keras_files.load import load_model
from tf_twohead.pretrained.load import build_model, fetch_pretrained
from tf_twohead.pretrained.warm_start import source_of
from tf_twohead.training import distribute, processes
from tf_twohead.training.loop import fit_run, load_run_splits
from tf_twohead.training.progress import run_summary
from tf_twohead.training.resume import check_run_dir
from tf_twohead.training.staged import train_staged


@public
def train(cfg: Config, resume: bool = False, overwrite: bool = False,
          verbose: int | str | None = None, callbacks: list | None = None) -> dict:
    """Train the model a `Config` describes and fill its run folder.

    Args:
        cfg: `Config`. The resolved experiment configuration.
        resume: bool. Continue an interrupted run from `last.keras` and its state.
        overwrite: bool. Start again in a run folder that already has a model.
        verbose: None (the default): a start summary, one compact line per epoch and
            a closing line; 0: silent; 1, 2, "auto": Keras' own progress output.
        callbacks: list or None. Extra Keras callbacks, run after the run's own.

    Returns:
        The run state: `{"epoch", "best", "best_epoch", "monitor", "run_dir"}`.
    """
    select_backend(cfg.train.backend)  # a no-op when Keras already runs on it, else why
    if cfg.train.distribution == "data_parallel" and not processes.joined():
        raise ConfigError("train.distribution=data_parallel: this process has not joined a "
                          "group. Start it with tf-twohead train --num-processes N "
                          "--process-id I --coordinator HOST:PORT (docs/distributed.md).")
    if cfg.model.kind == "combined":  # four staged fits, one run folder
        return train_staged(cfg, resume, overwrite, verbose, callbacks)
    if cfg.model.init_from and not resume:  # before --overwrite could clear it
        source_of(cfg.model.init_from, cfg.run_dir)
    if keras.backend.backend() == "tensorflow":
        warn_if_onednn_off()
    group = processes.current()  # one process, or this one's place in a data-parallel group
    # One writer per run folder: the lock, and in a group process 0 alone. The others
    # make the same checks, read-only, so that every process stops on the same error.
    with lock_run_dir(cfg.run_dir) if group.writer else contextlib.nullcontext():
        state = check_run_dir(cfg, resume, overwrite, clear=group.writer)
        if state == {}:
            raise RunExistsError(f"{cfg.run_dir} has no {STATE} or {LAST} to resume from. "
                                 "Start again with --overwrite, or choose another exp=NAME.")
        return _train(cfg, state, verbose, callbacks, group)


def _train(cfg: Config, state: dict | None, verbose, callbacks, group) -> dict:
    run_dir = cfg.run_dir
    if group.writer:
        dump(with_absolute_paths(cfg), run_dir / CONFIG)  # first: every run reproducible

    if not state:  # download/convert pretrained weights now: fail before the data work
        fetch_pretrained(cfg.model, cfg.data.img_size)
    splits = load_run_splits(cfg)
    train_ds = datasets_for(cfg, splits["train"], shard=group.shard)
    val_ds = datasets_for(cfg, splits["val"])
    # Seeded before a load too: Keras creates the variables with their initializers before
    # it reads the file, and in a data-parallel group every process must create the same.
    keras.utils.set_random_seed(cfg.train.seed)
    with distribute.scope(cfg):
        if state:
            model = load_model(run_dir / LAST, compile=True)  # optimizer state
        else:
            model = build_model(cfg)  # compiled in fit_run, once its trainable set is known
    if not group.writer:
        return _train_beside(model, cfg, train_ds, val_ds, state, callbacks, group)
    if verbose is None:
        print(run_summary(cfg, splits, model), flush=True)
    return fit_run(model, cfg, train_ds, val_ds, state, verbose, callbacks)


def _train_beside(model, cfg: Config, train_ds, val_ds, state, callbacks, group) -> dict:
    """A data-parallel group's other processes: the same epochs and callbacks as process
    0 (under JAX every variable a save creates is a collective, so they must save too),
    into a scratch folder removed at the end, silently."""
    prefix = f"tf_twohead_process{group.process_id}_"
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        local = dataclasses.replace(cfg, output_dir=scratch)
        local.run_dir.mkdir(parents=True)
        fit_run(model, local, train_ds, val_ds, state, 0, callbacks, writer=False)
    return {"epoch": cfg.train.epochs, "run_dir": str(cfg.run_dir)}
