"""`audit(root)`: the data audit a careful engineer runs before trusting a result.

Over the train, val and test CSVs, through the one decoder and the decode cache:
exact copies and edited ones (pHash candidates confirmed by a pixel check; leakage
across splits first), label conflicts inside duplicate groups, likely label errors
(cleanlab, with out-of-fold or a model's probabilities), and the balance and shape of
each split. Writes, in `out` (default `ROOT/audit/`): `duplicates.csv`,
`label_issues.csv`, `balance.csv`, `summary.md`, `leakage.png`, `label_issues.png`;
optionally a cleaned copy of the dataset.

Example:

>>> result = audit("demo_data/fm", folds=3, epochs=2)
>>> result.duplicates[result.duplicates.leakage].head()
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd

from tf_twohead.auditing import clean_copy, findings, labels, sheets, verify
from tf_twohead.auditing.near import DEFAULT_THRESHOLD, PER_IMAGE
from tf_twohead.auditing.options import SPLITS, check_options
from tf_twohead.auditing.summary import findings_lines, summary_markdown
from tf_twohead.auditing.verify import DEFAULT_SIMILARITY
from tf_twohead.config import load_config
from tf_twohead.core.api import public
from tf_twohead.core.defaults import SOFTMAX_OUTPUT
from tf_twohead.core.errors import DataError
from tf_twohead.core.fileio import atomic_write_text
from tf_twohead.data.cache import describe, keep_usable, scan_split
from tf_twohead.data.layouts import csv_heads
from tf_twohead.data.problems import raise_bad_rows
from tf_twohead.data.splits import split_csv

MARKER = ".tf_twohead_audit"  # an audit folder: its report files may be replaced
OUTPUTS = ("duplicates.csv", "label_issues.csv", "balance.csv", "summary.md", "leakage.png",
           "label_issues.png")


@dataclasses.dataclass
class AuditResult:
    """What `audit` found, as DataFrames, and where it wrote its files."""

    duplicates: pd.DataFrame
    label_issues: pd.DataFrame | None
    model_quality: pd.DataFrame | None  # how well the label-judging models answer
    balance: pd.DataFrame
    shapes: pd.DataFrame
    summary: str
    out: Path
    clean: dict | None = None
    headline: list[str] = dataclasses.field(default_factory=list)  # the findings, worst first


@public
def audit(root, config=None, out=None, *, threshold: int = DEFAULT_THRESHOLD,
          min_similarity: float = DEFAULT_SIMILARITY, per_image: int = PER_IMAGE,
          folds: int = 0, epochs: int = 3,
          img_size: int = 64, model=None, write_clean=None, drop_label_issues: bool = False,
          overrides: list[str] | None = None, progress: bool = True) -> AuditResult:
    """Audit a dataset folder (`train.csv`, `val.csv`, `test.csv` and the images).

    Args:
        root: str. The dataset folder.
        config: str or None. A config file or preset for the class names, heads, decode
            policy and (with `folds`) the recipe; defaults to the `two_head` preset (with,
            for per-head CSVs, the heads their header names).
        out: str or None. Output folder; defaults to `ROOT/audit`.
        threshold: int. Near-duplicate candidates: pHash Hamming distance, in bits of 64.
        min_similarity: float. The pixel check a candidate pair must pass to count as a
            copy (`verify.similarity`, in [-1, 1]; -1: pHash alone, no check).
        per_image: int. Candidate pairs checked per image, its closest (more: better
            recall where look-alikes crowd, slower).
        folds: int. Train this many models on the other folds to score each image out
            of sample (0: no label-error audit unless `model`).
        epochs: int. Epochs of each fold's model.
        img_size: int. Image side for hashing and the fold models (cheap: 64).
        model: str or None. A run folder or model file whose probabilities are used
            instead of folds (in-sample for its training split).
        write_clean: str or None. Write a copy of the dataset without the leakage
            (and, with `drop_label_issues`, the flagged rows) there.
        overrides: list of str. `key=value` config overrides.
        progress: bool. Print what it does.
    """
    say = print if progress else (lambda *a, **k: None)
    check_options(root, threshold=threshold, min_similarity=min_similarity,
                  per_image=per_image, folds=folds, model=model, write_clean=write_clean,
                  drop_label_issues=drop_label_issues, out=out)
    start = time.perf_counter()
    root = Path(root)
    predictor = None
    if model is not None:
        from tf_twohead.core.run_folder import resolve_model
        from tf_twohead.inference.predictor import Predictor

        predictor = Predictor(resolve_model(model))
        img_size = predictor.img_size
    overrides = [*_heads_of_csv(root, config), *(overrides or [])]
    cfg = load_config(config or "two_head", [
        f"data.root={root}", f"data.img_size={img_size}", *overrides])
    out = Path(out) if out else root / "audit"
    splits = _load(cfg, root, progress)
    decoded = time.perf_counter()
    names = list(cfg.data.class_names)
    heads = dict(cfg.model.heads) if predictor is None else predictor.heads
    say(f"Hashing {sum(len(s) for s in splits.values()):,} images (pHash) and checking "
        "the candidate pairs' pixels", flush=True)
    pooled = labels.pool(splits)  # every split's images, in the table's row order
    gray = verify.gray(pooled.images)
    table = findings.rows_table(splits, names, heads, gray)
    hashed = time.perf_counter()
    found, pair_counts = findings.duplicate_groups(table, gray, threshold, min_similarity,
                                                   per_image)
    issues = quality = None
    if folds or predictor is not None:
        if predictor is not None:
            say(f"Scoring with {predictor.path}", flush=True)
            class_probs, scores = labels.model_probs(predictor, pooled)
        else:
            # Class ids: softmax fold models; per-head answers: two-head ones (masked loss).
            kind = "softmax" if pooled.rows.answers is None else "two_head"
            say(f"Training {folds} fold models ({kind}, {epochs} epochs, {img_size} px) for "
                "out-of-fold probabilities", flush=True)
            fold_cfg = load_config(config or "two_head", [
                f"data.root={root}", f"data.img_size={img_size}", *overrides,
                f"model.kind={kind}", f"train.epochs={epochs}"])
            outputs = labels.out_of_fold_probs(fold_cfg, pooled, folds, say)
            class_probs = outputs.get(SOFTMAX_OUTPUT)
            scores = (labels.head_scores(class_probs, heads) if class_probs is not None
                      else {h: outputs[h] for h in heads})
        checks = labels.audits(table, class_probs, scores, heads)
        quality = labels.model_quality(checks)
        issues = labels.find_issues(table, checks, class_probs, scores, heads, names)
    result = AuditResult(
        duplicates=found, label_issues=issues, model_quality=quality,
        balance=findings.balance(splits, names, heads),
        shapes=findings.image_shapes(root, splits), summary="", out=out)
    images = {(name, line): split.images[i] for name, split in splits.items()
              for i, line in enumerate(split.rows.lines)}
    settings = {"threshold": threshold, "min_similarity": min_similarity, **pair_counts,
                "decode seconds": decoded - start, "hash seconds": hashed - decoded,
                "folds": folds, "epochs": epochs, "img_size": img_size,
                "model": str(predictor.path) if predictor else None}
    single_class = findings.single_class_heads(table, heads)
    result.headline = findings_lines(result, single_class, settings)
    result.summary = summary_markdown(result, table, single_class, settings,
                                      time.perf_counter() - start)
    _write(result, images)
    if write_clean:
        drop = clean_copy.rows_to_drop(found, issues, drop_label_issues)
        result.clean = clean_copy.write_clean(root, write_clean, table, drop)
        say(f"Wrote a clean copy in {write_clean}: " + ", ".join(
            f"{k} {v:,} rows" for k, v in result.clean.items())
            + f" ({len(drop)} rows left out)", flush=True)
    return result


def _load(cfg, root: Path, progress: bool) -> dict:
    """Every split validated with `train`'s one report of bad rows (or skipped, under
    `data.on_bad_image=skip`); single-class heads are reported, not raised."""
    data = cfg.data
    scanned = {name: scan_split(root, name, data.img_size, len(data.class_names),
                                cfg.cache_dir, data.workers, progress, data.max_image_pixels,
                                data.max_rows, list(cfg.model.heads))
               for name in SPLITS}
    if data.on_bad_image == "error":
        raise_bad_rows({describe(name, root): problems
                        for name, (_, problems) in scanned.items()})
    return {name: keep_usable(split, problems, data.on_bad_image, describe(name, root))
            for name, (split, problems) in scanned.items()}


def _heads_of_csv(root: Path, config) -> list[str]:
    """With no config given, a per-head dataset's heads are its header's columns."""
    columns = None if config else csv_heads(split_csv(root, SPLITS[0]))
    if not columns:
        return []
    return [f"model.heads={{{', '.join(f'{c}: []' for c in columns)}}}",
            f"train.monitor_head={columns[0]}", "train.loss_weights={}"]


def _write(result: AuditResult, images: dict) -> None:
    out = result.out
    if out.is_symlink() or (out / MARKER).is_symlink():  # would redirect the writes
        raise DataError(f"{out} (or its {MARKER}) is a symlink; the audit writes only into a "
                        "real folder. Choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    if (out / MARKER).is_file():  # an earlier audit's files: none may outlive this one
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
    elif any((out / name).exists() for name in OUTPUTS):
        raise DataError(f"{out} holds files named like the audit's ({', '.join(OUTPUTS)}) "
                        "that an audit did not write; choose another --out.")
    (out / MARKER).touch()
    atomic_write_text(out / "duplicates.csv", result.duplicates.to_csv(index=False))
    atomic_write_text(out / "balance.csv", result.balance.to_csv(index=False))
    if result.label_issues is not None:
        atomic_write_text(out / "label_issues.csv", result.label_issues.to_csv(index=False))
        sheets.label_sheet(result.label_issues, images, out / "label_issues.png")
    sheets.leakage_sheet(result.duplicates, images, out / "leakage.png")
    atomic_write_text(out / "summary.md", result.summary)
