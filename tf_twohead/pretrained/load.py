"""`model.pretrained`: resolve, fetch, convert, cache and load pretrained backbones,
and `build_model(cfg)`, the model a `Config` describes with its weights.

This is the edge where a model meets files and downloads: `models/` builds from plain
arguments and knows no files, `torchvision.py` ports a torchvision state_dict exactly,
and this module decides which file that is (torchvision's official download, a local
`.pth`, or a `.weights.h5`), caches the converted weights under `$KERAS_HOME`, and
loads them into a freshly built model. MobileNetV3 backbones take Keras' own
ImageNet weights through `keras.applications`.

Example:

>>> cfg = tt.load_config("configs/two_head.yaml", ["model.pretrained=imagenet"])
>>> model = build_model(cfg)  # ShuffleNetV2 x0.5 with torchvision's ImageNet backbone
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from tf_twohead.core.api import public
from tf_twohead.core.errors import WeightsError
from tf_twohead.models import build, shufflenet_v2
from tf_twohead.models.backbones import backbone_layer_names, keras_application
from tf_twohead.models.combined import encoders
from tf_twohead.models.shufflenet import stage_channels
from tf_twohead.pretrained.torchvision import import_torchvision, save_weights
from tf_twohead.pretrained.warm_start import init_from

# The official torchvision files; the hex run in each name is a SHA-256 prefix.
TORCHVISION_URLS = {
    0.5: "https://download.pytorch.org/models/shufflenetv2_x0.5-f707e7126e.pth",
    1.0: "https://download.pytorch.org/models/shufflenetv2_x1-5666bf0f80.pth",
    1.5: "https://download.pytorch.org/models/shufflenetv2_x1_5-3c479a10.pth",
    2.0: "https://download.pytorch.org/models/shufflenetv2_x2_0-8be3c8ee.pth",
}
BACKBONE_PREFIXES = backbone_layer_names("shufflenet_v2")
CACHE_SUBDIR = "tf_twohead"


@public
def build_model(cfg, kind: str | None = None, num_classes: int | None = None) -> keras.Model:
    """Build the model a `Config` describes, with its `model.pretrained` backbone, or the
    backbone and same-named heads of its `model.init_from` model (`warm_start`), if any.

    Args:
        cfg: `Config`.
        kind: str or None. Another kind with the same settings (a combined run's encoder
            stages are "softmax" models); None: `model.kind`.
        num_classes: int or None. Classes of a softmax output (the coarse stage's
            groups); None: `data.class_names`.

    Example:

    >>> model = build_model(tt.load_config("configs/two_head.yaml"))
    >>> sorted(model.output_names)
    ['aux', 'main']
    """
    m = cfg.model
    kind = kind or m.kind
    native = m.backbone != "shufflenet_v2"  # keras.applications loads its own weights
    model = build(kind, cfg.data.img_size, m.width, m.head_width, dict(m.heads),
                  num_classes or len(cfg.data.class_names), init=m.init, backbone=m.backbone,
                  weights=m.pretrained if native else None,
                  head_widths=dict(m.head_widths) if kind == "two_head" else None,
                  stage_repeats=tuple(m.stage_repeats))
    if m.init_from:  # a trained model: its backbone and same-named heads
        init_from(model, m.init_from, list(m.drop_heads))
    if m.pretrained and not native:
        # The softmax body's conv5 is torchvision's own when it has the same width.
        conv5 = kind != "two_head" and m.head_width == stage_channels(m.width)[4]
        for target in encoders(model) if kind == "combined" else [model]:
            load_pretrained(target, m.pretrained, m.width, include_conv5=conv5)
    return model


def resolve_pretrained(spec: str, width: float = 0.5, cache_dir: str | None = None) -> Path:
    """The `.weights.h5` of `shufflenet_v2(width)` that `model.pretrained` names.

    Args:
        spec: str. "imagenet" (torchvision's official file for `width`: downloaded,
            hash-checked, converted once and cached), a torchvision `.pth` file (converted
            once, cached beside the download cache), or a `.weights.h5` written by
            `tf-twohead weights import-torchvision`.
        width: float. The backbone width.
        cache_dir: str or None. Root of the cache, subfolder `tf_twohead`; defaults to
            `$KERAS_HOME`, else `~/.keras`, as Keras' own downloads.

    Returns:
        The path of a `.weights.h5` file. Raises `WeightsError` at once when the file
        cannot be had (offline, missing, wrong hash), saying how to pass a local file.
    """
    if spec != "imagenet":
        path = Path(spec)
        if not path.is_file():
            raise WeightsError(f"model.pretrained: no such file {path}. Pass a torchvision "
                               ".pth, a .weights.h5 from `tf-twohead weights "
                               "import-torchvision`, or imagenet.")
        if path.name.endswith(".weights.h5"):
            return path
        return _converted(path, width, cache_dir)
    url = TORCHVISION_URLS[float(width)]
    name = url.rsplit("/", 1)[-1]
    try:
        pth = keras.utils.get_file(name, url, cache_subdir=CACHE_SUBDIR,
                                   cache_dir=str(_cache_root(cache_dir)))
    except Exception as e:  # get_file wraps every URL/HTTP failure in a bare Exception
        raise WeightsError(
            f"model.pretrained=imagenet: could not download {url} ({e}). Offline? Download "
            f"{name} on a machine that is online and pass it as a file: "
            f"model.pretrained=/path/to/{name} (or convert it once with `tf-twohead weights "
            f"import-torchvision {name} --width {width}` and pass the .weights.h5).") from None
    return _converted(Path(pth), width, cache_dir)


def _cache_root(cache_dir: str | None) -> Path:
    return Path(cache_dir or os.environ.get("KERAS_HOME") or "~/.keras").expanduser()


def _converted(pth: Path, width: float, cache_dir: str | None) -> Path:
    """Convert a `.pth` once; the cached name carries the file's size and mtime."""
    stat = pth.stat()
    name = f"{pth.stem}-w{width}-{stat.st_size}-{int(stat.st_mtime)}.weights.h5"
    out = _cache_root(cache_dir) / CACHE_SUBDIR / name
    if not out.is_file():
        save_weights(import_torchvision(pth, width), out)
        print(f"model.pretrained: converted {pth} to {out} ({out.stat().st_size / 1e6:.1f} MB, "
              "cached for later runs)", flush=True)
    return out


