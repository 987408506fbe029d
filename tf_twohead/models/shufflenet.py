"""ShuffleNetV2 (Ma et al., 2018) as Keras functional blocks, laid out like torchvision.

The architecture is data: `STAGE_REPEATS` and `STAGE_OUT_CHANNELS` are expanded by a
loop. Layers are named after torchvision's modules (`stage2_0_branch2_3` is
`stage2[0].branch2[3]`), stride-2 convolutions pad one pixel on every side as PyTorch
does (so ported weights line up), and BatchNorm uses eps 1e-5 and PyTorch's momentum.
Channel split is `ops.split` and channel shuffle is Reshape -> Permute -> Reshape, all
built-in ops that convert to TFLite builtins. BatchNorm is `FusedBatchNormalization`,
the built-in layer with TensorFlow's fused kernel for training (see `batchnorm.py`).
Kernels start from PyTorch's default initialisation unless `init="keras"`.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tf_twohead.core.api import public
from tf_twohead.core.defaults import MAX_STAGE_REPEATS, STAGE_REPEATS
from tf_twohead.models.batchnorm import FusedBatchNormalization
from tf_twohead.models.initializers import bias_initializer, kernel_initializer

# Units per stage (stage2, stage3, stage4; the first unit of each has stride 2) are
# torchvision's `STAGE_REPEATS` (core.defaults); `model.stage_repeats` makes a shallower or
# deeper network, as torchvision's `ShuffleNetV2(stages_repeats, ...)` does. ImageNet
# weights fit torchvision's only.
# Output channels of conv1, stage2, stage3, stage4 and conv5, per width multiplier.
STAGE_OUT_CHANNELS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch's momentum=0.1 expressed the Keras way


def stage_channels(width: float) -> tuple[int, ...]:
    """The channel table of a width multiplier (0.5, 1.0, 1.5 or 2.0)."""
    if float(width) not in STAGE_OUT_CHANNELS:
        raise ValueError(
            f"ShuffleNetV2 width must be one of {sorted(STAGE_OUT_CHANNELS)}. "
            f"Received: width={width}"
        )
    return STAGE_OUT_CHANNELS[float(width)]


def stage_repeats(repeats=None) -> tuple[int, int, int]:
    """Units per stage: three counts of 1..MAX_REPEATS, or torchvision's for None."""
    if repeats is None:
        return STAGE_REPEATS
    repeats = tuple(repeats)
    if len(repeats) != 3 or not all(isinstance(r, int) and 1 <= r <= MAX_STAGE_REPEATS
                                    for r in repeats):
        raise ValueError(f"stage_repeats must be three unit counts of 1 to {MAX_STAGE_REPEATS} "
                         f"(torchvision's are {list(STAGE_REPEATS)}). Received: "
                         f"stage_repeats={list(repeats)}")
    return repeats


def apply_conv_bn(x, filters: int, kernel_size: int, strides: int, name: str,
                  depthwise: bool = False, relu: bool = True, init: str = "torch"):
    """Conv (or depthwise conv) without bias, BatchNorm, optional ReLU.

    Layer names: `{name}` for the conv, then `{name}_bn` and `{name}_relu`, unless the
    caller passes torchvision-style indices through `name` (see `apply_inverted_residual`).
    `init` is "torch" (PyTorch's default kernel init) or "keras" (Glorot).
    """
    conv_name, bn_name, relu_name = name if isinstance(name, tuple) else (
        name, f"{name}_bn", f"{name}_relu")
    padding = "same"
    smaller = any(d is not None and d < kernel_size for d in x.shape[1:3])
    if kernel_size > 1 and (strides > 1 or (depthwise and smaller)):
        # PyTorch pads (k-1)/2 on every side; Keras "same" would pad only bottom/right.
        # A depthwise conv whose input is smaller than its kernel (stage4 at 64 px is
        # 2x2) is padded explicitly too: oneDNN's filter gradient for "same" then takes
        # a slow path (4 ms against 0.6 ms, ~9% of a 64 px training step).
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{conv_name}_pad")(x)
        padding = "valid"
    if depthwise:
        x = layers.DepthwiseConv2D(
            kernel_size, strides, padding=padding, use_bias=False, name=conv_name,
            depthwise_initializer=kernel_initializer(init, kernel_size * kernel_size))(x)
    else:
        x = layers.Conv2D(
            filters, kernel_size, strides, padding=padding, use_bias=False, name=conv_name,
            kernel_initializer=kernel_initializer(init, kernel_size ** 2 * x.shape[-1]))(x)
    x = FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=bn_name)(x)
    if relu:
        x = layers.ReLU(name=relu_name)(x)
    return x


