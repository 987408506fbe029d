"""torchvision ShuffleNetV2 weights -> Keras, exactly; and `model.pretrained` for training.

Our layers carry torchvision's module names with `_` for `.` (`stage2_0_branch1_0` is
`stage2.0.branch1.0`), so a state_dict maps onto `shufflenet_v2(width)` by name alone:

- `Conv2d.weight` (O, I, kh, kw) -> `Conv2D.kernel` (kh, kw, I, O);
- depthwise `Conv2d.weight` (C, 1, kh, kw) -> `DepthwiseConv2D.kernel` (kh, kw, C, 1);
- `Linear.weight` (out, in) -> `Dense.kernel` (in, out), transposed; the bias as it is;
- `BatchNorm2d` weight, bias, running_mean, running_var -> gamma, beta, moving_mean,
  moving_variance; `num_batches_tracked` is dropped.

Matching is strict: a Keras weight without its tensor, a tensor nothing uses, or a
shape that does not fit is an error listing every one of them.

Example:

>>> model = import_torchvision("shufflenetv2_x0.5-f707e7126e.pth", width=0.5)
>>> model.save_weights("shufflenet_v2_x0.5.weights.h5")
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import keras
import numpy as np

from tf_twohead.metadata import sha256
from tf_twohead.models.backbones import backbone_layer_names
from tf_twohead.torchfile import read_state_dict

# The official torchvision files; the hex run in each name is a SHA-256 prefix.
TORCHVISION_URLS = {
    0.5: "https://download.pytorch.org/models/shufflenetv2_x0.5-f707e7126e.pth",
    1.0: "https://download.pytorch.org/models/shufflenetv2_x1-5666bf0f80.pth",
    1.5: "https://download.pytorch.org/models/shufflenetv2_x1_5-3c479a10.pth",
    2.0: "https://download.pytorch.org/models/shufflenetv2_x2_0-8be3c8ee.pth",
}
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^.]+$")  # torch.hub's convention, >= 8 hex
MAX_LISTED = 12
BACKBONE_PREFIXES = backbone_layer_names("shufflenet_v2")
CACHE_SUBDIR = "tf_twohead"


class WeightsError(ValueError):
    """Weights that do not fit the model; the message lists every mismatch."""


def hash_in_name(path: str | os.PathLike) -> str | None:
    """The SHA-256 prefix a file name carries (`name-<hex>.pth`), or None."""
    match = HASH_IN_NAME.search(Path(path).name)
    return match.group(1) if match else None


def check_hash(path: str | os.PathLike) -> str | None:
    """Check a file against the SHA-256 prefix in its name (`name-<hex>.pth`), if any.

    Returns the prefix that was checked, or None when the name carries none.
    """
    prefix = hash_in_name(path)
    if prefix is None:
        return None
    digest = sha256(path)
    if not digest.startswith(prefix):
        raise WeightsError(
            f"{path}: SHA-256 {digest[:16]}... does not start with {prefix}, the hash in "
            "its name. The file is corrupt or not the official one; download it again.")
    return prefix


def torch_key(layer_name: str, weight_name: str) -> str:
    """The state_dict key of a Keras weight: `stage2_0_branch1_0` + `kernel` -> `...weight`."""
    return f"{layer_name.replace('_', '.')}.{_TORCH_WEIGHT[weight_name]}"


_TORCH_WEIGHT = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                 "moving_mean": "running_mean", "moving_variance": "running_var"}


def _to_keras(layer, array: np.ndarray) -> np.ndarray:
    if array.ndim == 4:
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        return np.transpose(array, (2, 3, 0, 1) if depthwise else (2, 3, 1, 0))
    if array.ndim == 2:  # Linear
        return array.T
    return array


def assign_state_dict(model: keras.Model, state_dict: dict[str, np.ndarray],
                      where: str = "state_dict", layers=None, ignore=()) -> int:
    """Assign torchvision tensors to `model`'s weights by name, strictly.

    Args:
        model: keras.Model. Built with tf-twohead's ShuffleNetV2 layer names.
        state_dict: dict of torch name -> array (see `torchfile.read_state_dict`).
        where: str. What the tensors came from, for error messages.
        layers: names of the layers to fill; defaults to every layer with weights.
        ignore: prefixes of torch names that may go unused (e.g. `("fc.",)`).

    Returns:
        The number of tensors assigned. Raises `WeightsError` naming every missing,
        unexpected or mis-shaped tensor before anything is assigned.
    """
    wanted = [layer for layer in model.layers if layer.weights
              and (layers is None or layer.name in layers)]
    plan, missing, misshaped, used = [], [], [], set()
    for layer in wanted:
        for weight in layer.weights:
            key = torch_key(layer.name, weight.name)
            if key not in state_dict:
                missing.append(f"{key} (for {layer.name}/{weight.name})")
                continue
            used.add(key)
            value = _to_keras(layer, np.asarray(state_dict[key]))
            if tuple(value.shape) != tuple(weight.shape):
                misshaped.append(f"{key}: {tuple(state_dict[key].shape)} does not fit "
                                 f"{layer.name}/{weight.name} {tuple(weight.shape)}")
                continue
            plan.append((weight, value))
    unexpected = [k for k in state_dict if k not in used
                  and not k.endswith("num_batches_tracked") and not k.startswith(tuple(ignore))]
    problems = [("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)]
    if any(items for _, items in problems):
        lines = [f"{where} does not match {model.name}:"]
        for label, items in problems:
            if items:
                shown = "\n    ".join(items[:MAX_LISTED])
                extra = len(items) - MAX_LISTED
                more = f"\n    ... and {extra} more" if extra > 0 else ""
                lines.append(f"  {len(items)} {label}:\n    {shown}{more}")
        lines.append("Is --width the width the file was trained with?")
        raise WeightsError("\n".join(lines))
    for weight, value in plan:
        weight.assign(value.astype(weight.dtype))
    return len(plan)


def import_torchvision(path: str | os.PathLike, width: float = 0.5) -> keras.Model:
    """Read a torchvision ShuffleNetV2 `.pth` into `tf_twohead.shufflenet_v2(width)`.

    Reading needs no torch (see `torchfile`). A file whose name carries torch.hub's hash
    (`shufflenetv2_x0.5-f707e7126e.pth`) is checked against it first.

    Args:
        path: str. The `.pth` state_dict.
        width: float. The width the file was trained with (0.5, 1.0, 1.5, 2.0).

    Returns:
        The full classifier (float input normalised with ImageNet mean/std, 1000 logits)
        holding the file's weights; `save_weights` it to get a `.weights.h5`.
    """
    from tf_twohead.models import shufflenet_v2

    check_hash(path)
    state_dict = read_state_dict(path)
    classes = state_dict["fc.weight"].shape[0] if "fc.weight" in state_dict else 1000
    model = shufflenet_v2(width, classes=classes)
    assign_state_dict(model, state_dict, where=os.fspath(path))
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
    return out


def save_weights(model: keras.Model, path: str | os.PathLike) -> Path:
    """`model.save_weights` atomically (Keras wants the `.weights.h5` suffix kept)."""
    from tf_twohead.fileio import atomic_path

    with atomic_path(path) as tmp:
        model.save_weights(tmp)
    return Path(path)


def load_pretrained(model: keras.Model, spec: str, width: float = 0.5,
                    include_conv5: bool = False, cache_dir: str | None = None) -> int:
    """Load ImageNet (or any torchvision) ShuffleNetV2 weights into a tf-twohead model.

    The backbone, conv1 to stage4, is loaded; with `include_conv5` also conv5 (the
    softmax baseline when its head_width is torchvision's conv5 width). The two-head
    model's head convs and every classifier start fresh, as in the reference.

    Returns:
        The number of layers loaded.
    """
    from tf_twohead.models import shufflenet_v2

    source = shufflenet_v2(width)
    source.load_weights(resolve_pretrained(spec, width, cache_dir))
    prefixes = BACKBONE_PREFIXES + (("conv5_",) if include_conv5 else ())
    loaded = 0
    for layer in model.layers:
        if layer.weights and layer.name.startswith(prefixes):
            layer.set_weights(source.get_layer(layer.name).get_weights())
            loaded += 1
    if not loaded:
        raise WeightsError(f"model.pretrained: {model.name} has no ShuffleNetV2 layers to load")
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
        from tf_twohead.models.backbones import keras_application

        keras_application(model_cfg.backbone, model_cfg.width, (img_size, img_size, 3),
                          model_cfg.pretrained)
