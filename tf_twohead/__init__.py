"""tf-twohead: small, fast multi-head image classifiers (ShuffleNetV2) for Keras 3.

The public API, re-exported lazily (PEP 562) so that `import tf_twohead` is instant
and the CLI can quiet TensorFlow's logging before TensorFlow loads:

>>> import tf_twohead as tt
>>> cfg = tt.load_config("configs/two_head.yaml", ["data.root=demo_data"])
>>> model = tt.compile_model(tt.build_model(cfg), cfg)
>>> train_ds, val_ds = tt.make_datasets(cfg)
>>> model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs)
"""

import importlib
import os

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with AVX-512; on
# AVX2-only CPUs it falls back to Eigen kernels that train ShuffleNet 2-2.5x slower
# (bench/bench_core.py prints both). The switch is read once, when TensorFlow loads, so
# it must be set before: this is the one global setting the package makes on import,
# and `setdefault` leaves a user's own TF_ENABLE_ONEDNN_OPTS=0 alone.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_EXPORTS = {
    "Config": ("tf_twohead.config", "Config"),
    "load_config": ("tf_twohead.config", "load"),
    "build": ("tf_twohead.models", "build"),
    "build_model": ("tf_twohead.models", "from_config"),
    "shufflenet_v2": ("tf_twohead.models", "shufflenet_v2"),
    "build_combined": ("tf_twohead.models.combined", "build_combined"),
    "set_encoders_frozen": ("tf_twohead.models.combined", "set_encoders_frozen"),
    "OneCycle": ("tf_twohead.optimizers", "OneCycle"),
    "load_model": ("tf_twohead.models", "load_model"),
    "import_torchvision": ("tf_twohead.weights", "import_torchvision"),
    "load_pretrained": ("tf_twohead.weights", "load_pretrained"),
    "compile_model": ("tf_twohead.training", "compile_model"),
    "train": ("tf_twohead.training", "train"),
    "train_staged": ("tf_twohead.stages", "train_staged"),
    "write_tfds": ("tf_twohead.data.tfds", "write_tfds"),
    "tune": ("tf_twohead.tuning", "tune"),
    "TwoHeadHyperModel": ("tf_twohead.tuning", "TwoHeadHyperModel"),
    "make_datasets": ("tf_twohead.data.pipeline", "make_datasets"),
    "make_dataset": ("tf_twohead.data.pipeline", "make_dataset"),
    "load_split": ("tf_twohead.data.cache", "load_split"),
    "load_rgb": ("tf_twohead.data.images", "load_rgb"),
    "DataError": ("tf_twohead.data.splits", "DataError"),
    "evaluate": ("tf_twohead.evaluation", "evaluate"),
    "compare": ("tf_twohead.evaluation", "compare"),
    "Predictor": ("tf_twohead.inference", "Predictor"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tf_twohead' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    return getattr(importlib.import_module(module), attr)
