"""Parity check: does a converted model answer like the `.keras` model it came from?

Both models run on the same validation images; per head we report the largest
absolute difference of the probabilities, the agreement of the decisions at the head's
threshold and the change in F1. Each quantization mode has a bound:

| quantization    | bound                                                   |
|-----------------|---------------------------------------------------------|
| none (float32)  | max |Δp| <= 1e-4                                       |
| float16         | max |Δp| <= 1e-2                                       |
| dynamic, int8   | agreement >= 98% and main-head F1 drop <= 1 point      |

A softmax-output model (softmax, combined) is also compared class by class: the
agreement of its argmax and its accuracy over all classes. For dynamic and int8 the
bound is then on class accuracy (drop <= 1 point) instead of the main head's F1: every
image counts, while a head with 100 positives loses 2 F1 points to 4 flipped images.
"""

from __future__ import annotations

import numpy as np

from tf_twohead.defaults import SOFTMAX_OUTPUT
from tf_twohead.scores import binary_metrics

PROBABILITY_BOUNDS = {"none": 1e-4, "float16": 1e-2}
MIN_AGREEMENT = 0.98
MAX_F1_DROP = 0.01


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
        key_head: str. The head whose F1 drop is bounded for dynamic and int8.
        class_ids: int array `(N,)` or None. True classes; with a softmax-output model
            the classes are compared too, and bound class accuracy instead of F1.

    Returns:
        `{"quantization", "images", "bound", "passed", "heads": {name: {...}}}`.
    """
    ref_scores = reference.predict_arrays(images)
    new_scores = candidate.predict_arrays(images)
    ref_dec, new_dec = reference.decisions(ref_scores), candidate.decisions(new_scores)
    heads = {}
    for name in reference.heads:
        t = truth[name]
        f1_ref = binary_metrics(t, ref_scores[name], ref_dec[name], None)["f1"]
        f1_new = binary_metrics(t, new_scores[name], new_dec[name], None)["f1"]
        heads[name] = {
            "max_abs_diff": float(np.max(np.abs(ref_scores[name] - new_scores[name]))),
            "agreement": float(np.mean(ref_dec[name] == new_dec[name])),
            "f1_keras": f1_ref,
            "f1_converted": f1_new,
            "f1_change": f1_new - f1_ref,
        }
    classes = None
    if class_ids is not None and SOFTMAX_OUTPUT in ref_scores:
        ref_class = ref_scores[SOFTMAX_OUTPUT].argmax(axis=1)
        new_class = new_scores[SOFTMAX_OUTPUT].argmax(axis=1)
        classes = {"agreement": float(np.mean(ref_class == new_class)),
                   "accuracy_keras": float(np.mean(ref_class == class_ids)),
                   "accuracy_converted": float(np.mean(new_class == class_ids))}
        classes["accuracy_change"] = classes["accuracy_converted"] - classes["accuracy_keras"]
    if quantization in PROBABILITY_BOUNDS:
        bound = {"max_abs_diff": PROBABILITY_BOUNDS[quantization]}
        passed = all(h["max_abs_diff"] <= bound["max_abs_diff"] for h in heads.values())
    elif classes is not None:
        bound = {"min_agreement": MIN_AGREEMENT, "max_accuracy_drop": MAX_F1_DROP}
        passed = (all(h["agreement"] >= MIN_AGREEMENT for h in heads.values())
                  and classes["agreement"] >= MIN_AGREEMENT
                  and classes["accuracy_change"] >= -MAX_F1_DROP)
    else:
        bound = {"min_agreement": MIN_AGREEMENT, "max_f1_drop": MAX_F1_DROP,
                 "f1_head": key_head}
        passed = (all(h["agreement"] >= MIN_AGREEMENT for h in heads.values())
                  and heads[key_head]["f1_change"] >= -MAX_F1_DROP)
    report = {"quantization": quantization, "images": int(len(images)), "bound": bound,
              "passed": bool(passed), "heads": heads}
    if classes is not None:
        report["classes"] = classes
    return report


def summary_lines(report: dict) -> list[str]:
    """Human-readable lines of a parity report."""
    lines = [f"parity ({report['quantization']}, {report['images']} validation images): "
             f"{'PASSED' if report['passed'] else 'FAILED'}  bound {report['bound']}"]
    for name, h in report["heads"].items():
        lines.append(f"  {name:>8}: max |dp| {h['max_abs_diff']:.2e}  agreement "
                     f"{h['agreement']:.2%}  F1 {h['f1_keras']:.4f} -> {h['f1_converted']:.4f}"
                     f" ({h['f1_change']:+.4f})")
    if "classes" in report:
        c = report["classes"]
        lines.append(f"   classes: agreement {c['agreement']:.2%}  accuracy "
                     f"{c['accuracy_keras']:.4f} -> {c['accuracy_converted']:.4f} "
                     f"({c['accuracy_change']:+.4f})")
    return lines
