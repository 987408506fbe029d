"""Evaluate a model per head, measure per-image latency, and compare runs.

`evaluate()` writes beside the model: `metrics.json` (`heads.<name>.{precision,
recall, f1, accuracy, auc, threshold}`, `latency_ms`, `model_bytes`, ...),
`report.md`, `pr_curves.png` and `confusion.png`. The softmax baseline fills the same
per-head table (screen = argmax is 2, not a document = argmax is 1).

Latency follows the reference article: the median over images, one at a time, of
file -> probabilities (decode, EXIF, RGB, resize, model, activation).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from tf_twohead import reports
from tf_twohead.config import SOFTMAX_OUTPUT
from tf_twohead.data.cache import load_split
from tf_twohead.data.splits import encode_targets
from tf_twohead.fileio import atomic_write_json, atomic_write_text
from tf_twohead.inference import Predictor


def resolve_model(run_dir_or_model: str | Path) -> Path:
    """A run folder means its `best.keras`; a file is used as it is."""
    path = Path(run_dir_or_model)
    if path.is_dir():
        path = path / "best.keras"
    if not path.is_file():
        raise FileNotFoundError(f"No model at {path}. Pass a run folder or a .keras file.")
    return path


def output_prefix(model_path: Path) -> str:
    """Prefix of the files `evaluate` writes: none for a run's `best.keras`, else the
    model's file name, so evaluating `best.tflite` never overwrites `metrics.json`."""
    return "" if model_path.name == "best.keras" else f"{model_path.name}."


def metrics_file(model_path: Path, split: str = "test") -> Path:
    """Where `evaluate` writes the metrics of a model on a split."""
    name = "metrics.json" if split == "test" else f"metrics_{split}.json"
    return model_path.parent / (output_prefix(model_path) + name)


def binary_metrics(truth: np.ndarray, scores: np.ndarray, decisions: np.ndarray,
                   threshold: float | None) -> dict:
    """The one metrics function: precision, recall, F1, accuracy, AUC of a yes/no task."""
    truth, decisions = np.asarray(truth).astype(bool), np.asarray(decisions).astype(bool)
    both = len(np.unique(truth)) == 2
    return {
        "precision": float(skm.precision_score(truth, decisions, zero_division=0)),
        "recall": float(skm.recall_score(truth, decisions, zero_division=0)),
        "f1": float(skm.f1_score(truth, decisions, zero_division=0)),
        "accuracy": float(skm.accuracy_score(truth, decisions)),
        "auc": float(skm.roc_auc_score(truth, scores)) if both else float("nan"),
        "threshold": threshold,
        "positives": int(truth.sum()),
        "support": int(len(truth)),
    }


def class_metrics(class_ids: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """Multi-class metrics of a softmax over the classes: accuracy, top-5 accuracy and
    each class's precision, recall, F1 and support (argmax decisions)."""
    labels = list(range(len(class_names)))
    predicted = probs.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        class_ids, predicted, labels=labels, zero_division=0)
    result = {
        "accuracy": float(skm.accuracy_score(class_ids, predicted)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                             "support": int(n)}
                      for name, p, r, f, n in zip(class_names, precision, recall, f1, support)},
    }
    if len(labels) > 5:  # with 5 classes or fewer the top 5 always hold the answer
        result["top5"] = float(skm.top_k_accuracy_score(class_ids, probs, k=5, labels=labels))
    return result


