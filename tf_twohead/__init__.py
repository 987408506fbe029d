"""tf-twohead: small, fast multi-head image classifiers (ShuffleNetV2) for Keras 3.

The public API is re-exported lazily (PEP 562): `import tf_twohead` loads neither
TensorFlow nor Keras, so the CLI can check a user's arguments and quiet TensorFlow's
logging before TensorFlow loads. The package's Keras classes are registered the moment
Keras is imported (see `tf_twohead.saving`), so a `.keras` file loads with plain
`keras.saving.load_model` after `import tf_twohead`:

>>> import tf_twohead as tt
>>> cfg = tt.load_config("configs/two_head.yaml", ["data.root=demo_data"])
>>> model = tt.compile_model(tt.build_model(cfg), cfg)
>>> train_ds, val_ds = tt.make_datasets(cfg)
>>> model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs)
"""

import importlib
import os

import wrapt

from tf_twohead.version import __version__

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with AVX-512; on
# AVX2-only CPUs it falls back to Eigen kernels that train ShuffleNet 2-2.5x slower
# (bench/bench_core.py prints both). The switch is read once, when TensorFlow loads, so
# it must be set before: `setdefault` leaves a user's own TF_ENABLE_ONEDNN_OPTS=0 alone.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _register(_keras_module) -> None:
    importlib.import_module("tf_twohead.saving")


# Runs `_register` once Keras has finished importing, or at once if it already has.
wrapt.register_post_import_hook(_register, "keras")

_EXPORTS = {
    # configuration
    "Config": "tf_twohead.config",
    "load_config": "tf_twohead.config",
    # errors a user catches
    "TwoHeadError": "tf_twohead.errors",
    "ConfigError": "tf_twohead.errors",
    "DataError": "tf_twohead.errors",
    "WeightsError": "tf_twohead.errors",
    "TorchFileError": "tf_twohead.errors",
    "RunExistsError": "tf_twohead.errors",
    "ExportError": "tf_twohead.errors",
    "ParityError": "tf_twohead.errors",
    # models
    "build": "tf_twohead.models",
    "shufflenet_v2": "tf_twohead.models",
    "build_combined": "tf_twohead.models.combined",
    "set_encoders_frozen": "tf_twohead.models.combined",
    "build_model": "tf_twohead.pretrained",
    "load_pretrained": "tf_twohead.pretrained",
    "import_torchvision": "tf_twohead.weights",
    "load_model": "tf_twohead.saving",
    "OneCycle": "tf_twohead.optimizers",
    "TorchAdam": "tf_twohead.optimizers",
    # data
    "make_datasets": "tf_twohead.data.pipeline",
    "make_dataset": "tf_twohead.data.pipeline",
    "load_split": "tf_twohead.data.cache",
    "load_rgb": "tf_twohead.data.images",
    "write_tfds": "tf_twohead.data.tfds",
    # training, searches
    "compile_model": "tf_twohead.recipe",
    "train": "tf_twohead.training",
    "train_staged": "tf_twohead.stages",
    "tune": "tf_twohead.tuning.search",
    "TwoHeadHyperModel": "tf_twohead.tuning.hypermodel",
    # results, export, inference
    "evaluate": "tf_twohead.evaluation",
    "compare": "tf_twohead.comparison",
    "to_tflite": "tf_twohead.export",
    "Predictor": "tf_twohead.inference",
    "audit": "tf_twohead.auditing",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tf_twohead' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return sorted([*globals(), *_EXPORTS])
