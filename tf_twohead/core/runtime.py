"""The process a run trains in: Keras' engine, TensorFlow's thread count and its oneDNN
kernels.

Example:

>>> set_threads(2, step_pixels=64 * 64 * 64)  # before TensorFlow's first op
>>> warn_if_onednn_off()
"""

from __future__ import annotations

import os
import sys
import warnings

from tf_twohead.core.api import public
from tf_twohead.core.errors import ConfigError

# A training step smaller than this many input pixels (batch x size x size) runs faster
# as two ops at a time on half the threads each than as one op on all of them: at 64 px
# most of a step's ~1,000 ops are too small to split across threads, and the split's
# hand-off costs more than it saves. Measured on 2 cores (docs/benchmarks.md, "Threads"):
# batch 64 at 64 px +19-29% with (intra 1, inter 2), 96 px even, 128 px -26%.
SMALL_STEP_PIXELS = 64 * 80 * 80
_split: tuple[int, int] | None = None  # (intra, inter) when set_threads split the threads


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as a container sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_plan(threads: int | None, step_pixels: int | None = None) -> tuple[int, int] | None:
    """`(intra_op, inter_op)` threads for TensorFlow, or None to keep its defaults.

    Args:
        threads: int or None. CPU threads to use; None means all `available_cpus()`.
        step_pixels: int or None. Input pixels a training step sees (batch x size x
            size); below `SMALL_STEP_PIXELS` the threads are split between two
            concurrent ops. None (inference, an unknown step) keeps one op on all threads.
    """
    small = _small(step_pixels)
    if not threads and not small:
        return None
    threads = int(threads or available_cpus())
    if threads == 1:
        return 1, 1
    if small:
        return threads // 2, 2
    return threads, 2


def _small(step_pixels: int | None) -> bool:
    return step_pixels is not None and step_pixels < SMALL_STEP_PIXELS


@public
def set_threads(threads: int | None, step_pixels: int | None = None) -> None:
    """Limit TensorFlow to `threads` CPU threads (`thread_plan`); call before the first
    TF op runs. `step_pixels` (batch x size x size of a training step) lets a small step
    run two ops at a time: `tf-twohead train` does this; in a script of your own, call
    `tt.set_threads(None, step_pixels=64 * 64 * 64)` before building the model."""
    plan = thread_plan(threads, step_pixels)
    if plan is None:
        return
    import tensorflow as tf

    intra, inter = plan
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TF already running in this process (a notebook, a test)
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != intra:
            warnings.warn(f"TensorFlow is already running with {current or 'all'} threads; "
                          f"threads={threads} applies only in a new process.", stacklevel=2)
        return
    global _split
    _split = plan if inter > 1 and _small(step_pixels) else None


def threads_text() -> str:
    """The threads TensorFlow trains with, for a run's start summary."""
    import tensorflow as tf

    if _split is not None:
        intra, inter = _split
        return f"{intra * inter} threads ({inter} ops at a time, {intra} each)"
    threads = tf.config.threading.get_intra_op_parallelism_threads() or available_cpus()
    return f"{threads} thread{'s' if threads > 1 else ''}"


def select_backend(name: str) -> None:
    """Make `name` ("tensorflow" or "jax") Keras' engine in this process; call before
    Keras is imported (the CLI does, from `train.backend`).

    Raises:
        ConfigError: Keras is already running on another engine in this process.
    """
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != name:
            raise ConfigError(
                f"train.backend={name}, but Keras is already running on {current} in this "
                f"process: set KERAS_BACKEND={name} before importing keras (the tf-twohead "
                "command line does this itself).")
        return
    os.environ["KERAS_BACKEND"] = name


def warn_if_onednn_off() -> None:
    """Say so when TensorFlow runs without its oneDNN kernels on an x86 CPU.

    `import tf_twohead` turns them on (they are off by default on CPUs without
    AVX-512), but only if TensorFlow was not imported first; training is then about 2x
    slower. A user's explicit TF_ENABLE_ONEDNN_OPTS=0 is respected silently.
    """
    from tensorflow.python.util import _pywrap_util_port as port

    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" or not port.IsX86Available():
        return
    if not port.IsMklEnabled():
        warnings.warn(
            "TensorFlow's oneDNN CPU kernels are off: training runs about 2x slower on this "
            "CPU. Import tf_twohead before tensorflow and keras, or set "
            "TF_ENABLE_ONEDNN_OPTS=1 before starting Python.", stacklevel=3)
