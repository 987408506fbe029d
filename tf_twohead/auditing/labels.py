"""Likely label errors: cleanlab on out-of-sample predicted probabilities, for the class
id and for each head's yes/no answer (over its known answers only).

The probabilities come from K small models trained with the run's recipe, each on the
other folds and predicting its own (`out_of_fold_probs`: every image is scored by a
model that never saw it; softmax models for class ids, two-head models for per-head
answers), or from an existing model (`model_probs`; its training split is then
in-sample, and its errors there are under-reported). A two-head model has no class
probabilities: only its heads are audited. How well those models answer is reported
beside the flags (`model_quality`): weak models disagree with right labels too, so each
audit flags as many rows as cleanlab estimates are wrong, not every disagreement.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from tf_twohead.auditing.findings import answer_column
from tf_twohead.core.defaults import SOFTMAX_OUTPUT
from tf_twohead.data.cache import SplitData
from tf_twohead.data.splits import Rows
from tf_twohead.data.targets import head_answers, known


def stratified_folds(strata: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per row, each stratum (a class id, or a pattern of answers) spread
    evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(strata), np.int64)
    for cls in np.unique(strata):
        members = rng.permutation(np.nonzero(strata == cls)[0])
        fold[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    return fold


def out_of_fold_probs(cfg, pooled: SplitData, folds: int, say=print) -> dict[str, np.ndarray]:
    """Every row's out-of-fold outputs, each from the model of the folds it was not in:
    `{"probs": (N, C)}` for a softmax config (class ids), `{head: (N,)}` for a two-head
    one (per-head answers, some unknown: its loss counts known ones only). `cfg` is at the
    audit's image size and epochs."""
    import keras

    from tf_twohead.data.pipeline import datasets_for
    from tf_twohead.pretrained import load as pretrained
    from tf_twohead.recipe import compiling as recipe

    if folds < 2:
        raise ValueError(f"--folds needs at least 2 folds. Received: {folds}")
    answers = head_answers(pooled.rows, cfg.model.heads)
    strata = (pooled.class_ids if pooled.rows.answers is None else  # a pattern per row
              sum((a + 1).astype(np.int64) * 3 ** i for i, a in enumerate(answers.values())))
    fold = stratified_folds(strata, folds, cfg.train.seed)
    out: dict[str, np.ndarray] = {}
    for k in range(folds):
        start = time.perf_counter()
        train, held = _subset(pooled, fold != k, "train"), np.nonzero(fold == k)[0]
        keras.utils.set_random_seed(cfg.train.seed + k)
        model = recipe.compile_model(pretrained.build_model(cfg), cfg)
        model.fit(datasets_for(cfg, train), epochs=cfg.train.epochs, verbose=0, shuffle=False,
                  callbacks=recipe.schedule_callbacks(cfg))
        for lo in range(0, len(held), 256):
            rows = held[lo:lo + 256]
            for name, value in model(np.asarray(pooled.images[rows]), training=False).items():
                value = np.asarray(value)
                value = value if value.shape[-1] > 1 else value[:, 0]
                out.setdefault(name, np.zeros((len(pooled), *value.shape[1:]), np.float32))
                out[name][rows] = value
        say(f"  fold {k + 1}/{folds}: trained on {len(train)} images for {cfg.train.epochs} "
            f"epochs, scored {len(held)} ({time.perf_counter() - start:.0f} s)", flush=True)
        keras.backend.clear_session()
    return out


def model_probs(predictor, pooled: SplitData) -> tuple[np.ndarray | None, dict]:
    """An existing model's class probabilities (softmax models only) and head scores."""
    scores = predictor.predict_arrays(np.asarray(pooled.images))
    class_probs = scores.pop(SOFTMAX_OUTPUT, None)
    return class_probs, {h: scores[h] for h in predictor.heads}


def head_scores(class_probs: np.ndarray, heads: dict[str, list[int]]) -> dict:
    """Each head's probability: the sum of its positive classes' probabilities."""
    return {h: class_probs[:, list(ids)].sum(axis=1) for h, ids in heads.items()}


def audits(table: pd.DataFrame, class_probs: np.ndarray | None, scores: dict,
           heads) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """`(name, rows, given labels, probabilities)` of each label audit: the class id
    (with class probabilities, class-id layout only), then each head over the rows whose
    answer is known."""
    out = []
    if class_probs is not None and (table["class_id"] >= 0).all():
        out.append(("class", np.arange(len(table)), table["class_id"].to_numpy(),
                    _normalised(class_probs)))
    for head in heads:
        answers = table[answer_column(head)].to_numpy()
        rows = np.nonzero(known(answers))[0]
        p = np.clip(np.asarray(scores[head], np.float64)[rows], 0.0, 1.0)
        out.append((head, rows, answers[rows].astype(np.int64), np.stack([1 - p, p], 1)))
    return out


WEAK_BALANCED_ACCURACY = 0.8  # judging models below this are called weak


def model_quality(checks: list) -> pd.DataFrame:
    """How well the models that judge the labels answer, out of sample: per audit, the
    known labels, accuracy, balanced accuracy (the mean recall over the classes or
    answers, 1/classes for a model that always says the same), and `weak` below
    `WEAK_BALANCED_ACCURACY`: their flags then mix label errors with their own mistakes."""
    records = []
    for name, _rows, y, probs in checks:
        predicted = probs.argmax(axis=1)
        recalls = [np.mean(predicted[y == c] == c) for c in np.unique(y)]
        balanced = float(np.mean(recalls)) if recalls else float("nan")
        records.append({"audit": name, "known": len(y),
                        "accuracy": round(float(np.mean(predicted == y)), 4) if len(y) else None,
                        "balanced accuracy": round(balanced, 4),
                        "weak": bool(balanced < WEAK_BALANCED_ACCURACY)})
    return pd.DataFrame(records, columns=["audit", "known", "accuracy", "balanced accuracy",
                                          "weak"])


def find_issues(table: pd.DataFrame, checks: list, class_probs: np.ndarray | None,
                scores: dict, heads, class_names: list[str]) -> pd.DataFrame:
    """Rows cleanlab flags, most likely first: given and suggested class, label-quality
    score (0 = surely wrong, 1 = surely right) and which audits flagged the row ("class",
    and/or a head's name).

    Per audit, as many rows as cleanlab *estimates* are mislabelled
    (`cleanlab.count.num_label_issues`), the lowest label quality first: not every
    disagreement of a model with a label, which weak models have by the hundred."""
    from cleanlab.count import num_label_issues
    from cleanlab.rank import get_label_quality_scores

    flagged: dict[int, list[str]] = {}
    quality = np.ones(len(table))
    for name, rows, y, probs in checks:
        if len(np.unique(y)) < 2:
            continue  # cleanlab needs both answers; the balance table shows it
        count = num_label_issues(y, probs)
        scores_ = get_label_quality_scores(y, probs)
        for i in np.argsort(scores_, kind="stable")[:count]:
            row = int(rows[i])
            quality[row] = min(quality[row], scores_[i])
            flagged.setdefault(row, []).append(name)
    rows = sorted(flagged)
    out = table.iloc[rows][["split", "line", "path", "class_id", "class_name",
                            *(answer_column(h) for h in heads)]].copy()
    out = out.rename(columns={"class_id": "given_id", "class_name": "given_class",
                              **{answer_column(h): f"given_{h}" for h in heads}})
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
