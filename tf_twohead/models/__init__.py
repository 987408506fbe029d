"""Model builders from plain arguments: `build(kind=..., ...)` is the one entry point.

`models/` knows no `Config`, no files and no downloads (an import-linter contract keeps
it so); `pretrained.build_model(cfg)` builds the model a config describes and loads its
pretrained backbone.
"""

from __future__ import annotations

import keras

from tf_twohead.core.api import public
from tf_twohead.models.backbones import BACKBONES, backbone_layer_names
from tf_twohead.models.combined import build_combined
from tf_twohead.models.heads import (
    build_multi_head,
    build_softmax,
    input_normalization,
    normalization_affine,
)
from tf_twohead.models.shufflenet import shufflenet_v2

__all__ = ["BACKBONES", "backbone_layers", "build", "build_combined", "build_multi_head",
           "build_softmax", "input_normalization", "normalization_affine", "shufflenet_v2"]


@public
def build(kind: str = "two_head", img_size: int = 256, width: float = 0.5,
          head_width: int = 1024, heads=None, num_classes: int = 3, init: str = "torch",
          backbone: str = "shufflenet_v2", weights: str | None = None,
          head_widths: dict[str, int] | None = None, stage_repeats=None) -> keras.Model:
    """Build a model from plain keyword arguments.

    Args:
        kind: str. "two_head" (one sigmoid per head; any number of heads), "softmax",
            or "combined" (two encoders and one softmax head, `models.combined`).
        img_size: int. Input side in pixels.
        width: float. ShuffleNetV2 width multiplier.
        head_width: int. Channels of the last 1x1 conv (per head, or conv5 for softmax).
        heads: dict of head name -> positive class ids (names used by "two_head").
        num_classes: int. Classes of the softmax baseline and the combined model.
        init: str. "torch" (PyTorch's default initialisation, as the reference) or
            "keras" (Glorot kernels, zero biases).
        backbone: str. "shufflenet_v2", "mobilenet_v3_small" or "mobilenet_v3_large".
        weights: None or "imagenet" (keras.applications backbones only; see
            `pretrained.load.load_pretrained` for ShuffleNet).
        head_widths: dict or None. Head name -> its own 1x1 conv width, overriding
            `head_width` for that head ("two_head" only).
        stage_repeats: three ints or None. ShuffleNetV2's units in stage2, stage3 and
            stage4; None is torchvision's (4, 8, 4). Fewer make a shallower, faster
            network (torchvision's `ShuffleNetV2(stages_repeats, ...)`).
    """
    if kind == "two_head":
        return build_multi_head(img_size, width, head_width, heads, init=init,
                                backbone=backbone, weights=weights, head_widths=head_widths,
                                stage_repeats=stage_repeats)
    if head_widths:
        raise ValueError(f"head_widths is for kind='two_head'; the softmax baseline has one "
                         f"conv5 (head_width). Received: head_widths={head_widths}")
    if kind == "softmax":
        return build_softmax(img_size, width, head_width, num_classes, init=init,
                             backbone=backbone, weights=weights, stage_repeats=stage_repeats)
    if kind == "combined":
        return build_combined(img_size, width, head_width, num_classes, init=init,
                              backbone=backbone, weights=weights, stage_repeats=stage_repeats)
    raise ValueError(f"kind must be 'two_head', 'softmax' or 'combined'. Received: kind={kind!r}")


def backbone_layers(model: keras.Model) -> list:
    """The layers of `model`'s backbone, the part `model.pretrained` loads.

    ShuffleNet's conv1 to stage4, or the nested keras.applications model.
    """
    prefixes = tuple(p for b in BACKBONES for p in backbone_layer_names(b))
    return [layer for layer in model.layers if layer.name.startswith(prefixes)]
