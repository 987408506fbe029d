"""`tf-twohead predict`: many inputs in, a decision and a probability per head out.

Inputs may be image files, folders (searched recursively) and glob patterns; the model
a run folder (its `best.keras`), a `.keras`, `.tflite` or `.onnx` file. Decisions use
the model's own thresholds (an export's metadata's, else `core.decisions`' default;
argmax for softmax models), and softmax models also name their class. A `.tflite` runs
with LiteRT alone, an `.onnx` with ONNX Runtime: nothing here imports TensorFlow.
"""

from __future__ import annotations

import csv
import glob
from pathlib import Path

import numpy as np

from tf_twohead.core.defaults import SOFTMAX_OUTPUT
from tf_twohead.core.fileio import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def expand_images(items: list[str]) -> list[Path]:
    """Image files from files, folders (recursively, by suffix) and glob patterns; a
    symlinked folder is never descended into, so a link loop cannot hang the search."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                            and p.is_file())
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(_glob(item))
            if not matches:
                raise FileNotFoundError(f"No file matches {item}")
            found += [p for p in matches if p.is_file()]
        else:
            raise FileNotFoundError(f"No image or folder {item}")
    if not found:
        raise FileNotFoundError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {' '.join(items)}")
    return found


def _glob(pattern: str):
    """The files a glob pattern matches, through pathlib, whose `**` never descends into
    a symlinked folder (the `glob` module's follows a symlink to `.` for ever)."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:first]) if first else Path(".")
    return base.glob(str(Path(*parts[first:])))


def predict_one(predictor, path: Path) -> dict:
    """`{"path", "probabilities": {head: p}, "decisions": {head: bool}[, "class"]}`."""
    scores = predictor.predict_file(path)
    arrays = {name: np.asarray([value]) for name, value in scores.items()}  # a batch of one
    decisions = predictor.decisions(arrays)
    row = {"path": str(path),
           "probabilities": {h: round(float(scores[h]), 3) for h in predictor.heads},
           "decisions": {h: bool(decisions[h][0]) for h in predictor.heads}}
    if SOFTMAX_OUTPUT in scores:
        probs = scores[SOFTMAX_OUTPUT]
        best = max(range(len(probs)), key=probs.__getitem__)
        row["class"] = predictor.class_names[best]
        row["class_probability"] = round(float(probs[best]), 3)
    return row


def line(row: dict) -> str:
    """One readable line: `photo.jpg  main: yes 0.981  aux: no 0.004`."""
    parts = [row["path"]]
    if "class" in row:
        parts.append(f"class: {row['class']} {row['class_probability']:.3f}")
    parts += [f"{h}: {'yes' if row['decisions'][h] else 'no'} {p:.3f}"
              for h, p in row["probabilities"].items()]
    return "  ".join(parts)


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """One row per image: path, each head's decision and probability, the class."""
    heads = list(rows[0]["probabilities"]) if rows else []
    header = ["path", *(["class", "class_probability"] if rows and "class" in rows[0] else []),
              *[f"{h}_{k}" for h in heads for k in ("decision", "probability")]]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            cls = [row["class"], row["class_probability"]] if "class" in row else []
            writer.writerow([row["path"], *cls, *[
                v for h in heads for v in (int(row["decisions"][h]), row["probabilities"][h])]])
    return Path(path)
