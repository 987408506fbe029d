"""Latency as the reference article measures it: the median over images, one at a time,
of file -> probabilities (decode, EXIF, RGB, resize, model, activation). `evaluate` and
each search trial report it."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from tf_twohead.inference.predictor import Predictor


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
