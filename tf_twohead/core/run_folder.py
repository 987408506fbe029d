"""The one owner of a run folder: its file names, which model and results files it
means, who may write it, what `--overwrite` clears and what `clean` may delete.

A run folder `<output_dir>/<exp>/` (a search's trial folder, a combined run's stage
folder, a search folder) is tf-twohead's when it carries `MARKER`, written by
`claim_run_dir` into a folder it creates or finds empty. Only such a folder is ever
emptied (`clear_run_dir`, the one rule for plain, staged and tuning runs) or deleted
(`check_removable`). Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path

import filelock

from tf_twohead.core.errors import RunExistsError
from tf_twohead.core.fileio import atomic_write_json

# Every file name of a run folder.
CONFIG = "config.yaml"  # the resolved config, written first: every run is reproducible
SEARCH_CONFIG = "search.yaml"  # a search folder's resolved config
BEST = "best.keras"  # the best epoch, for inference (no optimizer state)
LAST = "last.keras"  # the last finished epoch with its optimizer state, for --resume
STATE = "train_state.json"  # finished epochs and the best so far
HISTORY = "history.csv"
CURVES = "curves.png"
LOGS = "logs"  # TensorBoard
STAGES_DIR = "stages"  # a combined run's stage folders
EXPORTS = "exports"  # `convert`'s files, with their metadata and parity reports
METRICS = "metrics.json"  # `evaluate`'s, on the run's own test split
MARKER = ".tf_twohead_run"  # this folder is tf-twohead's
LOCK = ".lock"  # held while a process writes the folder; LOCK_INFO says which one
LOCK_INFO = ".lock.json"
TRIAL_PREFIX = "trial_"  # a search's trial folders: trial_<id>, a plain id
TRIAL_FILE = "trial.json"  # Keras Tuner's record of a trial
# Keras Tuner's own files in a trial folder: a trial reset keeps them.
TUNER_FILES = (TRIAL_FILE, "checkpoint.weights.h5", "build_config.json")
# What `clean --trials` may remove from a finished trial: nothing reads them any more
# (`best.keras`, which `evaluate` and `convert` read, stays).
FINISHED_TRIAL_FILES = (LAST, "checkpoint.weights.h5")
_TRIAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a chief may hand a worker
_TRIAL_NAME = re.compile(re.escape(TRIAL_PREFIX) + _TRIAL_ID.pattern)
_KEEP = (MARKER, LOCK, LOCK_INFO)  # what clearing a folder leaves (we hold the lock)


def resolve_model(run_dir_or_model: str | Path) -> Path:
    """A run folder means its `best.keras`; a file is used as it is."""
    path = Path(run_dir_or_model)
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise FileNotFoundError(f"No model at {path}: pass a run folder, a .keras or a "
                                ".tflite file.")
    return path


def export_path(model_path: Path, quantize: str, fmt: str = "tflite") -> Path:
    """`<run>/best.keras` -> `<run>/exports/best.tflite` (float32), `best.<mode>.tflite`
    or `best.onnx`: every export of a run, with its metadata and parity report, in one
    folder."""
    suffix = f".{fmt}" if quantize == "none" else f".{quantize}.{fmt}"
    return Path(model_path).parent / EXPORTS / (Path(model_path).stem + suffix)


def run_folder_of(model_path: Path) -> Path:
    """The run folder a model file belongs to: its own folder, or for a file in a run's
    `exports/`, the run's."""
    folder = Path(model_path).resolve().parent
    return folder.parent if folder.name == EXPORTS else folder


def result_file(model_path: Path, name: str, split: str = "test",
                dataset: str | None = None) -> Path:
    """A file `evaluate` writes beside a model: `metrics.json` for a run's `best.keras` on
    its own test split; `metrics_val.json` on val; `metrics@other.json` on another
    dataset; `best.tflite.metrics.json` for another model file. Results on one split or
    dataset never overwrite another's."""
    stem, dot, ext = name.partition(".")
    tag = ("" if split == "test" else f"_{split}") + (f"@{dataset}" if dataset else "")
    prefix = "" if model_path.name == BEST else f"{model_path.name}."
    return model_path.parent / f"{prefix}{stem}{tag}{dot}{ext}"


def metrics_file(model_path: Path, split: str = "test", dataset: str | None = None) -> Path:
    """Where `evaluate` writes the metrics of a model on a split (of another dataset)."""
    return result_file(model_path, METRICS, split, dataset)


def test_metrics_of(path: str | Path) -> Path:
    """Where `compare` reads the test metrics of a run folder, a model file or a metrics
    `.json` file."""
    p = Path(path)
    if p.suffix == ".json":
        return p
    return p / METRICS if p.is_dir() else metrics_file(p)


def has_trained_model(run_dir: Path) -> bool:
    """Whether a folder holds a run's results: a model, a state or a staged run."""
    run_dir = Path(run_dir)
    return any((run_dir / name).exists() for name in (BEST, STATE, STAGES_DIR))


def claim_run_dir(run_dir: Path) -> Path:
    """Create `run_dir` (and its parents); mark it as tf-twohead's own when this call
    creates it or finds it empty (a folder that already holds other files is not marked)."""
    run_dir = Path(run_dir)
    new = not run_dir.exists() or not any(run_dir.iterdir())
    run_dir.mkdir(parents=True, exist_ok=True)
    if new:
        _mark(run_dir)
    return run_dir


