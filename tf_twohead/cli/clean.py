"""`tf-twohead clean`: find what runs leave on disk, say what it is and how big, and
remove it (or only list it).

- run and search folders named on the command line: only folders tf-twohead made (its
  marker, `core.run_folder.check_removable`), never a symlink, never one being written;
- decode caches (`<split>-<size>px-<hash>/`) whose CSV or images changed or are gone, or
  every cache (they are rebuilt on demand), wherever `data.cache_dir` put them: the
  default `<output_dir>/cache`, every cache folder the runs and searches under
  `<output_dir>` were configured with, and `--cache-dir DIR`;
- finished search trials' `last.keras` and Keras Tuner checkpoints (`best.keras`, which
  `evaluate` and `convert` read, stays).

Symlinks are never followed: a symlinked cache folder, trial folder or file is skipped.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tf_twohead.config import load_config
from tf_twohead.core import run_folder
from tf_twohead.core.defaults import MAX_SPLIT_ROWS
from tf_twohead.core.errors import ConfigError
from tf_twohead.core.run_folder import (
    CONFIG,
    FINISHED_TRIAL_FILES,
    SEARCH_CONFIG,
    TRIAL_FILE,
    TRIAL_PREFIX,
)
from tf_twohead.data.cache import cache_folder
from tf_twohead.data.splits import read_split

CACHE_NAME = re.compile(r"\w+-\d+px-[0-9a-f]{16}")  # data.cache.cache_folder's names
CACHE_FILES = re.compile(r"(images\.npy|meta\.json|\..*\.tmp.*)")  # what a cache holds


@dataclass(frozen=True)
class Item:
    path: Path
    bytes: int
    why: str


def size_of(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def run_items(folders: list[str]) -> list[Item]:
    """Run or search folders to remove whole; refuses, before removing anything, a
    folder tf-twohead did not make, a symlink, or a folder a process is writing."""
    items = []
    for name in folders:
        path = Path(name)
        if not path.is_dir():
            raise FileNotFoundError(f"No run folder {path}")
        run_folder.check_removable(path)
        items.append(Item(path, size_of(path), "run folder"))
    return items


def cache_roots(output_dir: Path, extra: list[str] = ()) -> list[Path]:
    """Every folder decode caches may be in: `<output_dir>/cache`, the `data.cache_dir`
    of each run and search under `output_dir`, and `extra`."""
    roots = [Path(output_dir) / "cache", *map(Path, extra)]
    for saved in sorted([*Path(output_dir).glob(f"*/{CONFIG}"),
                         *Path(output_dir).glob(f"*/{SEARCH_CONFIG}")]):
        try:
            roots.append(load_config(saved).cache_dir)
        except (ConfigError, OSError):
            continue  # not a config we can read: its caches are not ours to judge
    unique = {}
    for root in roots:
        if root.is_dir() and not root.is_symlink():
            unique.setdefault(root.resolve(), root)
    return list(unique.values())


def cache_items(output_dir: Path, everything: bool = False,
                cache_dirs: list[str] = ()) -> list[Item]:
    """Decode caches wherever the runs put them: the stale ones, or all of them."""
    items = []
    for root in cache_roots(output_dir, cache_dirs):
        for folder in sorted(root.iterdir()):
            if not _is_cache(folder):
                continue
            why = stale(folder)
            if why or everything:
                items.append(Item(folder, size_of(folder), why or "current (rebuilt on demand)"))
    return items


def _is_cache(folder: Path) -> bool:
    """A real folder named and filled as `data.cache` makes them (never a symlink)."""
    return (CACHE_NAME.fullmatch(folder.name) is not None and folder.is_dir()
            and not folder.is_symlink()
            and all(CACHE_FILES.fullmatch(p.name) and not p.is_symlink() and p.is_file()
                    for p in folder.iterdir()))


def stale(folder: Path) -> str | None:
    """Why a cache folder can no longer be used, or None if it matches its CSV today."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return "incomplete (a build that was interrupted)"
    csv = meta.get("csv") if isinstance(meta, dict) else None
    if not csv:
        return "from an older tf-twohead (no record of its dataset)"
    label = f"{meta.get('dataset', '?')} {meta.get('split', '')}".strip()
    if not Path(csv).is_file():
        return f"its CSV is gone ({csv})"
    try:
        rows, _ = read_split(csv, meta.get("classes") or 1 << 30,
                             max(MAX_SPLIT_ROWS, int(meta.get("rows", 0))))
        expected = cache_folder(folder.parent, Path(csv), rows, meta["split"], meta["size"],
                                meta.get("max_pixels", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return f"{label}: its CSV or images changed"
    return None if expected.name == folder.name else f"{label}: its CSV or images changed"


def trial_items(output_dir: Path) -> list[Item]:
    """Checkpoints of finished trials that nothing reads any more (real files in real
    trial folders of searches tf-twohead made)."""
    items = []
    for search in sorted(p.parent for p in Path(output_dir).glob(f"*/{SEARCH_CONFIG}")):
        if not run_folder.is_ours(search):
            continue
        for trial in sorted(search.glob(f"{TRIAL_PREFIX}*")):
            if trial.is_symlink() or not trial.is_dir():
                continue
            try:
                done = json.loads((trial / TRIAL_FILE).read_text())["status"] == "COMPLETED"
            except (OSError, ValueError, KeyError, TypeError):
                done = False
            for name in FINISHED_TRIAL_FILES if done else ():
                path = trial / name
                if path.is_file() and not path.is_symlink():
                    items.append(Item(path, size_of(path), "finished trial"))
    return items


def remove(items: list[Item], dry_run: bool = False) -> int:
    """Print what `items` are and their sizes; remove them unless `dry_run`. Returns bytes."""
    total = sum(item.bytes for item in items)
    verb = "Would remove" if dry_run else "Removing"
    if not items:
        print("Nothing to remove.")
        return 0
    print(f"{verb} {len(items)} item(s), {total / 1e6:,.1f} MB:")
    for item in items:
        print(f"  {item.bytes / 1e6:9,.1f} MB  {item.path}  ({item.why})")
        if not dry_run:
            if item.why == "run folder":
                run_folder.check_removable(item.path)  # again: a run may have started since
            if item.path.is_dir() and not item.path.is_symlink():
                shutil.rmtree(item.path)
            else:
                item.path.unlink()
    return total
