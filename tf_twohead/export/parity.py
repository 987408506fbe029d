"""Parity check: does a converted model answer like the `.keras` model it came from?

Both models run on the same validation images; per head we count the decisions that
flip at the head's threshold, the probabilities that move far, the largest move, and the
F1 of each model. Each quantization mode has a bound:

| quantization        | bound                                                            |
|---------------------|------------------------------------------------------------------|
| none (float32)      | max |Δp| <= 1e-4                                                 |
| float16             | flips and moves over 0.05 consistent with a rate of at most 1%   |
| dynamic             | flips and moves over 0.1 consistent with a rate of at most 1%    |
| int8, int8_per_*    | flips and moves over 0.2 consistent with a rate of at most 2%    |
| int8_mixed          | the same as int8                                                 |
| int16x8             | flips and moves over 0.1 consistent with a rate of at most 1%    |

For the quantized modes the decision is statistical (float16 too: a fixed bound of 0.01
refused files that flipped no decision of 1,000 while one probability moved by 0.014),
because a fixed bound on F1 or on agreement cannot tell noise from damage: with 90
positives two flipped decisions move F1 by 0.01, and one flip of 200 images is 0.5%. A
conversion fails only when its flips (or large moves) are more than its tolerated rate
could give by chance: a one-sided binomial test at the 0.1% level on the images
checked. A good model is then not refused for a flip or two near its threshold, and a
broken one (hundreds of flips, or probabilities thrown about) always is. The more images
are checked, the finer the damage it can resolve.

A softmax-output model (softmax, combined) is also compared class by class: the same
test on the images whose argmax class changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from scipy import stats

from tf_twohead.core.defaults import INT8_INPUT, SOFTMAX_OUTPUT
from tf_twohead.core.errors import ExportError, ParityError
from tf_twohead.core.fileio import atomic_path, atomic_write_json
from tf_twohead.data.targets import head_answers
from tf_twohead.evaluation.scores import binary_scores
from tf_twohead.inference.model_split import load_model_split

PROBABILITY_BOUNDS = {"none": 1e-4}
# Flips a good conversion stays under, and a probability move that counts as damage.
# The int8 family (integer activations, raw uint8 pixels in) shares one bound.
TOLERATED_RATE = {"float16": 0.01, "dynamic": 0.01, **dict.fromkeys(INT8_INPUT, 0.02),
                  "int16x8": 0.01}
LARGE_MOVE = {"float16": 0.05, "dynamic": 0.1, **dict.fromkeys(INT8_INPUT, 0.2),
              "int16x8": 0.1}
ALPHA = 1e-3  # the test's level: a good model is refused at most once in a thousand checks


def too_many(count: int, n: int, rate: float) -> tuple[bool, float]:
    """Whether `count` events of `n` are more than a rate of `rate` gives by chance, and
    the one-sided binomial p-value of seeing that many or more."""
    p_value = float(stats.binom.sf(count - 1, n, rate)) if count else 1.0
    return p_value < ALPHA, p_value


def compare_predictions(reference, candidate, images: np.ndarray, truth: dict,
                        quantization: str, key_head: str,
                        class_ids: np.ndarray | None = None) -> dict:
    """Run two `Predictor`s on the same images and judge the candidate.

    Args:
        reference: `Predictor` of the source (`.keras`) model.
        candidate: `Predictor` of the converted model.
        images: uint8 array `(N, S, S, 3)`.
        truth: dict. Head name -> `(N,)` binary labels, for the F1 change.
        quantization: str. Selects the bound (see the module docstring).
        key_head: str. The head reported first (the run's monitored head).
        class_ids: int array `(N,)` or None. True classes; with a softmax-output model
            the classes are compared too.

    Returns:
        `{"quantization", "images", "bound", "passed", "heads": {name: {...}}}`.
    """
    ref_scores = reference.predict_arrays(images)
    new_scores = candidate.predict_arrays(images)
    ref_dec, new_dec = reference.decisions(ref_scores), candidate.decisions(new_scores)
    heads = {}
    for name in sorted(reference.heads, key=lambda head: head != key_head):
        t = truth[name]
        f1_ref = binary_scores(t, ref_scores[name], ref_dec[name], None)["f1"]
        f1_new = binary_scores(t, new_scores[name], new_dec[name], None)["f1"]
        moved = np.abs(ref_scores[name] - new_scores[name])
        heads[name] = {
            "max_abs_diff": float(np.max(moved)),
            "agreement": float(np.mean(ref_dec[name] == new_dec[name])),
            "flips": int(np.sum(ref_dec[name] != new_dec[name])),
            "large_moves": int(np.sum(moved > LARGE_MOVE.get(quantization, np.inf))),
            "f1_keras": f1_ref,
            "f1_converted": f1_new,
            "f1_change": f1_new - f1_ref,
        }
    classes = None
    if class_ids is not None and SOFTMAX_OUTPUT in ref_scores:
        ref_class = ref_scores[SOFTMAX_OUTPUT].argmax(axis=1)
        new_class = new_scores[SOFTMAX_OUTPUT].argmax(axis=1)
        classes = {"agreement": float(np.mean(ref_class == new_class)),
                   "flips": int(np.sum(ref_class != new_class)),
                   "accuracy_keras": float(np.mean(ref_class == class_ids)),
                   "accuracy_converted": float(np.mean(new_class == class_ids))}
        classes["accuracy_change"] = classes["accuracy_converted"] - classes["accuracy_keras"]
    if quantization in PROBABILITY_BOUNDS:
        bound = {"max_abs_diff": PROBABILITY_BOUNDS[quantization]}
        passed = all(h["max_abs_diff"] <= bound["max_abs_diff"] for h in heads.values())
    else:
        rate, n = TOLERATED_RATE[quantization], len(images)
        bound = {"tolerated_rate": rate, "large_move": LARGE_MOVE[quantization],
                 "alpha": ALPHA}
        passed = True
        for h in [*heads.values(), *([classes] if classes else [])]:
            for what in ("flips", "large_moves"):
                if what in h:
                    failed, h[f"p_{what}"] = too_many(h[what], n, rate)
                    passed &= not failed
    report = {"quantization": quantization, "images": int(len(images)), "bound": bound,
              "passed": bool(passed), "heads": heads}
    if classes is not None:
        report["classes"] = classes
    return report


def bound_text(report: dict) -> str:
    """The bound a report was judged by, in words."""
    b = report["bound"]
    if "max_abs_diff" in b:
        return f"every probability within {b['max_abs_diff']:g} of the .keras model's"
    return (f"flipped decisions, and probabilities moved over {b['large_move']:g}, no more "
            f"than a rate of {b['tolerated_rate']:.0%} explains (binomial test at the "
            f"{b['alpha']:.1%} level)")


def summary_lines(report: dict) -> list[str]:
    """Human-readable lines of a parity report."""
    n = report["images"]
    lines = [f"parity ({report['quantization']}, {n} validation images): "
             f"{'PASSED' if report['passed'] else 'FAILED'}; bound: {bound_text(report)}"]
    for name, h in report["heads"].items():
        flips = f"  flipped {h['flips']} of {n}" if "flips" in h else ""
        if "p_large_moves" in h:  # the other statistic a quantized mode is judged on
            flips += f"  moved over {report['bound']['large_move']}: {h['large_moves']}"
        lines.append(f"  {name:>8}: max |dp| {h['max_abs_diff']:.2e}  agreement "
                     f"{h['agreement']:.2%}{flips}  F1 {h['f1_keras']:.4f} -> "
                     f"{h['f1_converted']:.4f} ({h['f1_change']:+.4f})")
    if "classes" in report:
        c = report["classes"]
        lines.append(f"   classes: agreement {c['agreement']:.2%}  accuracy "
                     f"{c['accuracy_keras']:.4f} -> {c['accuracy_converted']:.4f} "
                     f"({c['accuracy_change']:+.4f})")
    return lines


def parity_samples(reference, data_root, calibration: int, parity_images: int,
                   progress: bool = True):
    """`((images, rows), calibration images or None)`: up to `parity_images` validation
    images for the parity check and `calibration` training images (a seeded random
    sample of each split, so two exports of one run see the same images)."""
    if data_root is None and reference.config is None:
        raise ExportError(f"{reference.path} has no config.yaml beside it: pass --data ROOT "
                          "(a dataset with val.csv, and train.csv for calibration).")

    def sample(split: str, n: int):
        data = load_model_split(reference, split, data_root, progress)
        pick = np.sort(np.random.default_rng(0).permutation(len(data))[:n])
        return data.images[pick], data.rows.take(pick)

    val = sample("val", parity_images)
    train = sample("train", calibration)[0] if calibration else None
    return val, train


def check_candidate(reference, candidate, val, quantization: str) -> dict:
    """`compare_predictions` of a converted model on `parity_samples`' validation part,
    its answers read from either CSV layout."""
    images, rows = val
    return compare_predictions(reference, candidate, images,
                               head_answers(rows, reference.heads), quantization,
                               key_head_of(reference),
                               class_ids=None if rows.answers else rows.class_ids)


def key_head_of(predictor) -> str:
    """The head whose F1 the parity check bounds: the run's `train.monitor_head` (the
    head its best model was picked by), else the model's first head."""
    cfg = predictor.config
    if cfg is not None and cfg.train.monitor_head in predictor.heads:
        return cfg.train.monitor_head
    return next(iter(predictor.heads))


def keep_checked(candidate: Path, out: Path, report: dict, meta: dict,
                 advice: str = "") -> dict:
    """Give a converted file its name only when its parity check passed, with its
    metadata and parity report beside it, and return `{"path", "bytes", "metadata",
    "parity"}`; else keep it as `<name>.parity-failed<suffix>` with its report and raise
    `ParityError`."""
    target = out if report["passed"] else out.with_name(
        out.name.replace(out.suffix, f".parity-failed{out.suffix}"))
    with atomic_path(target) as tmp_file:
        shutil.copyfile(candidate, tmp_file)
    if not report["passed"]:
        atomic_write_json(target.with_suffix(".parity.json"), report)
        raise ParityError("\n".join(summary_lines(report)) + f"\nKept as {target}; "
                          f"{out} was not written. {advice}".rstrip(), report, target)
    atomic_write_json(out.with_suffix(".metadata.json"), meta)
    atomic_write_json(out.with_suffix(".parity.json"), report)
    return {"path": str(out), "bytes": out.stat().st_size, "metadata": meta, "parity": report}