def _mark(folder: Path) -> None:
    """Write the marker that makes `folder` tf-twohead's (the one thing `is_ours` reads)."""
    atomic_write_json(folder / MARKER, {"created_by": "tf-twohead",
                                        "created": time.strftime("%Y-%m-%d %H:%M:%S")})


def is_ours(folder: Path) -> bool:
    """A real folder (not a symlink to one) that carries tf-twohead's marker file."""
    folder = Path(folder)
    return (folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file()
            and not (folder / MARKER).is_symlink())


def check_ours(run_dir: Path, action: str = "--overwrite: refusing to delete the contents of"
               ) -> None:
    """Refuse (`RunExistsError`) to delete anything in an existing folder that
    tf-twohead did not create, before touching it."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not is_ours(run_dir):
        raise RunExistsError(
            f"{action} {run_dir}: tf-twohead did not create it (it has no {MARKER} file, "
            "or it is a symlink). Remove it yourself if it is yours to remove, or choose "
            "another exp=NAME or output_dir.")


def clear_run_dir(run_dir: Path, keep: tuple[str, ...] = (), why: str = "--overwrite") -> None:
    """Empty a run, staged run or search folder for `--overwrite`: everything the run
    produced (models, state, history, curves, logs, stages, trials, metrics, reports,
    exports), only if tf-twohead created the folder.

    Says what it removes, and refuses a folder without `MARKER` (a user's own folder
    that `exp` or `output_dir` happen to name), leaving it untouched. Symlinks inside are
    removed, never followed. The marker and the lock stay: call it while holding
    `lock_run_dir`.

    Args:
        run_dir: Path. The folder.
        keep: names that stay too (a trial reset keeps Keras Tuner's `TUNER_FILES`).
        why: str. What the message says clears it.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    check_ours(run_dir, f"{why}: refusing to delete the contents of")
    doomed = [p for p in run_dir.iterdir() if p.name not in (*_KEEP, *keep)]
    files = [f for p in doomed for f in ([p] if p.is_symlink() or not p.is_dir()
                                         else p.rglob("*"))
             if f.is_file() or f.is_symlink()]
    if files:
        size = sum(f.lstat().st_size for f in files)
        print(f"{why}: removing {len(files)} files ({size / 1e6:.1f} MB) from "
              f"{run_dir}.", flush=True)
    for path in doomed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def check_trial_id(trial_id) -> str:
    """A trial id from the chief (untrusted input): letters, digits, `_` and `-` only, so
    `trial_<id>` can only ever name a folder directly inside the search folder."""
    trial_id = str(trial_id)
    if not _TRIAL_ID.fullmatch(trial_id):
        raise RunExistsError(f"Refusing trial id {trial_id[:80]!r} from the chief: a trial "
                             "id is 1-64 letters, digits, '_' or '-'. Is --chief the search's "
                             "own chief?")
    return trial_id


def claim_trial_dir(trial_dir: Path, search_dir: Path | None = None) -> Path:
    """Mark a search's trial folder as tf-twohead's: only a `trial_<plain id>` folder
    directly inside a search folder that is ours (and is `search_dir`, when given).
    Keras Tuner writes its `trial.json` there before the trial runs, so `claim_run_dir`
    would find it not empty; and the trial id comes from the chief, so it is checked as
    untrusted input before anything is written or cleared."""
    raw, trial_dir = str(trial_dir), Path(trial_dir)
    inside = search_dir is None or (
        trial_dir.parent.resolve() == Path(search_dir).resolve())
    if (".." in Path(raw).parts or not inside or not _TRIAL_NAME.fullmatch(trial_dir.name)
            or not is_ours(trial_dir.parent) or (trial_dir.exists() and (
                trial_dir.is_symlink() or not trial_dir.is_dir()))):
        raise RunExistsError(f"{trial_dir} is not a trial folder of a tf-twohead search "
                             f"({TRIAL_PREFIX}<id> inside a folder with {MARKER}); not "
                             "training into it.")
    trial_dir.mkdir(exist_ok=True)
    if not (trial_dir / MARKER).is_file():
        _mark(trial_dir)
    return trial_dir


def is_locked(run_dir: Path) -> str | None:
    """Who writes `run_dir` now (a description), or None when nobody holds its lock."""
    path = Path(run_dir) / LOCK
    if not path.is_file():
        return None
    lock = filelock.FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return _holder(Path(run_dir))
    lock.release()
    return None


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


def check_removable(folder: Path) -> None:
    """What `clean` may delete whole: a real folder tf-twohead made (its marker), that
    nobody is writing now. Anything else is a `RunExistsError`, before touching it."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise RunExistsError(f"{folder} is not a folder (or is a symlink); not removing it.")
    if not is_ours(folder):
        raise RunExistsError(f"{folder} is not a folder tf-twohead made (no {MARKER} file); "
                             "not removing it. Remove it yourself if it is yours to remove.")
    holder = is_locked(folder)
    if holder:
        raise RunExistsError(f"{folder} is being written by {holder}; not removing it. "
                             "Wait for it to finish or stop it first.")
