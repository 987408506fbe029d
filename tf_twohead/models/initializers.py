"""Weight initialisation: PyTorch's defaults (the reference's) or Keras' own.

torchvision's ShuffleNetV2 does not re-initialise its layers, so the reference starts
from PyTorch's defaults: every conv, depthwise conv and linear kernel is
`kaiming_uniform_(a=sqrt(5))`, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and a linear
bias is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) too. Keras' defaults are Glorot-uniform
kernels and zero biases. The difference is largest for depthwise kernels: Keras counts
their fan-in as k*k*channels, PyTorch as k*k (one input channel per group), so Glorot
starts them about 4-10x smaller. With PyTorch's init the main head of the reference
task learns as fast as in the reference (bench/recipe_parity.py).

Each call returns a new initializer object: Keras initializers without a seed draw
their seed once, when created, so one object shared by several layers would give them
identical weights. `keras.utils.set_random_seed` makes the draws reproducible.
"""

from __future__ import annotations

import math

import keras

from tf_twohead.core.defaults import INITS


def kernel_initializer(init: str, fan_in: int):
    """The kernel initializer of a conv, depthwise conv or dense layer.

    Args:
        init: str. "torch" (PyTorch's default) or "keras" (Glorot uniform).
        fan_in: int. Inputs per output unit as PyTorch counts them: k*k*in_channels for
            a conv, k*k for a depthwise conv, in_features for a dense layer.
    """
    _check(init)
    if init == "keras":
        return keras.initializers.GlorotUniform()
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def bias_initializer(init: str, fan_in: int):
    """The bias initializer of a dense layer: U(+-1/sqrt(fan_in)) for "torch", zeros for "keras"."""
    _check(init)
    if init == "keras":
        return keras.initializers.Zeros()
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _check(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}. Received: init={init!r}")