def apply_channel_shuffle(x, groups: int, name: str):
    """Interleave channel groups: Reshape -> Permute -> Reshape (torchvision's shuffle)."""
    height, width, channels = x.shape[1:]
    x = layers.Reshape((height, width, groups, channels // groups), name=f"{name}_split")(x)
    x = layers.Permute((1, 2, 4, 3), name=f"{name}_permute")(x)
    return layers.Reshape((height, width, channels), name=f"{name}_merge")(x)


def apply_inverted_residual(x, out_channels: int, strides: int, name: str,
                            init: str = "torch"):
    """One ShuffleNetV2 unit; `name` is e.g. "stage2_0" (torchvision's `stage2[0]`)."""
    branch = out_channels // 2
    if strides == 1:
        # Channel split: the first half passes through, the second goes through branch2.
        # One split op, not two slices: the gradient of a split is a concat, while each
        # slice's gradient pads a full-size zero tensor (~10% of a CPU training step).
        shortcut, x2 = ops.split(x, 2, axis=-1)
    else:
        b1 = f"{name}_branch1"
        shortcut = apply_conv_bn(x, None, 3, strides, (f"{b1}_0", f"{b1}_1", None),
                                 depthwise=True, relu=False, init=init)
        shortcut = apply_conv_bn(shortcut, branch, 1, 1, (f"{b1}_2", f"{b1}_3", f"{b1}_4"),
                                 init=init)
        x2 = x
    b2 = f"{name}_branch2"
    x2 = apply_conv_bn(x2, branch, 1, 1, (f"{b2}_0", f"{b2}_1", f"{b2}_2"), init=init)
    x2 = apply_conv_bn(x2, None, 3, strides, (f"{b2}_3", f"{b2}_4", None), depthwise=True,
                       relu=False, init=init)
    x2 = apply_conv_bn(x2, branch, 1, 1, (f"{b2}_5", f"{b2}_6", f"{b2}_7"), init=init)
    x = layers.Concatenate(name=f"{name}_concat")([shortcut, x2])
    return apply_channel_shuffle(x, 2, name=f"{name}_shuffle")


def apply_backbone(x, width: float = 0.5, init: str = "torch", repeats=None):
    """The ShuffleNetV2 body from conv1 to the end of stage4 (no conv5, no classifier).

    Args:
        x: float tensor `(B, H, W, 3)`, already normalised.
        width: float. Width multiplier, 0.5 / 1.0 / 1.5 / 2.0. Defaults to 0.5.
        init: str. "torch" (PyTorch's default initialisation) or "keras". Defaults to
            "torch".
        repeats: three ints or None. Units of stage2, stage3, stage4; None is
            torchvision's (4, 8, 4).
    """
    channels, repeats = stage_channels(width), stage_repeats(repeats)
    x = apply_conv_bn(x, channels[0], 3, 2, ("conv1_0", "conv1_1", "conv1_2"), init=init)
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)  # inputs are >= 0 after ReLU
    x = layers.MaxPooling2D(3, 2, name="maxpool")(x)
    for stage, (units, out) in enumerate(zip(repeats, channels[1:4]), start=2):
        for unit in range(units):
            x = apply_inverted_residual(x, out, 2 if unit == 0 else 1, f"stage{stage}_{unit}",
                                        init)
    return x


def apply_dense(x, units: int, name: str, activation=None, init: str = "torch"):
    """A dense layer initialised like PyTorch's `nn.Linear` (or Keras' defaults)."""
    fan_in = x.shape[-1]
    return layers.Dense(units, activation=activation, name=name,
                        kernel_initializer=kernel_initializer(init, fan_in),
                        bias_initializer=bias_initializer(init, fan_in))(x)


@public
def shufflenet_v2(width: float = 0.5, input_shape=(224, 224, 3), classes: int = 1000,
                  name: str | None = None, init: str = "torch") -> keras.Model:
    """The full torchvision ShuffleNetV2 classifier (float input, logits output).

    Useful to check the architecture against torchvision (the x0.5 model has
    1,366,792 trainable parameters there) and to port ImageNet weights.

    Example:

    >>> shufflenet_v2(0.5).count_params()  # includes BN moving statistics
    """
    inputs = keras.Input(input_shape, name="image")
    x = apply_backbone(inputs, width, init)
    x = apply_conv_bn(x, stage_channels(width)[4], 1, 1, ("conv5_0", "conv5_1", "conv5_2"),
                      init=init)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = apply_dense(x, classes, "fc", init=init)
    return keras.Model(inputs, outputs, name=name or f"shufflenet_v2_x{width}")
