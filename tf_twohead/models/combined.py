"""The hierarchical "combined encoders" model: a coarse and a fine encoder, one head.

A reimplementation of a fastai experiment (Isaac Flath, "Hierarchical architecture",
2021): encoder A learns coarse labels (pet species), encoder B fine labels (breed);
both are cut before their classifiers, their feature maps concatenated, and a new head
learns the fine labels. The layout, from `../shared/research/combined-encoders-and-tfds.md`:

    uint8 image -> normalise -> coarse_encoder ─┐
                             -> fine_encoder   ─┴─ concat (channels)
    -> concat pooling [max, avg] -> BN -> Dropout 0.25 -> Dense 512 (no bias) -> ReLU
    -> BN -> Dropout 0.5 -> Dense(classes, no bias) -> softmax "probs"

Each encoder is the softmax baseline's body (`heads.apply_body`: backbone + conv5),
nested as one `keras.Model` named `coarse_encoder` / `fine_encoder` with the baseline's
layer names inside, so a trained softmax model's weights copy in by name
(`load_encoder`). Head BatchNorms are fastai's (`momentum` 0.9 in Keras terms, epsilon
1e-5, beta 1e-3); head Dense kernels start as PyTorch's `nn.Linear` (the post's head
was never re-initialised) or Keras' Glorot, per `init`.
"""

from __future__ import annotations

import keras
from keras import layers

from tf_twohead.core.api import public
from tf_twohead.core.defaults import FROZEN_BN, SOFTMAX_OUTPUT
from tf_twohead.models.heads import apply_body, apply_input
from tf_twohead.models.initializers import kernel_initializer

ENCODERS = ("coarse_encoder", "fine_encoder")
HIDDEN = 512
DROPOUT = (0.25, 0.5)


def build_encoder(img_size: int, width: float = 0.5, head_width: int = 1024,
                  init: str = "torch", backbone: str = "shufflenet_v2",
                  weights: str | None = None, name: str = "encoder",
                  stage_repeats=None) -> keras.Model:
    """One encoder: normalised float image `(S, S, 3)` -> the body's last feature map."""
    inputs = keras.Input((img_size, img_size, 3), name=f"{name}_input")
    return keras.Model(inputs, apply_body(inputs, backbone, width, head_width, init, weights,
                                          stage_repeats), name=name)


@public
def build_combined(img_size: int = 256, width: float = 0.5, head_width: int = 1024,
                   num_classes: int = 37, init: str = "torch",
                   backbone: str = "shufflenet_v2", weights: str | None = None,
                   name: str = "combined", stage_repeats=None) -> keras.Model:
    """Two encoders, concat pooling and fastai's head; output "probs" over `num_classes`.

    Args:
        img_size: int. Side of the square uint8 RGB input.
        width: float. Backbone width multiplier (ShuffleNet) or alpha (MobileNetV3).
        head_width: int. Channels of each encoder's conv5 (its feature map).
        num_classes: int. Fine classes.
        init: str. "torch" or "keras" initialisation (encoders and head).
        backbone: str. Any of `core.defaults.BACKBONES`; both encoders use it.
        weights: None or "imagenet" (keras.applications backbones).
        stage_repeats: three ints or None. ShuffleNetV2's units per stage (None:
            torchvision's), in both encoders.

    Example:

    >>> model = build_combined(64, num_classes=10)
    >>> model.output_names
    ['probs']
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
    inputs, x = apply_input(img_size, backbone)
    features = [build_encoder(img_size, width, head_width, init, backbone, weights, n,
                              stage_repeats)(x) for n in ENCODERS]
    f = layers.Concatenate(name="features")(features)
    # fastai's AdaptiveConcatPool2d: max first, then average.
    x = layers.Concatenate(name="concat_pool")([
        layers.GlobalMaxPooling2D(name="max_pool")(f),
        layers.GlobalAveragePooling2D(name="avg_pool")(f)])
    for i, units in enumerate((HIDDEN, int(num_classes)), start=1):
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"head_bn{i}",
                                      beta_initializer=keras.initializers.Constant(1e-3))(x)
        x = layers.Dropout(DROPOUT[i - 1], name=f"head_dropout{i}")(x)
        x = layers.Dense(units, use_bias=False, name=f"head_fc{i}",
                         kernel_initializer=kernel_initializer(init, x.shape[-1]))(x)
        if i == 1:
            x = layers.ReLU(name="head_relu")(x)
    probs = layers.Activation("softmax", name=SOFTMAX_OUTPUT)(x)
    return keras.Model(inputs, {SOFTMAX_OUTPUT: probs}, name=name)


def encoders(model: keras.Model) -> list[keras.Model]:
    """The combined model's two nested encoders, coarse first."""
    return [model.get_layer(name) for name in ENCODERS]


def load_encoder(model: keras.Model, encoder: str, source: keras.Model) -> int:
    """Copy a trained softmax model's body (backbone + conv5) into one encoder, by name.

    Args:
        model: keras.Model. A combined model.
        encoder: str. "coarse_encoder" or "fine_encoder".
        source: keras.Model. A softmax model (`heads.build_softmax`) of the same
            backbone, width and head_width; its pooling and classifier are left out,
            which is the "cut".

    Returns:
        The number of layers copied.
    """
    target = model.get_layer(encoder)
    copied = 0
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
            copied += 1
    return copied


@public
def set_encoders_frozen(model: keras.Model, frozen: bool, bn: str = "train") -> None:
    """Freeze or unfreeze both encoders; recompile afterwards (Keras reads it at compile).

    Args:
        model: keras.Model. A combined model.
        frozen: bool. Freeze (only the head trains) or unfreeze everything.
        bn: str. How frozen encoders treat BatchNorm. "train" (the default, fastai's
            `train_bn`): BN layers stay trainable, so they normalise with batch
            statistics, update their moving statistics and train gamma/beta, while
            convolutions are fixed. "inference" (Keras' convention): the whole encoder
            is non-trainable and its BN runs on its moving statistics.
    """
    if bn not in FROZEN_BN:
        raise ValueError(f"bn must be one of {FROZEN_BN}. Received: bn={bn!r}")
    for encoder in encoders(model):
        # Every layer by itself: a nested Functional model's `trainable` setter does not
        # reach the layers inside it.
        for layer in encoder._flatten_layers(include_self=True, recursive=True):
            leaf = not list(layer._flatten_layers(include_self=False, recursive=False))
            if not frozen:
                layer.trainable = True
            elif bn == "inference":
                layer.trainable = False
            else:  # containers stay trainable, so their BN leaves can train
                layer.trainable = not leaf or isinstance(layer, layers.BatchNormalization)
