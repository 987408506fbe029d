"""The process a run trains in: TensorFlow's thread count and its oneDNN kernels.

Example:

>>> set_threads(2)  # before TensorFlow runs its first op
>>> warn_if_onednn_off()
"""

from __future__ import annotations

import os
import warnings


def set_threads(threads: int | None) -> None:
    """Limit TensorFlow to `threads` CPU threads; call before the first TF op runs."""
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1 if threads == 1 else 2)
    except RuntimeError:  # TF already running in this process (a notebook, a test)
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != int(threads):
            warnings.warn(f"TensorFlow is already running with {current or 'all'} threads; "
                          f"threads={threads} applies only in a new process.", stacklevel=2)


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
