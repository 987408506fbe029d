"""`tf-twohead clean`: find what runs leave on disk, say what it is and how big, and
remove it (or only list it).

- run and search folders named on the command line (only folders tf-twohead made);
- decode caches (`<output_dir>/cache/<split>-<size>px-<hash>/`) whose CSV or images
  changed or are gone, or every cache (they are rebuilt on demand);
- finished search trials' `last.keras` and Keras Tuner checkpoints (`best.keras`, which
  `evaluate` and `convert` read, stays).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tf_twohead.data.cache import cache_folder
from tf_twohead.data.splits import read_split
from tf_twohead.errors import RunExistsError
from tf_twohead.runs import MARKER, STATE_FILE

TRIAL_FILES = ("last.keras", "checkpoint.weights.h5")


@dataclass(frozen=True)
class Item:
    path: Path
    bytes: int
    why: str


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def run_items(folders: list[str]) -> list[Item]:
    """Run or search folders to remove whole; refuses a folder tf-twohead did not make."""
    items = []
    for name in folders:
        path = Path(name)
        if not path.is_dir():
            raise FileNotFoundError(f"No run folder {path}")
        ours = any((path / f).is_file() for f in (MARKER, STATE_FILE, "config.yaml",
                                                  "search.yaml"))
        if not ours:
            raise RunExistsError(f"{path} is not a tf-twohead run or search folder (no "
                                 f"{MARKER}, config.yaml or search.yaml); not removing it.")
        items.append(Item(path, size_of(path), "run folder"))
    return items


def cache_items(output_dir: Path, everything: bool = False) -> list[Item]:
    """Decode caches under `<output_dir>/cache`: the stale ones, or all of them."""
    items = []
    for folder in sorted((output_dir / "cache").glob("*-*px-*")):
        why = stale(folder)
        if why or everything:
            items.append(Item(folder, size_of(folder), why or "current (rebuilt on demand)"))
    return items


def stale(folder: Path) -> str | None:
    """Why a cache folder can no longer be used, or None if it matches its CSV today."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return "incomplete (a build that was interrupted)"
    csv = meta.get("csv")
    if not csv:
        return "from an older tf-twohead (no record of its dataset)"
    label = f"{meta.get('dataset', '?')} {meta.get('split', '')}".strip()
    if not Path(csv).is_file():
        return f"its CSV is gone ({csv})"
    rows, _ = read_split(csv, meta.get("classes") or 1 << 30)
    expected = cache_folder(folder.parent, Path(csv), rows, meta["split"], meta["size"],
                            meta.get("max_pixels", 0))
    return None if expected.name == folder.name else f"{label}: its CSV or images changed"


def trial_items(output_dir: Path) -> list[Item]:
    """Checkpoints of finished trials that nothing reads any more."""
    items = []
    for search in sorted(p.parent for p in output_dir.glob("*/search.yaml")):
        for trial in sorted(search.glob("trial_*")):
            try:
                done = json.loads((trial / "trial.json").read_text())["status"] == "COMPLETED"
            except (OSError, ValueError, KeyError):
                done = False
            for name in TRIAL_FILES if done else ():
                if (trial / name).is_file():
                    items.append(Item(trial / name, size_of(trial / name), "finished trial"))
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
            if item.path.is_dir():
                shutil.rmtree(item.path)
            else:
                item.path.unlink()
    return total
