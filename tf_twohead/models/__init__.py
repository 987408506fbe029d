"""Model builders: `build(kind=..., ...)` is the one entry point the rest of the package uses."""

from __future__ import annotations

import keras

from tf_twohead.models.backbones import BACKBONES, backbone_layer_names
from tf_twohead.models.combined import build_combined
from tf_twohead.models.heads import build_multi_head, build_softmax, input_normalization
from tf_twohead.models.shufflenet import shufflenet_v2

__all__ = ["BACKBONES", "backbone_layers", "build", "build_combined", "build_multi_head",
           "build_softmax",
           "from_config", "input_normalization", "load_model", "shufflenet_v2"]


def build(kind: str = "two_head", img_size: int = 256, width: float = 0.5,
          head_width: int = 1024, heads=None, num_classes: int = 3, init: str = "torch",
          backbone: str = "shufflenet_v2", weights: str | None = None,
          head_widths: dict[str, int] | None = None) -> keras.Model:
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
            `weights.load_pretrained` for ShuffleNet).
        head_widths: dict or None. Head name -> its own 1x1 conv width, overriding
            `head_width` for that head ("two_head" only).
    """
    if kind == "two_head":
        return build_multi_head(img_size, width, head_width, heads, init=init,
                                backbone=backbone, weights=weights, head_widths=head_widths)
    if head_widths:
        raise ValueError(f"head_widths is for kind='two_head'; the softmax baseline has one "
                         f"conv5 (head_width). Received: head_widths={head_widths}")
    if kind == "softmax":
        return build_softmax(img_size, width, head_width, num_classes, init=init,
                             backbone=backbone, weights=weights)
    if kind == "combined":
        return build_combined(img_size, width, head_width, num_classes, init=init,
                              backbone=backbone, weights=weights)
    raise ValueError(f"kind must be 'two_head', 'softmax' or 'combined'. Received: kind={kind!r}")


def from_config(cfg, kind: str | None = None, num_classes: int | None = None) -> keras.Model:
    """Build the model a `Config` describes, with its `model.pretrained` backbone if any.

    Args:
        cfg: `Config`.
        kind: str or None. Another kind with the same settings (a combined run's encoder
            stages are "softmax" models); None: `model.kind`.
        num_classes: int or None. Classes of a softmax output (the coarse stage's
            groups); None: `data.class_names`.
    """
    m = cfg.model
    kind = kind or m.kind
    native = m.backbone != "shufflenet_v2"  # keras.applications loads its own weights
    model = build(kind, cfg.data.img_size, m.width, m.head_width, dict(m.heads),
                  num_classes or len(cfg.data.class_names), init=m.init, backbone=m.backbone,
                  weights=m.pretrained if native else None,
                  head_widths=dict(m.head_widths) if kind == "two_head" else None)
    if m.pretrained and not native:
        from tf_twohead.models.combined import encoders
        from tf_twohead.models.shufflenet import stage_channels
        from tf_twohead.weights import load_pretrained

        # The softmax body's conv5 is torchvision's own when it has the same width.
        conv5 = kind != "two_head" and m.head_width == stage_channels(m.width)[4]
        for target in encoders(model) if kind == "combined" else [model]:
            load_pretrained(target, m.pretrained, m.width, include_conv5=conv5)
    return model


def backbone_layers(model: keras.Model) -> list:
    """The layers of `model`'s backbone, the part `model.pretrained` loads.

    ShuffleNet's conv1 to stage4, or the nested keras.applications model.
    """
    prefixes = tuple(p for b in BACKBONES for p in backbone_layer_names(b))
    return [layer for layer in model.layers if layer.name.startswith(prefixes)]


def load_model(path, compile: bool = False) -> keras.Model:
    """Load a `.keras` file written by tf-twohead, in any process.

    Models use two registered classes (`FusedBatchNormalization`, and `TorchAdam` in a
    compiled save) and the softmax baseline's metrics; this imports them before
    `keras.saving.load_model`. Plain Keras loads the files too once `tf_twohead.models`
    is imported.

    Args:
        path: str. The `.keras` file.
        compile: bool. Restore the optimizer (with its state), losses and metrics, as
            `--resume` does. Defaults to False (inference).
    """
    import tf_twohead.metrics  # noqa: F401 - registers the softmax head metrics
    import tf_twohead.optimizers  # noqa: F401 - registers TorchAdam

    return keras.saving.load_model(path, compile=compile)
