"""torchvision ShuffleNetV2 weights -> Keras, exactly (`pretrained/load.py` uses it for
`model.pretrained`).

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

from tf_twohead.core.api import public
from tf_twohead.core.errors import WeightsError
from tf_twohead.core.fileio import atomic_path, sha256
from tf_twohead.models import shufflenet_v2
from tf_twohead.models.shufflenet import STAGE_OUT_CHANNELS
from tf_twohead.pretrained.torchfile import read_state_dict

HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^.]+$")  # torch.hub's convention, >= 8 hex
MAX_LISTED = 12

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


@public
def import_torchvision(path: str | os.PathLike, width: float | None = None,
                       return_width: bool = False):
    """Read a torchvision ShuffleNetV2 `.pth` into `tf_twohead.shufflenet_v2(width)`.

    Reading needs no torch (see `torchfile`). A file whose name carries torch.hub's hash
    (`shufflenetv2_x0.5-f707e7126e.pth`) is checked against it first.

    Args:
        path: str. The `.pth` state_dict.
        width: float or None. The width the file was trained with (0.5, 1.0, 1.5, 2.0);
            None reads it from the tensors' shapes (`infer_width`).
        return_width: bool. Also return the width used.

    Returns:
        The full classifier (float input normalised with ImageNet mean/std, 1000 logits)
        holding the file's weights (and its width); `save_weights` it to get a
        `.weights.h5`.
    """
    check_hash(path)
    state_dict = read_state_dict(path)
    width = width or infer_width(state_dict, os.fspath(path))
    classes = state_dict["fc.weight"].shape[0] if "fc.weight" in state_dict else 1000
    model = shufflenet_v2(width, classes=classes)
    assign_state_dict(model, state_dict, where=os.fspath(path))
    return (model, width) if return_width else model


def infer_width(state_dict: dict, where: str = "state_dict") -> float:
    """The ShuffleNetV2 width whose stage channels match the file's stage-4 output."""
    tensor = state_dict.get("conv5.0.weight")
    if tensor is None or np.ndim(tensor) != 4:
        raise WeightsError(f"{where}: no conv5.0.weight, so not a torchvision ShuffleNetV2 "
                           "state_dict; pass --width if it is one.")
    for width, channels in STAGE_OUT_CHANNELS.items():
        if channels[3] == tensor.shape[1] and channels[4] == tensor.shape[0]:
            return float(width)
    raise WeightsError(f"{where}: conv5 maps {tensor.shape[1]} to {tensor.shape[0]} channels, "
                       f"which no ShuffleNetV2 width has ({sorted(STAGE_OUT_CHANNELS)}).")


def save_weights(model: keras.Model, path: str | os.PathLike) -> Path:
    """`model.save_weights` atomically (Keras wants the `.weights.h5` suffix kept)."""
    with atomic_path(path) as tmp:
        model.save_weights(tmp)
    return Path(path)
