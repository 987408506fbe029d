"""Likely label errors: `cleanlab.filter.find_label_issues` on out-of-sample predicted
probabilities, for the class id and for each head's yes/no label.

The probabilities come from K small models trained with the run's recipe, each on the
other folds and predicting its own (`out_of_fold_probs`: every image is scored by a
model that never saw it), or from an existing model (`model_probs`; its training
split is then in-sample, and its errors there are under-reported). A two-head model has
no class probabilities: only its heads are audited.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from tf_twohead.core.defaults import SOFTMAX_OUTPUT
from tf_twohead.data.cache import SplitData
from tf_twohead.data.splits import Rows


def stratified_folds(class_ids: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per row, each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(class_ids), np.int64)
    for cls in np.unique(class_ids):
        members = rng.permutation(np.nonzero(class_ids == cls)[0])
        fold[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    return fold


def out_of_fold_probs(cfg, pooled: SplitData, folds: int, say=print) -> np.ndarray:
    """Class probabilities `(N, C)` for every row of `pooled`, each from the model of the
    folds it was not in. `cfg` is a softmax config (`model.kind=softmax`) at the audit's
    image size and epochs."""
    import keras

    from tf_twohead.data.pipeline import datasets_for
    from tf_twohead.pretrained import load as pretrained
    from tf_twohead.recipe import compiling as recipe

    if folds < 2:
        raise ValueError(f"--folds needs at least 2 folds. Received: {folds}")
    fold = stratified_folds(pooled.class_ids, folds, cfg.train.seed)
    probs = np.zeros((len(pooled), len(cfg.data.class_names)), np.float32)
    for k in range(folds):
        start = time.perf_counter()
        train, held = _subset(pooled, fold != k, "train"), np.nonzero(fold == k)[0]
        keras.utils.set_random_seed(cfg.train.seed + k)
        model = recipe.compile_model(pretrained.build_model(cfg), cfg)
        model.fit(datasets_for(cfg, train), epochs=cfg.train.epochs, verbose=0, shuffle=False,
                  callbacks=recipe.schedule_callbacks(cfg))
        for lo in range(0, len(held), 256):
            rows = held[lo:lo + 256]
            out = model(np.asarray(pooled.images[rows]), training=False)
            probs[rows] = np.asarray(out[SOFTMAX_OUTPUT] if isinstance(out, dict) else out)
        say(f"  fold {k + 1}/{folds}: trained on {len(train)} images for {cfg.train.epochs} "
            f"epochs, scored {len(held)} ({time.perf_counter() - start:.0f} s)", flush=True)
        keras.backend.clear_session()
    return probs


def model_probs(predictor, pooled: SplitData) -> tuple[np.ndarray | None, dict]:
    """An existing model's class probabilities (softmax models only) and head scores."""
    scores = predictor.predict_arrays(np.asarray(pooled.images))
    class_probs = scores.pop(SOFTMAX_OUTPUT, None)
    return class_probs, {h: scores[h] for h in predictor.heads}


def head_scores(class_probs: np.ndarray, heads: dict[str, list[int]]) -> dict:
    """Each head's probability: the sum of its positive classes' probabilities."""
    return {h: class_probs[:, list(ids)].sum(axis=1) for h, ids in heads.items()}


def find_issues(table: pd.DataFrame, class_probs: np.ndarray | None, scores: dict,
                heads: dict[str, list[int]], class_names: list[str]) -> pd.DataFrame:
    """Rows cleanlab flags, most likely first: given and suggested class, label-quality
    score (0 = surely wrong, 1 = surely right) and which audits flagged the row ("class",
    and/or a head's name)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = table["class_id"].to_numpy()
    flagged: dict[int, list[str]] = {}
    quality = np.ones(len(table))
    audits = []
    if class_probs is not None:
        audits.append(("class", labels, _normalised(class_probs)))
    for head, ids in heads.items():
        p = np.clip(np.asarray(scores[head], np.float64), 0.0, 1.0)
        audits.append((head, np.isin(labels, ids).astype(np.int64), np.stack([1 - p, p], 1)))
    for name, y, probs in audits:
        if len(np.unique(y)) < 2:
            continue  # cleanlab needs both answers; the balance table shows it
        hits = find_label_issues(y, probs, n_jobs=1)
        quality = np.minimum(quality, np.where(hits, get_label_quality_scores(y, probs), 1.0))
        for i in np.nonzero(hits)[0]:
            flagged.setdefault(int(i), []).append(name)
    rows = sorted(flagged)
    out = table.iloc[rows][["split", "line", "path", "class_id", "class_name"]].copy()
    out = out.rename(columns={"class_id": "given_id", "class_name": "given_class"})
    if class_probs is not None:
        suggested = class_probs[rows].argmax(axis=1)
        out["suggested_id"] = suggested
        out["suggested_class"] = [class_names[i] for i in suggested]
    for head in heads:
        out[f"p_{head}"] = np.round(np.asarray(scores[head])[rows], 4)
    out["score"] = np.round(quality[rows], 4)
    out["flagged_by"] = ["+".join(flagged[i]) for i in rows]
    return out.sort_values("score").reset_index(drop=True)


def _normalised(probs: np.ndarray) -> np.ndarray:
    probs = np.clip(np.asarray(probs, np.float64), 1e-12, None)
    return probs / probs.sum(axis=1, keepdims=True)


def _subset(split: SplitData, mask: np.ndarray, name: str) -> SplitData:
    keep = np.nonzero(mask)[0]
    return dataclasses.replace(split, name=name, images=np.asarray(split.images)[keep],
                               rows=split.rows.take(keep),
                               hashes=[split.hashes[i] for i in keep] if split.hashes else [])


def pool(splits: dict[str, SplitData]) -> SplitData:
    """All splits as one, in the audit table's row order."""
    items = list(splits.values())
    return SplitData("all", np.concatenate([np.asarray(s.images) for s in items]),
                     Rows.concat([s.rows for s in items]),
                     hashes=[h for s in items for h in (s.hashes or [""] * len(s))])
