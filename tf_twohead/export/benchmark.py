"""`tf-twohead benchmark`: every file a model can ship as, side by side, accuracy included.

For each format (the `.keras` itself, ONNX, each TFLite quantization) the exported file
is reused when its embedded metadata names the current `best.keras` (by SHA-256), else
made by `convert`'s own code with its parity check. Then, on one split: the file's size,
the median latency at batch 1 with the given threads (model only, and file -> decisions,
as a user's app pays it; timed in rounds that take turns over the formats), each head's
F1 at the model's threshold, AUC, recall at the threshold that reaches the target
precision on the validation split, and the decisions that flip against the float32
`.keras` model. A format that cannot be made here (a package missing, the converter
refusing) is a row that says why; one that fails its parity check is measured anyway
from the kept `.parity-failed` file, and says so.

Example:

>>> table = benchmark("saved_models/two_head", formats=["keras", "none", "int8"])
>>> list(table["format"])
['keras', 'tflite', 'tflite']
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tf_twohead.core.api import public
from tf_twohead.core.defaults import BENCHMARK_FORMATS as FORMATS
from tf_twohead.core.errors import ExportError, ParityError
from tf_twohead.core.fileio import atomic_path, sha256
from tf_twohead.core.run_folder import EXPORTS, export_path, resolve_model
from tf_twohead.core.tables import markdown_table
from tf_twohead.data.images import load_rgb
from tf_twohead.data.targets import head_answers
from tf_twohead.evaluation.scores import binary_scores, threshold_for_precision
from tf_twohead.export.onnx import missing_converter, to_onnx
from tf_twohead.export.parity import key_head_of
from tf_twohead.export.tflite import to_tflite
from tf_twohead.inference.metadata import read as read_metadata
from tf_twohead.inference.model_split import load_model_split
from tf_twohead.inference.onnx_runner import read_metadata as read_onnx_metadata
from tf_twohead.inference.predictor import Predictor
from tf_twohead.plots.benchmark import plot_benchmark

NAME = "benchmark"
ROUNDS = 5  # latency rounds, each over every format in turn


@public
def benchmark(model_path: str | Path, formats=FORMATS, split: str = "test",
              threads: int | None = 1, data_root: str | Path | None = None,
              calibration: int = 200, target_precision: float = 0.95,
              latency_images: int = 50, parity_images: int = 1000,
              progress: bool = True) -> pd.DataFrame:
    """Make (or reuse) each format's file and measure it; write `benchmark.csv`, `.md`
    and `.png` into the run's `exports/`.

    Args:
        model_path: str. A run folder (its `best.keras`) or a `.keras` file.
        formats: list of str. "keras", "onnx" and `core.defaults.QUANTIZATIONS` (TFLite).
        split: str. The split scored.
        threads: int or None. LiteRT's and ONNX Runtime's threads (TensorFlow's are set
            process-wide: `core.runtime.set_threads`, as the CLI does).
        calibration: int. Training images that calibrate the calibrated TFLite modes.
        target_precision: float. Recall is reported at the validation threshold that
            reaches this precision.
        latency_images: int. Images timed one by one, per format.
        parity_images: int. Validation images each new export's parity check compares.

    Returns:
        The table, one row per format, in the order asked.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"benchmark formats must be among {list(FORMATS)}. "
                          f"Received: {unknown}")
    model_path = resolve_model(model_path)
    if model_path.suffix != ".keras":
        raise ExportError(f"benchmark reads a .keras model or a run folder. Received: "
                          f"{model_path}")
    reference = Predictor(model_path)
    say = print if progress else (lambda *a, **k: None)
    data = {s: load_model_split(reference, s, data_root, progress) for s in ("val", split)}
    truth = head_answers(data[split].rows, reference.heads)
    val_truth = head_answers(data["val"].rows, reference.heads)
    root = Path(data_root or reference.config.data.root)
    files = [root / p for p in data[split].rows.paths[:latency_images]]
    source_hash = sha256(model_path)
    images = data[split].images
    reference_scores = reference.predict_arrays(images)
    baseline = reference.decisions(reference_scores)  # float32, the source's own answers
    rows, timed = [], {}
    for fmt in formats:
        say(f"== {fmt}", flush=True)
        row = {"format": "keras" if fmt == "keras" else ("onnx" if fmt == "onnx" else
                                                         "tflite"),
               "quantization": "none" if fmt in ("keras", "onnx") else fmt}
        try:
            path, status = _file(model_path, fmt, source_hash, calibration, data_root,
                                 parity_images, progress)
            predictor = reference if fmt == "keras" else Predictor(path, threads=threads)
            scores = reference_scores if fmt == "keras" else predictor.predict_arrays(images)
            decisions = predictor.decisions(scores)
            val_scores = predictor.predict_arrays(data["val"].images)
            row.update(file=path.name, kib=round(path.stat().st_size / 1024, 1), status=status)
            timed[len(rows)] = predictor
            for head in reference.heads:
                m = binary_scores(truth[head], scores[head], decisions[head],
                                  predictor.threshold(head))
                t = threshold_for_precision(val_truth[head], val_scores[head],
                                            target_precision)
                at = binary_scores(truth[head], scores[head], scores[head] >= t, t)
                row.update({f"{head}_f1": m["f1"], f"{head}_auc": m["auc"],
                            f"{head}_recall@P{target_precision:g}": at["recall"],
                            f"{head}_flips": int(np.sum(decisions[head] != baseline[head]))})
        except (ExportError, ImportError, OSError, ValueError) as e:
            row.update(file="", status=f"not made: {' '.join(str(e).split())[:200]}")
        rows.append(row)
    say(f"== latency: {len(files)} images, one at a time, in {ROUNDS} interleaved rounds",
        flush=True)
    for index, (model_ms, file_ms) in _latencies(timed, images[:latency_images], files).items():
        rows[index].update(model_ms=model_ms, file_to_decisions_ms=file_ms)
    table = pd.DataFrame(rows)
    first = [c for c in ("format", "quantization", "file", "kib", "status", "model_ms",
                         "file_to_decisions_ms") if c in table]
    table = table[first + [c for c in table if c not in first]]
    _write(table, model_path.parent / EXPORTS, reference, split, threads, len(images))
    return table


