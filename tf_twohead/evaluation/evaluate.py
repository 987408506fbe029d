"""Evaluate a model per head and measure its per-image latency.

`evaluate()` writes beside the model: `metrics.json` (`heads.<name>.{precision,
recall, f1, accuracy, auc, threshold}`, `latency_ms`, `model_bytes`, ...),
`report.md`, `pr_curves.png` and `confusion.png`. The softmax baseline fills the same
per-head table (screen = argmax is 2, not a document = argmax is 1).

Latency follows the reference article: the median over images, one at a time, of
file -> probabilities (decode, EXIF, RGB, resize, model, activation).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tf_twohead.core import tables
from tf_twohead.core.api import public
from tf_twohead.core.defaults import SOFTMAX_OUTPUT
from tf_twohead.core.fileio import atomic_write_json, atomic_write_text
from tf_twohead.core.run_folder import metrics_file, resolve_model, result_file
from tf_twohead.data.targets import head_answers
from tf_twohead.evaluation.figures import write_figures
from tf_twohead.evaluation.scores import binary_scores, class_scores, threshold_for_precision
from tf_twohead.inference.latency import measure_latency
from tf_twohead.inference.model_split import load_model_split
from tf_twohead.inference.predictor import Predictor


@public
def evaluate(run_dir_or_model: str | Path, data_root: str | Path | None = None,
             split: str = "test", threads: int | None = None,
             target_precision: float | None = None, latency_images: int = 100,
             progress: bool = True) -> dict:
    """Evaluate a model on a split and write metrics, report and plots beside it.

    Args:
        run_dir_or_model: str. A run folder (its `best.keras`) or a `.keras` file.
        data_root: str or None. Dataset folder; None uses the run's `data.root`.
        split: str. Which split to evaluate. Defaults to "test".
        threads: int or None. LiteRT's or ONNX Runtime's threads for `.tflite` and
            `.onnx` models; recorded with the
            latency (TensorFlow's are set process-wide with `set_threads`).
        target_precision: float or None. Also report each head's recall at the
            threshold chosen on the validation split to reach this precision.
        latency_images: int. Images timed one by one for `latency_ms`.

    Returns:
        The metrics dict written to `metrics_file(model, split, dataset)`: `metrics.json`
        for a run's `best.keras` on its own test split, `metrics_val.json` on val,
        `metrics@other.json` on another dataset, `best.tflite.metrics.json` for
        `best.tflite`; its `files` lists everything written (metrics, report, PR curves,
        confusion matrices, one error gallery per head).
    """
    model_path = resolve_model(run_dir_or_model)
    predictor = Predictor(model_path, threads=threads)
    cfg = predictor.config
    classes = predictor.class_names

    def run(split_name):
        data = load_model_split(predictor, split_name, data_root, progress)
        if data.dropped:
            print(data.dropped)
        return data, predictor.predict_arrays(data.images)

    data, scores = run(split)
    root = Path(data_root or cfg.data.root)  # one of them exists, or run() raised
    own = cfg is not None and root.resolve() == Path(cfg.data.root).resolve()
    dataset = None if own or data_root is None else root.resolve().name
    truth = head_answers(data.rows, predictor.heads)  # UNKNOWN where a cell was empty
    decisions = predictor.decisions(scores)
    heads = {}
    for name in predictor.heads:
        heads[name] = binary_scores(truth[name], scores[name], decisions[name],
                                     predictor.threshold(name))

    result = {
        "model": str(model_path),
        "exp": cfg.exp if cfg else model_path.parent.name,
        "kind": cfg.model.kind if cfg else predictor.kind,  # "combined" reads as softmax
        "format": model_path.suffix.lstrip("."),
        "quantization": (predictor.metadata or {}).get("quantization", "none"),
        "img_size": predictor.img_size,
        "data": str(root.resolve()),
        "split": split,
        "images": len(data),
        "heads": heads,
    }
    if predictor.kind == "softmax" and data.rows.answers is None:
        result["classes"] = class_scores(data.class_ids, scores[SOFTMAX_OUTPUT], classes)
    target = None
    if target_precision is not None:
        val_data, val_scores = run("val") if split != "val" else (data, scores)
        val_truth = head_answers(val_data.rows, predictor.heads)
        chosen = {name: threshold_for_precision(val_truth[name], val_scores[name],
                                                target_precision) for name in predictor.heads}
        at = predictor.decisions(scores, chosen)
        result["at_target_precision"] = {"target": target_precision, "heads": {}}
        for name in predictor.heads:
            on_val = binary_scores(val_truth[name], val_scores[name],
                                    val_scores[name] >= chosen[name], chosen[name])
            metrics = binary_scores(truth[name], scores[name], at[name], chosen[name])
            # No threshold reaches the target on val: say so, do not pass off t=1.0.
            metrics["reached_on_val"] = bool(on_val["precision"] >= target_precision
                                             and on_val["recall"] > 0)
            result["at_target_precision"]["heads"][name] = metrics
        target = {"precision": target_precision, "thresholds": chosen}
    files = [root / path for path in data.rows.paths[:latency_images]]
    result["latency_ms"] = measure_latency(predictor, files)
    result["latency_threads"] = threads
    result["model_bytes"] = model_path.stat().st_size  # .keras includes optimizer state
    result["params"] = predictor.runner.params or (predictor.metadata or {}).get("params")

    def path_for(name: str) -> Path:
        return result_file(model_path, name, split, dataset)

    title = (f"{model_path.name} ({result['format']}, {result['quantization']}) on "
             f"{split} of {root.name}, {len(data)} images")
    files = write_figures(predictor, data, truth, scores, decisions, path_for, title, target)
    files.append(atomic_write_text(path_for("report.md"), report_markdown(result)))
    result["files"] = [str(f) for f in [metrics_file(model_path, split, dataset), *files]]
    atomic_write_json(metrics_file(model_path, split, dataset), result)
    return result


def head_table(result: dict) -> pd.DataFrame:
    """The per-head table of one evaluation: scores over each head's known answers
    (`known`; every image in the class-id layout)."""
    images = result["images"]
    rows = [{"head": name, **{k: m[k] for k in ("precision", "recall", "f1", "accuracy", "auc")},
             "positives": m["positives"], "known": m["support"], "images": images}
            for name, m in result["heads"].items()]
    if "at_target_precision" in result:
        target = result["at_target_precision"]["target"]
        for name, m in result["at_target_precision"]["heads"].items():
            reached = "" if m.get("reached_on_val", True) else ", not reached on val"
            rows.append({"head": f"{name} @P>={target:g} (t={m['threshold']:.3f}{reached})",
                         **{k: m[k] for k in ("precision", "recall", "f1", "accuracy", "auc")},
                         "positives": m["positives"], "known": m["support"], "images": images})
    return pd.DataFrame(rows)


def class_table(result: dict) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support of a softmax model's evaluation."""
    return pd.DataFrame([{"class": name, **m}
                         for name, m in result["classes"]["per_class"].items()])


def report_markdown(result: dict) -> str:
    """A short Markdown report of one evaluation."""
    classes = ""
    if "classes" in result:
        c = result["classes"]
        top5 = f", top-5 {c['top5']:.4f}" if "top5" in c else ""
        classes = (f"\n\nClasses: accuracy {c['accuracy']:.4f}{top5}, macro F1 "
                   f"{c['macro_f1']:.4f}\n\n"
                   + tables.markdown_table(class_table(result)))
    return (
        f"# {result['exp']} ({result['kind']}, {result['img_size']} px, "
        f"{result['format']}/{result['quantization']}) on "
        f"{result['split']} ({result['images']} images)\n\n"
        + tables.markdown_table(head_table(result))
        + f"\n\nLatency (file -> probabilities, median, 1 image at a time): "
        f"{result['latency_ms']:.2f} ms; model file: {result['model_bytes'] / 1e6:.2f} MB"
        + classes + "\n"
    )


