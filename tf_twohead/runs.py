"""The run folder: its state file, the one best-epoch rule, the one "same settings"
check, and what a new, resumed or overwritten run may do with a folder.

A run folder `<output_dir>/<exp>/` (a search's trial folder, a combined run's stage
folder) holds `config.yaml`, `last.keras`, `best.keras` and `train_state.json`, whose
`epoch` counts finished epochs. Nothing here imports TensorFlow or Keras, so reading
results (a search's trials, a run's state) stays light.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path

import filelock

from tf_twohead.config import Config, load_config
from tf_twohead.errors import RunExistsError
from tf_twohead.fileio import atomic_write_json, atomic_write_text

STATE_FILE = "train_state.json"
# Written into every folder tf-twohead creates for a run or a search; `--overwrite`
# deletes a folder only when it carries this file.
MARKER = ".tf_twohead_run"
LOCK = ".lock"  # held while a process writes the folder; LOCK_INFO says which one
LOCK_INFO = ".lock.json"
TIE_BREAK = "val_loss"  # among epochs with an equal monitored score, the lowest wins
# Settings that may differ when a run or search continues: where the data lives and how
# it is read and cached, how many trials a search runs and which ones it keeps. Anything
# else changes what the saved epochs or trials mean.
MAY_CHANGE = ("data.root", "data.cache_dir", "data.workers", "data.on_bad_image",
              "data.max_image_pixels", "data.allow_single_class", "tune.max_trials",
              "tune.constraints")

__all__ = ["MARKER", "MAY_CHANGE", "STATE_FILE", "TIE_BREAK", "RunExistsError", "best_row",
           "changed_settings", "check_ours", "check_run_dir", "check_same_settings",
           "checkpoint_state", "claim_run_dir", "clear_run_dir", "lock_run_dir", "rank_key",
           "resumable_state", "trim_history"]


def rank_key(score: float, tie_break: float, maximize: bool = True) -> tuple[float, float]:
    """The one rule that picks a best epoch, stage or trial, as a sort key (lower wins).

    The best has the highest `score` (the lowest when not `maximize`); among equal
    scores, the lowest `tie_break` (validation loss for epochs, file size for trials).
    On a hard task the monitored F1 can stay 0.0 for several epochs, and a
    first-epoch-wins rule would keep an untrained model for good. A NaN score never wins.
    """
    score = float(score)
    if math.isnan(score):
        return (math.inf, math.inf)
    return (-score if maximize else score, float(tie_break))


def best_row(table, score: str, tie_break: str = TIE_BREAK, maximize: bool = True):
    """The row of a DataFrame that `rank_key` picks (the first one among exact ties)."""
    keys = [rank_key(s, t, maximize) for s, t in zip(table[score], table[tie_break])]
    return table.iloc[min(range(len(keys)), key=keys.__getitem__)]


def resumable_state(run_dir: Path) -> dict | None:
    """The state of an interrupted run in `run_dir` that training can continue, or None."""
    run_dir = Path(run_dir)
    if (run_dir / STATE_FILE).is_file() and (run_dir / "last.keras").is_file():
        return json.loads((run_dir / STATE_FILE).read_text())
    return None


def checkpoint_state(state: dict | None) -> dict:
    """The best-so-far of an interrupted run, as `fitting.RunCheckpoint` arguments."""
    if not state:
        return {}
    return {"best": state["best"], "best_epoch": state.get("best_epoch"),
            "best_tie_break": state.get("best_tie_break", math.inf)}


def check_run_dir(cfg: Config, resume: bool, overwrite: bool) -> dict | None:
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


def changed_settings(before: Config, after: Config, keys=("data", "model")) -> list[str]:
    """The dotted settings under `keys` (sections or `section.key`s) that differ between
    two configs, leaving out `MAY_CHANGE`."""
    old, new = _flat(before), _flat(after)
    wanted = [k for k in new if any(k == p or k.startswith(p + ".") for p in keys)]
    return [k for k in wanted if k not in MAY_CHANGE and old.get(k) != new[k]]


def check_same_settings(cfg: Config, keys=("data", "model"), saved: str = "config.yaml",
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


def claim_run_dir(run_dir: Path) -> Path:
    """Create `run_dir` (and its parents); mark it as tf-twohead's own when this call
    creates it or finds it empty (a folder that already holds other files is not marked)."""
    run_dir = Path(run_dir)
    new = not run_dir.exists() or not any(run_dir.iterdir())
    run_dir.mkdir(parents=True, exist_ok=True)
    if new:
        atomic_write_json(run_dir / MARKER, {"created_by": "tf-twohead",
                                             "created": time.strftime("%Y-%m-%d %H:%M:%S")})
    return run_dir


def check_ours(run_dir: Path) -> None:
    """Refuse (`RunExistsError`) to delete anything in an existing folder that
    tf-twohead did not create, before touching it."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not (run_dir / MARKER).is_file():
        raise RunExistsError(
            f"--overwrite: refusing to delete the contents of {run_dir}: tf-twohead did not "
            f"create it (it has no {MARKER} file). Remove it yourself if it is yours to "
            "remove, or choose another exp=NAME or output_dir.")


def clear_run_dir(run_dir: Path) -> None:
    """Empty a run or search folder for `--overwrite`, only if tf-twohead created it.

    Says what it removes, and refuses a folder without `MARKER` (a user's own folder
    that `exp` or `output_dir` happen to name), leaving it untouched. The marker and the
    lock stay: call it while holding `lock_run_dir`.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    check_ours(run_dir)
    keep = {MARKER, LOCK, LOCK_INFO}
    doomed = [p for p in run_dir.iterdir() if p.name not in keep]
    files = [f for p in doomed for f in ([p] if not p.is_dir() else p.rglob("*"))
             if f.is_file() or f.is_symlink()]
    size = sum(f.lstat().st_size for f in files)
    print(f"--overwrite: removing {len(files)} files ({size / 1e6:.1f} MB) from {run_dir}.",
          flush=True)
    for path in doomed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextlib.contextmanager
def lock_run_dir(run_dir: Path, what: str = "run"):
    """Hold the run folder's lock while this process writes it.

    A second writer (another `train` into the same folder, a second search or chief)
    fails at once with a `RunExistsError` naming the process that holds it. The lock is
    an OS file lock (`filelock`), released when the process ends, however it ends.
    """
    run_dir = claim_run_dir(run_dir)
    lock = filelock.FileLock(str(run_dir / LOCK), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunExistsError(f"{run_dir} is being written by another {_holder(run_dir)}. "
                             "Wait for it to finish, stop it, or choose another "
                             "exp=NAME.") from None
    try:
        atomic_write_json(run_dir / LOCK_INFO, {
            "what": what, "pid": os.getpid(), "host": socket.gethostname(),
            "command": shlex.join(sys.argv), "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        yield run_dir
    finally:
        (run_dir / LOCK_INFO).unlink(missing_ok=True)
        lock.release()


def _holder(run_dir: Path) -> str:
    try:
        info = json.loads((run_dir / LOCK_INFO).read_text())
        return (f"{info['what']} (pid {info['pid']} on {info['host']}, since {info['since']}: "
                f"{info['command']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "process"


def trim_history(folder: Path, epochs: int) -> None:
    """Keep exactly the rows of the `epochs` finished epochs in `folder/history.csv`.

    An epoch whose checkpoint failed after Keras' CSVLogger wrote its row (a full disk,
    a kill between the two) is trained again on resume; without this, `history.csv`
    would hold two rows for it.
    """
    path = Path(folder) / "history.csv"
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) > epochs + 1:
        atomic_write_text(path, "".join(lines[:epochs + 1]))
