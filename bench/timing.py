"""Helpers shared by the bench scripts: median timing, the CPU's vector extensions."""

from __future__ import annotations

import statistics
import time


def median_ms(fn, repeats: int = 100, warmup: int = 10) -> float:
    """Median wall time of `fn()` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def step_timer():
    """A Keras callback collecting each training step's wall time in `.times` (seconds).

    A per-step callback turns Keras' asynchronous dispatch off, as a per-step timer must.
    """
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    return StepTimer()


def cpu_flags() -> str:
    """The CPU's vector extensions (AVX, AVX2, AVX-512 ..., AMX, FMA), from /proc/cpuinfo.

    TensorFlow's CPU speed depends on them (about 3x between AVX2-only and AVX-512
    machines), so every figure is printed beside them.
    """
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(sorted({f for f in flags.split() if f.startswith(("avx", "amx", "fma"))}))
