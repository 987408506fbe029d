"""What a new, resumed or overwritten run may do with its folder: the state to resume
from, the one "same settings" check, and `history.csv` trimmed to the finished epochs.

The folder's file names, its marker, lock and what `--overwrite` clears belong to
`core.run_folder`; this module decides when (plain runs, staged runs and searches ask
here). Nothing here imports TensorFlow or Keras, so reading a run's state stays light.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from tf_twohead.config import Config, load_config
from tf_twohead.core import run_folder
from tf_twohead.core.errors import RunExistsError
from tf_twohead.core.fileio import atomic_write_text
from tf_twohead.core.run_folder import CONFIG, HISTORY, LAST, STATE

# Settings that may differ when a run or search continues: where the data lives and how
# it is read and cached, how many trials a search runs and which ones it keeps. Anything
# else changes what the saved epochs or trials mean.
MAY_CHANGE = ("data.root", "data.cache_dir", "data.workers", "data.on_bad_image",
              "data.max_image_pixels", "data.max_rows", "data.allow_single_class",
              "tune.max_trials",
              "tune.constraints")


def resumable_state(run_dir: Path) -> dict | None:
    """The state of an interrupted run in `run_dir` that training can continue, or None."""
    run_dir = Path(run_dir)
    if (run_dir / STATE).is_file() and (run_dir / LAST).is_file():
        return json.loads((run_dir / STATE).read_text())
    return None


def checkpoint_state(state: dict | None) -> dict:
    """The best-so-far of an interrupted run, as `training.loop.RunCheckpoint` arguments."""
    if not state:
        return {}
    return {"best": state["best"], "best_epoch": state.get("best_epoch"),
            "best_tie_break": state.get("best_tie_break", math.inf)}


def check_run_dir(cfg: Config, resume: bool, overwrite: bool,
                  keys=("data", "model"), clear: bool = True) -> dict | None:
    """The one rule for a run folder at the start of a plain or staged run.

    Refuses to clobber a trained run by accident; on `resume`, refuses other settings
    under `keys` than the folder's `config.yaml` and returns the folder's state (`{}` when
    a started run has no state to resume); on `overwrite`, clears everything the previous
    run produced (`run_folder.clear_run_dir`, after the ownership check). Call it while
    holding `run_folder.lock_run_dir`; `clear=False` (a data-parallel group's readers)
    makes the same checks and changes nothing.

    Returns:
        The saved state (`train_state.json`) to resume from, `{}`, or None for a new run.
    """
    run_dir = cfg.run_dir
    started = run_folder.has_trained_model(run_dir)
    if resume and started:
        check_same_settings(cfg, keys)
        return resumable_state(run_dir) or {}
    if started and not overwrite and not resume:
        raise RunExistsError(
            f"{run_dir} already holds a trained model. Pass --resume to continue it, "
            f"--overwrite to start again, or choose another exp=NAME.")
    if overwrite and clear:
        run_folder.clear_run_dir(run_dir)
    return None


def changed_settings(before: Config, after: Config, keys=("data", "model")) -> list[str]:
    """The dotted settings under `keys` (sections or `section.key`s) that differ between
    two configs, leaving out `MAY_CHANGE`."""
    old, new = _flat(before), _flat(after)
    wanted = [k for k in new if any(k == p or k.startswith(p + ".") for p in keys)]
    return [k for k in wanted if k not in MAY_CHANGE and old.get(k) != new[k]]


def check_same_settings(cfg: Config, keys=("data", "model"), saved: str = CONFIG,
                        action: str = "resume", advice: str | None = None) -> None:
    """Refuse to continue `cfg.run_dir` with other settings than it started with.

    Args:
        cfg: `Config`. The settings asked for now.
        keys: sections (`"model"`) or dotted keys (`"train.stages"`) that must not change.
        saved: str. The config file of the folder that holds the original settings.
        action: str. What is refused, for the message ("resume", "continue").
        advice: str or None. What to do instead; defaults to resuming with the same config.
    """
    path = cfg.run_dir / saved
    if not path.is_file():
        return
    diff = changed_settings(load_config(path), cfg, keys)
    if diff:
        raise RunExistsError(
            f"Cannot {action} {cfg.run_dir}: {', '.join(diff)} differ from its {saved}. "
            + (advice or "Resume with the same settings (where the data lives and how it "
               "is read may change), start again with --overwrite, or choose another exp=NAME.")
        )


def _flat(cfg: Config) -> dict:
    """`{"section.key": value}` of a config; mappings compare whole."""
    return {f"{section}.{key}": value
            for section, values in dataclasses.asdict(cfg).items() if isinstance(values, dict)
            for key, value in values.items()}


def trim_history(folder: Path, epochs: int) -> None:
    """Keep exactly the rows of the `epochs` finished epochs in `folder/history.csv`.

    An epoch whose checkpoint failed after Keras' CSVLogger wrote its row (a full disk,
    a kill between the two) is trained again on resume; without this, `history.csv`
    would hold two rows for it.
    """
    path = Path(folder) / HISTORY
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) > epochs + 1:
        atomic_write_text(path, "".join(lines[:epochs + 1]))
