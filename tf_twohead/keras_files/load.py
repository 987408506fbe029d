"""`load_model`: a `.keras` file written by tf-twohead, loaded safely in any process.

Every class such a file may name (the `FusedBatchNormalization` layer of every model,
the `TorchAdam` optimizer and `OneCycle` schedule of a compiled save, the softmax
baseline's per-head metrics) is registered with `keras.saving` where it is defined, and
`import tf_twohead` imports those modules the moment Keras is imported
(`core.api.serializable_modules`), so `import tf_twohead; keras.saving.load_model(...)`
works in a fresh process too.

Example:

>>> import tf_twohead, keras
>>> model = keras.saving.load_model("saved_models/two_head/best.keras")
"""

from __future__ import annotations

from pathlib import Path

import keras

from tf_twohead.core.api import public
from tf_twohead.core.errors import ModelFileError
from tf_twohead.keras_files.check import check_keras_file


@public
def load_model(path, compile: bool = False) -> keras.Model:
    """Load a `.keras` file written by tf-twohead, in any process.

    Args:
        path: str. The `.keras` file.
        compile: bool. Restore the optimizer (with its state), losses and metrics, as
            `--resume` does. Defaults to False (inference).

    Keras' `safe_mode` stays on (no Lambda layers, no arbitrary callables). Before Keras
    builds anything, `keras_files.check.check_keras_file` bounds the archive, the weights and
    the parameters the config declares. Any file refused or unreadable is a
    `ModelFileError` naming it.

    Example:

    >>> model = load_model("saved_models/two_head/best.keras")
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"Model file not found: {path}")
    if Path(path).suffix != ".keras":  # Keras would read a legacy .h5 unchecked
        raise ModelFileError(f"{path}: expected a .keras file (Keras 3's zip format)")
    check_keras_file(path)
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as e:  # Keras raises many types for a file it refuses or cannot read
        reason = " ".join(str(e).split())[:300]
        raise ModelFileError(f"{path}: not a model Keras can load safely ({type(e).__name__}: "
                             f"{reason}). Only load .keras files written by tf-twohead or "
                             "Keras from sources you trust.") from None
