"""tf-twohead: small, fast multi-head image classifiers (ShuffleNetV2) for Keras 3.

The public API (every name declared `@public` where it is defined, `core.api`) is
served lazily (PEP 562): `import tf_twohead` loads neither TensorFlow nor Keras, so the
CLI can check a user's arguments and quiet TensorFlow's logging before TensorFlow loads.
The package's Keras classes are registered the moment Keras is imported, so a `.keras`
file loads with plain `keras.saving.load_model` after `import tf_twohead`:

>>> import tf_twohead as tt
>>> cfg = tt.load_config("configs/two_head.yaml", ["data.root=demo_data"])
>>> model = tt.compile_model(tt.build_model(cfg), cfg)
>>> train_ds, val_ds = tt.make_datasets(cfg)
>>> model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs)
"""

import importlib
import os

import wrapt

from tf_twohead.core import api
from tf_twohead.core.version import __version__ as __version__

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with AVX-512; on
# AVX2-only CPUs it falls back to Eigen kernels that train ShuffleNet 2-2.5x slower
# (bench/bench_core.py prints both). The switch is read once, when TensorFlow loads, so
# it must be set before: `setdefault` leaves a user's own TF_ENABLE_ONEDNN_OPTS=0 alone.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _register(_keras_module) -> None:
    # Every class a `.keras` file may name, registered by importing its module.
    for module in api.serializable_modules():
        importlib.import_module(module)


# Runs `_register` once Keras has finished importing, or at once if it already has.
wrapt.register_post_import_hook(_register, "keras")

def __getattr__(name):
    if name == "__all__":  # read from the source only when asked (`from tf_twohead import *`)
        return ["__version__", *api.public_names()]
    module = api.public_names().get(name)
    if module is None:
        raise AttributeError(f"module 'tf_twohead' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted([*globals(), *api.public_names()])
