"""The multi-head classifier and the single-softmax baseline, on raw uint8 RGB input.

Both models normalise inside (the backbone's mean/std), so `.keras`, `.tflite` and a phone
feed the same pixels. Outputs are a dict keyed by name: one sigmoid per head for the
multi-head model (`{"main": (B, 1), "aux": (B, 1)}`), `{"probs": (B, classes)}` for the
baseline. Nothing downstream relies on output order.
"""

from __future__ import annotations

import keras
from keras import layers

from tf_twohead.core.defaults import DEFAULT_HEADS, SOFTMAX_OUTPUT
from tf_twohead.models.backbones import apply_features, normalization
from tf_twohead.models.shufflenet import apply_conv_bn, apply_dense

NORMALIZE = "normalize"  # the input layer's name; `input_normalization` reads it back


def apply_input(img_size: int, backbone: str = "shufflenet_v2"):
    """The uint8 image input and its in-model normalisation: `(x / 255 - mean) / std`."""
    if int(img_size) < 32:
        raise ValueError(f"img_size must be at least 32. Received: img_size={img_size}")
    mean, std = normalization(backbone)
    inputs = keras.Input((img_size, img_size, 3), dtype="uint8", name="image")
    x = layers.Rescaling(
        scale=[1.0 / (255.0 * s) for s in std],
        offset=[-m / s for m, s in zip(mean, std)],
        name=NORMALIZE,
    )(inputs)
    return inputs, x


def normalization_affine(model: keras.Model, dtype: str = "float64"):
    """The per-channel `(scale, offset)` of a built model's input layer: `x * scale +
    offset` on uint8 pixels, each an array of 3."""
    import numpy as np

    layer = model.get_layer(NORMALIZE)
    return tuple(np.broadcast_to(np.asarray(v, dtype), (3,)).copy()
                 for v in (layer.scale, layer.offset))


def input_normalization(model: keras.Model) -> tuple[list, list]:
    """The `(mean, std)` of [0, 1] pixels a built model normalises with, from its layer."""
    scale, offset = normalization_affine(model)
    std = 1.0 / (255.0 * scale)
    return [round(float(v), 6) for v in -offset * std], [round(float(v), 6) for v in std]


def build_multi_head(img_size: int = 256, width: float = 0.5, head_width: int = 1024,
                     heads=None, name: str = "two_head", init: str = "torch",
                     backbone: str = "shufflenet_v2", weights: str | None = None,
                     head_widths: dict[str, int] | None = None,
                     stage_repeats=None) -> keras.Model:
    """A backbone to its last feature map, then per head 1x1 conv + BN + ReLU + pool + sigmoid.

    Args:
        img_size: int. Side of the square uint8 RGB input. Defaults to 256.
        width: float. Backbone width multiplier (0.5, 1.0, 1.5, 2.0). Defaults to 0.5.
        head_width: int. Channels of each head's 1x1 conv. Defaults to 1024.
        heads: dict or list of head names; only the names are used here. Defaults to
            `{"main": [2], "aux": [1]}`.
        name: str. Model name.
        init: str. "torch": PyTorch's default initialisation, as the reference; "keras":
            Glorot kernels and zero biases. Defaults to "torch".
        backbone: str. "shufflenet_v2" (ShuffleNetV2 to stage4), "mobilenet_v3_small" or
            "mobilenet_v3_large" (keras.applications). Defaults to "shufflenet_v2".
        weights: None or "imagenet": keras.applications' ImageNet weights for a
            MobileNetV3 backbone (ShuffleNet's are loaded by `pretrained.load.load_pretrained`).
        head_widths: dict or None. Head name -> that head's own 1x1 conv width; the
            other heads use `head_width`. A narrow auxiliary head is how a two-head
            model gets close to the single-head model's size.
        stage_repeats: three ints or None. ShuffleNetV2's units per stage; None is
            torchvision's (4, 8, 4).

    Example:

    >>> model = build_multi_head(64, heads=["main", "aux"])
    >>> sorted(model.output_names)
    ['aux', 'main']
    """
    head_names = list(heads if heads is not None else DEFAULT_HEADS)
    if not head_names or len(set(head_names)) != len(head_names):
        raise ValueError(f"heads must be unique, non-empty names. Received: heads={heads}")
    widths = {head: int((head_widths or {}).get(head, head_width)) for head in head_names}
    unknown = sorted(set(head_widths or {}) - set(head_names))
    if unknown or min(widths.values()) < 1:
        raise ValueError(f"head_width and head_widths must be positive, for known heads "
                         f"{head_names}. Received: head_width={head_width}, "
                         f"head_widths={head_widths}")
    inputs, x = apply_input(img_size, backbone)
    features = apply_features(x, backbone, width, init, weights, stage_repeats)
    outputs = {}
    for head in head_names:
        h = apply_conv_bn(features, widths[head], 1, 1, f"{head}_conv", init=init)
        h = layers.GlobalAveragePooling2D(name=f"{head}_pool")(h)
        outputs[head] = apply_dense(h, 1, head, activation="sigmoid", init=init)
    return keras.Model(inputs, outputs, name=name)


def apply_body(x, backbone: str = "shufflenet_v2", width: float = 0.5,
               head_width: int = 1024, init: str = "torch", weights: str | None = None,
               stage_repeats=None):
    """The softmax baseline's body: the backbone, then conv5 (1x1 conv + BN + ReLU).

    Everything before its pooling and classifier, i.e. what fastai's `cut` keeps; the
    combined model's encoders are this body (`models.combined`).
    """
    x = apply_features(x, backbone, width, init, weights, stage_repeats)
    return apply_conv_bn(x, int(head_width), 1, 1, ("conv5_0", "conv5_1", "conv5_2"), init=init)


def build_softmax(img_size: int = 256, width: float = 0.5, head_width: int = 1024,
                  num_classes: int = 3, name: str = "softmax", init: str = "torch",
                  backbone: str = "shufflenet_v2", weights: str | None = None,
                  stage_repeats=None) -> keras.Model:
    """The baseline: shared conv5 (`head_width` channels) + pool + Dense(classes, softmax).

    Its single output is named "probs", shape `(B, num_classes)`. `init`, `backbone`,
    `weights` and `stage_repeats` as in `build_multi_head`.
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
    inputs, x = apply_input(img_size, backbone)
    x = apply_body(x, backbone, width, head_width, init, weights, stage_repeats)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    probs = apply_dense(x, num_classes, SOFTMAX_OUTPUT, activation="softmax", init=init)
    return keras.Model(inputs, {SOFTMAX_OUTPUT: probs}, name=name)
