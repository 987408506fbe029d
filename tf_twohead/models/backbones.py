"""One place that maps `model.backbone` to a feature extractor and its input normalisation.

- `shufflenet_v2`: our ShuffleNetV2 (torchvision names, PyTorch padding and init), widths
  0.5 / 1.0 / 1.5 / 2.0; ImageNet weights are torchvision's, ported
  (`pretrained/torchvision.py`) and loaded (`pretrained/load.py`).
- `mobilenet_v3_small`, `mobilenet_v3_large`: `keras.applications` MobileNetV3 without
  its classifier, nested as one layer named after the backbone; `width` is its `alpha`
  (0.75 or 1.0, the two with ImageNet weights); ImageNet weights are Keras' own download.

Every backbone ends at its last feature map, where the heads split, and says how the
uint8 input is normalised inside the model: `(x / 255 - mean) / std` per channel.
"""

from __future__ import annotations

import keras

from tf_twohead.core.defaults import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MOBILENET_ALPHAS,
    STAGE_REPEATS,
)
from tf_twohead.core.errors import WeightsError
from tf_twohead.models.shufflenet import apply_backbone, stage_channels

KERAS_APPLICATIONS = {"mobilenet_v3_small": "MobileNetV3Small",
                      "mobilenet_v3_large": "MobileNetV3Large"}
# keras.applications' MobileNetV3 preprocessing, x / 127.5 - 1, written as mean and std.
MINUS_ONE_TO_ONE = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def normalization(backbone: str) -> tuple[tuple, tuple]:
    """The per-channel `(mean, std)` of [0, 1] pixels that `backbone` was trained with."""
    if backbone == "shufflenet_v2":
        return IMAGENET_MEAN, IMAGENET_STD
    _check(backbone)
    return MINUS_ONE_TO_ONE


def check_width(backbone: str, width: float) -> None:
    """Raise ValueError when `width` is not a width multiplier of `backbone`."""
    if backbone == "shufflenet_v2":
        stage_channels(width)
    elif float(width) not in MOBILENET_ALPHAS:
        raise ValueError(f"{backbone}: model.width is MobileNetV3's alpha, one of "
                         f"{MOBILENET_ALPHAS} (the ones with ImageNet weights). "
                         f"Received: width={width}")


def apply_features(x, backbone: str = "shufflenet_v2", width: float = 0.5,
                   init: str = "torch", weights: str | None = None, stage_repeats=None):
    """From the normalised float image to the backbone's last feature map.

    Args:
        x: float tensor `(B, H, W, 3)`, normalised as `normalization(backbone)` says.
        backbone: str. One of `BACKBONES`. Defaults to "shufflenet_v2".
        width: float. ShuffleNet's width multiplier or MobileNetV3's alpha.
        init: str. ShuffleNet's initialisation ("torch" or "keras"); keras.applications
            models keep their own.
        weights: None or "imagenet". keras.applications' own weights (downloaded once
            by Keras); ShuffleNet's are loaded afterwards (`pretrained.load.load_pretrained`).
        stage_repeats: three ints or None. ShuffleNet's units per stage (None:
            torchvision's); MobileNetV3 has no such choice.
    """
    check_width(backbone, width)
    if backbone == "shufflenet_v2":
        return apply_backbone(x, width, init, stage_repeats)
    if stage_repeats is not None and tuple(stage_repeats) != STAGE_REPEATS:
        raise ValueError(f"stage_repeats is ShuffleNetV2's; {backbone} has its own depth. "
                         f"Received: stage_repeats={list(stage_repeats)}")
    return keras_application(backbone, width, tuple(x.shape[1:]), weights)(x)


def keras_application(backbone: str, width: float, input_shape: tuple,
                      weights: str | None = None) -> keras.Model:
    """The keras.applications feature extractor (no classifier, no preprocessing).

    With `weights="imagenet"` Keras downloads its weights once into `~/.keras/models`;
    when that fails (offline) the error says how to bring the file by hand.
    """
    _check(backbone)
    app = getattr(keras.applications, KERAS_APPLICATIONS[backbone])
    try:
        return app(input_shape=input_shape, alpha=float(width), include_top=False,
                   weights=weights, include_preprocessing=False, name=backbone)
    except Exception as e:  # Keras' get_file wraps URL errors in a bare Exception
        if weights is None:
            raise
        raise WeightsError(
            f"model.pretrained=imagenet: Keras could not fetch {backbone}'s ImageNet weights "
            f"({e}). Offline? Run once on a machine that is online and copy "
            "~/.keras/models/weights_mobilenet_v3_*_no_top_v2.h5 into this machine's "
            "~/.keras/models/ (or $KERAS_HOME/models/), or train with model.pretrained=null."
        ) from None


def backbone_layer_names(backbone: str) -> tuple[str, ...]:
    """Name prefixes of the layers that make up `backbone` in a built model."""
    if backbone == "shufflenet_v2":
        return ("conv1_", "stage2_", "stage3_", "stage4_")
    _check(backbone)
    return (backbone,)


def _check(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}. Received: backbone={backbone!r}")
