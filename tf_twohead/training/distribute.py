"""`train.strategy`: which `tf.distribute` strategy builds, compiles and trains a model.

One machine only. `auto` mirrors the model over every GPU when there are several and
otherwise uses TensorFlow's default (no-op) strategy; `mirrored` mirrors over the GPUs,
or over the logical CPU devices when there is no GPU (how the tests run it), `none`
never distributes. Keras 3 on TensorFlow cannot train under MultiWorkerMirroredStrategy
(keras-team/keras#20585), so work across machines is a distributed search instead
(`tuning`, Keras Tuner's chief/worker mode); `config.validate` says so.

Under a mirrored strategy `train.batch_size` is the global batch: each of N replicas
sees batch_size / N images per step, and BatchNorm uses each replica's own statistics.

Example:

>>> with scope(cfg):
...     model = pretrained.build_model(cfg)
...     recipe.compile_model(model, cfg)
"""

from __future__ import annotations

import contextlib
import functools
import warnings


@functools.cache
def strategy_for(name: str):
    """The process-wide strategy for a `train.strategy` value (created once, then reused).

    Args:
        name: str. "auto", "none" or "mirrored".
    """
    import tensorflow as tf

    if name not in ("auto", "none", "mirrored"):
        raise ValueError(f"strategy must be auto, none or mirrored. Received: {name!r}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "none" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        warnings.warn(f"train.strategy=mirrored found one device ({devices[0]}); training "
                      "runs as without a strategy.", stacklevel=2)
    return tf.distribute.MirroredStrategy(devices)


def scope(cfg):
    """A context in which to build, load and compile the model `cfg` trains.

    The default strategy needs no scope, so nothing changes for a one-device run.
    """
    import tensorflow as tf

    strategy = strategy_for(cfg.train.strategy)
    if strategy is tf.distribute.get_strategy():
        return contextlib.nullcontext(strategy)
    return strategy.scope()


def replicas(cfg) -> int:
    """How many replicas train in sync under `cfg`'s strategy (1 without one)."""
    return int(strategy_for(cfg.train.strategy).num_replicas_in_sync)