def _file(model_path: Path, fmt: str, source_hash: str, calibration: int, data_root,
          parity_images: int, progress: bool) -> tuple[Path, str]:
    """The file of a format and its status: reused, made now, or kept after a failed
    parity check (measured all the same)."""
    if fmt == "keras":
        return model_path, "source"
    path = export_path(model_path, "none", "onnx") if fmt == "onnx" else \
        export_path(model_path, fmt)
    if path.is_file() and _made_from(path, source_hash):
        return path, "reused"
    missing = fmt == "onnx" and missing_converter()
    if missing:  # said before anything is loaded
        raise ExportError(f"ONNX {missing}")
    try:
        if fmt == "onnx":
            to_onnx(model_path, path, data_root, parity_images, progress)
        else:
            to_tflite(model_path, fmt, calibration, path, data_root, parity_images, progress)
    except ParityError as e:
        return Path(e.path), "parity FAILED"
    return path, "made"


def _made_from(path: Path, source_hash: str) -> bool:
    """Whether an export's embedded metadata names the current source model (read
    without loading the file into a runtime)."""
    try:
        meta = (read_onnx_metadata(path) if path.suffix == ".onnx" else read_metadata(path)) or {}
    except (OSError, ValueError):  # ModelFileError, or onnx not installed
        return False
    return meta.get("source_model", {}).get("sha256") == source_hash


def _latencies(predictors: dict, images: np.ndarray, files: list[Path],
               warmup: int = 3) -> dict:
    """Median milliseconds of each predictor's model alone (a uint8 image, batch 1) and of
    file -> decisions, timed in `ROUNDS` rounds that take turns over the predictors, so a
    shared machine's swings of speed fall on every format alike."""
    times = {i: ([], []) for i in predictors}
    def decide_file(predictor, path):
        image = load_rgb(path, predictor.img_size)[None]
        return predictor.decisions(predictor.head_scores(predictor.raw(image)))

    for predictor in predictors.values():
        for image, path in zip(images[:warmup], files[:warmup]):
            predictor.raw(image[None])
            decide_file(predictor, path)
    for r in range(ROUNDS):
        for i, predictor in predictors.items():
            model_times, file_times = times[i]
            for image in images[r::ROUNDS]:
                start = time.perf_counter()
                predictor.raw(image[None])
                model_times.append((time.perf_counter() - start) * 1000.0)
            for path in files[r::ROUNDS]:
                start = time.perf_counter()
                decide_file(predictor, path)
                file_times.append((time.perf_counter() - start) * 1000.0)
    return {i: tuple(statistics.median(t) if t else float("nan") for t in pair)
            for i, pair in times.items()}


def _write(table: pd.DataFrame, folder: Path, reference: Predictor, split: str, threads,
           images: int) -> None:
    folder.mkdir(exist_ok=True)
    with atomic_path(folder / f"{NAME}.csv") as tmp:
        table.to_csv(tmp, index=False)
    title = (f"{reference.path.name}: {images:,} {split} images, batch 1, "
             f"{threads or 'all'} thread(s)")
    with atomic_path(folder / f"{NAME}.md") as tmp:
        Path(tmp).write_text(f"# {title}\n\n{markdown_table(table)}\n")
    plot_benchmark(table, key_head_of(reference), folder / f"{NAME}.png", title)