@public
def load_pretrained(model: keras.Model, spec: str, width: float = 0.5,
                    include_conv5: bool = False, cache_dir: str | None = None) -> int:
    """Load ImageNet (or any torchvision) ShuffleNetV2 weights into a tf-twohead model.

    The backbone, conv1 to stage4, is loaded; with `include_conv5` also conv5 (the
    softmax baseline when its head_width is torchvision's conv5 width). The two-head
    model's head convs and every classifier start fresh, as in the reference.

    Returns:
        The number of layers loaded.
    """
    source = shufflenet_v2(width)
    weights_file = resolve_pretrained(spec, width, cache_dir)
    source.load_weights(weights_file)
    prefixes = BACKBONE_PREFIXES + (("conv5_",) if include_conv5 else ())
    loaded = 0
    for layer in model.layers:
        if layer.weights and layer.name.startswith(prefixes):
            layer.set_weights(source.get_layer(layer.name).get_weights())
            loaded += 1
    if not loaded:
        raise WeightsError(f"model.pretrained: {model.name} has no ShuffleNetV2 layers to load")
    print(f"model.pretrained: loaded {loaded} layers of ShuffleNetV2 x{width} "
          f"({'conv1 to conv5' if include_conv5 else 'conv1 to stage4'}) from {weights_file} "
          f"into {model.name}; the heads start fresh.", flush=True)
    return loaded


def fetch_pretrained(model_cfg, img_size: int = 224) -> None:
    """Download and convert what `model.pretrained` names now, so a run fails at once.

    Args:
        model_cfg: the `model` section of a `Config`.
        img_size: int. The input side (keras.applications builds for it).
    """
    if not model_cfg.pretrained:
        return
    if model_cfg.backbone == "shufflenet_v2":
        resolve_pretrained(model_cfg.pretrained, model_cfg.width)
    else:
        keras_application(model_cfg.backbone, model_cfg.width, (img_size, img_size, 3),
                          model_cfg.pretrained)