def threshold_for_precision(truth: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The lowest threshold whose precision reaches `target` (the most recall); 1.0 if none."""
    truth = np.asarray(truth).astype(bool)
    if not truth.any():
        return 1.0  # no positives: nothing can reach any precision
    precision, _, thresholds = skm.precision_recall_curve(truth, scores)
    ok = np.nonzero(precision[:-1] >= target)[0]
    return float(thresholds[ok[0]]) if len(ok) else 1.0


def measure_latency(predictor: Predictor, files: list[Path], warmup: int = 3) -> float:
    """Median milliseconds per image, file -> probabilities, one image at a time."""
    if not files:
        return float("nan")
    for path in files[:warmup]:
        predictor.predict_file(path)
    times = []
    for path in files:
        start = time.perf_counter()
        predictor.predict_file(path)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def load_model_split(predictor: Predictor, split: str, data_root=None, progress=True):
    """A split of the dataset a model was trained on (or `data_root`), validated and
    cached at the model's input size, with the run's `on_bad_image` policy."""
    cfg = predictor.config
    root = data_root or (cfg.data.root if cfg else None)
    if root is None:
        raise ValueError(f"{predictor.path} has no config.yaml beside it: pass --data ROOT "
                         f"(a dataset folder with {split}.csv).")
    cache_dir = (cfg.data.cache_dir if cfg and cfg.data.cache_dir
                 else predictor.path.parent.parent / "cache")
    return load_split(root, split, predictor.img_size, len(predictor.class_names),
                      cfg.data.on_bad_image if cfg else "error", cache_dir, progress=progress)


def evaluate(run_dir_or_model: str | Path, data_root: str | Path | None = None,
             split: str = "test", threads: int | None = None,
             target_precision: float | None = None, latency_images: int = 100,
             progress: bool = True) -> dict:
    """Evaluate a model on a split and write metrics, report and plots beside it.

    Args:
        run_dir_or_model: str. A run folder (its `best.keras`) or a `.keras` file.
        data_root: str or None. Dataset folder; None uses the run's `data.root`.
        split: str. Which split to evaluate. Defaults to "test".
        threads: int or None. LiteRT threads for `.tflite` models; recorded with the
            latency (TensorFlow's are set process-wide with `set_threads`).
        target_precision: float or None. Also report each head's recall at the
            threshold chosen on the validation split to reach this precision.
        latency_images: int. Images timed one by one for `latency_ms`.

    Returns:
        The metrics dict written to `metrics_file(model, split)`: `metrics.json` for a
        run's `best.keras` on test, `best.tflite.metrics.json` for `best.tflite`, ...
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
    truth = encode_targets(data.class_ids, "two_head", predictor.heads, len(classes))
    decisions = predictor.decisions(scores)
    heads = {}
    for name in predictor.heads:
        threshold = None if predictor.kind == "softmax" else 0.5
        heads[name] = binary_metrics(truth[name][:, 0], scores[name], decisions[name], threshold)

    result = {
        "model": str(model_path),
        "exp": cfg.exp if cfg else model_path.parent.name,
        "kind": cfg.model.kind if cfg else predictor.kind,  # "combined" reads as softmax
        "format": model_path.suffix.lstrip("."),
        "quantization": (predictor.metadata or {}).get("quantization", "none"),
        "img_size": predictor.img_size,
        "data": str(root),
        "split": split,
        "images": len(data),
        "heads": heads,
    }
    if predictor.kind == "softmax":
        result["classes"] = class_metrics(data.class_ids, scores[SOFTMAX_OUTPUT], classes)
    if target_precision is not None:
        val_data, val_scores = run("val") if split != "val" else (data, scores)
        val_truth = encode_targets(val_data.class_ids, "two_head", predictor.heads, len(classes))
        chosen = {name: threshold_for_precision(val_truth[name][:, 0], val_scores[name],
                                                target_precision) for name in predictor.heads}
        at = predictor.decisions(scores, chosen)
        result["at_target_precision"] = {
            "target": target_precision,
            "heads": {name: binary_metrics(truth[name][:, 0], scores[name], at[name],
                                           chosen[name]) for name in predictor.heads},
        }
    files = [root / row.path for row in data.rows[:latency_images]]
    result["latency_ms"] = measure_latency(predictor, files)
    result["latency_threads"] = threads
    result["model_bytes"] = model_path.stat().st_size  # .keras includes optimizer state
    result["params"] = predictor.runner.params or (predictor.metadata or {}).get("params")

    out_dir = model_path.parent
    atomic_write_json(metrics_file(model_path, split), result)
    prefix = output_prefix(model_path)
    suffix = "" if split == "test" else f"_{split}"
    _plots(predictor, data, truth, scores, decisions, out_dir, prefix, suffix)
    atomic_write_text(out_dir / f"{prefix}report{suffix}.md", report_markdown(result))
    return result


def _plots(predictor, data, truth, scores, decisions, out_dir: Path, prefix: str,
           suffix: str) -> None:
    curves = {}
    for name in predictor.heads:
        t = truth[name][:, 0]
        if len(np.unique(t)) == 2:
            p, r, _ = skm.precision_recall_curve(t.astype(bool), scores[name])
            curves[name] = (p, r)
    if curves:
        reports.plot_pr_curves(curves, out_dir / f"{prefix}pr_curves{suffix}.png",
                               f"{predictor.kind}: precision-recall ({data.name})")
    matrices = {
        name: (skm.confusion_matrix(truth[name][:, 0].astype(bool), decisions[name],
                                    labels=[False, True]), ["no", "yes"])
        for name in predictor.heads
    }
    reports.plot_confusions(matrices, out_dir / f"{prefix}confusion{suffix}.png")
    if predictor.kind == "softmax":  # the class matrix alone, big enough for many classes
        labels = list(range(len(predictor.class_names)))
        matrix = skm.confusion_matrix(data.class_ids, scores[SOFTMAX_OUTPUT].argmax(axis=1),
                                      labels=labels)
        reports.plot_class_confusion(matrix, predictor.class_names,
                                     out_dir / f"{prefix}confusion_classes{suffix}.png")


def head_table(result: dict) -> pd.DataFrame:
    """The per-head table of one evaluation."""
    rows = [{"head": name, **{k: m[k] for k in ("precision", "recall", "f1", "accuracy", "auc")},
             "positives": m["positives"], "images": m["support"]}
            for name, m in result["heads"].items()]
    if "at_target_precision" in result:
        target = result["at_target_precision"]["target"]
        for name, m in result["at_target_precision"]["heads"].items():
            rows.append({"head": f"{name} @P>={target:g} (t={m['threshold']:.3f})",
                         **{k: m[k] for k in ("precision", "recall", "f1", "accuracy", "auc")},
                         "positives": m["positives"], "images": m["support"]})
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
                   + reports.markdown_table(class_table(result)))
    return (
        f"# {result['exp']} ({result['kind']}, {result['img_size']} px, "
        f"{result['format']}/{result['quantization']}) on "
        f"{result['split']} ({result['images']} images)\n\n"
        + reports.markdown_table(head_table(result))
        + f"\n\nLatency (file -> probabilities, median, 1 image at a time): "
        f"{result['latency_ms']:.2f} ms; model file: {result['model_bytes'] / 1e6:.2f} MB"
        + classes + "\n"
    )


def histories(run_dirs: list[str | Path]) -> dict[str, pd.DataFrame]:
    """Each run folder's `history.csv`, keyed by the folder's name (made unique)."""
    out = {}
    for run in run_dirs:
        path = Path(run) / "history.csv"
        if not path.is_file():
            raise FileNotFoundError(f"No {path}: pass run folders that have trained.")
        label = Path(run).name
        while label in out:
            label = f"{Path(run).parent.name}/{label}"
        out[label] = pd.read_csv(path)
    return out


def metrics_path(path: str | Path) -> Path:
    """Where `compare` reads the test metrics of a run folder, a model file or a
    metrics `.json` file."""
    p = Path(path)
    if p.suffix == ".json":
        return p
    return p / "metrics.json" if p.is_dir() else metrics_file(p)


def has_metrics(path: str | Path) -> bool:
    """Whether `compare` finds evaluated metrics for a run folder or model file."""
    return metrics_path(path).is_file()


def compare(paths: list[str | Path], heads=("main", "aux")) -> pd.DataFrame:
    """The reference's results table for several evaluated runs.

    Softmax-kind runs (the baselines, the combined model) add their class `accuracy`
    and `top5`.

    Args:
        paths: run folders (their `metrics.json`), model files (the metrics
            `evaluate` wrote for them) or metrics `.json` files.
        heads: the two heads whose precision and recall are shown.
    """
    rows = []
    for p in paths:
        metrics_json = metrics_path(p)
        if not metrics_json.is_file():
            raise FileNotFoundError(
                f"No {metrics_json}: run `tf-twohead evaluate {p}` first.")
        m = json.loads(metrics_json.read_text())
        fmt = m.get("format", "keras")
        fmt += "" if m.get("quantization", "none") == "none" else f" {m['quantization']}"
        row = {"model": f"{m['exp']} ({m['kind']}, {fmt})", "img size": m["img_size"]}
        for head in heads:
            h = m["heads"].get(head, {})
            row[f"{head} precision"] = h.get("precision", float("nan"))
            row[f"{head} recall"] = h.get("recall", float("nan"))
        row["accuracy"] = m.get("classes", {}).get("accuracy", float("nan"))
        row["top5"] = m.get("classes", {}).get("top5", float("nan"))
        row["latency ms"] = m["latency_ms"]
        row["params"] = m.get("params", "")
        row["size MB"] = m["model_bytes"] / 1e6
        rows.append(row)
    table = pd.DataFrame(rows)
    empty = [c for c in ("accuracy", "top5") if table[c].isna().all()]
    return table.drop(columns=empty)  # class accuracy only when a softmax run is compared
