"""Limits a config from a stranger must respect before anything runs: names that stay
plain names, numbers that are finite, and sizes that cannot exhaust the machine.

Every failure is a `ConfigError` naming the key, what it expects and what it received.
"""

from __future__ import annotations

import dataclasses
import math
import re

from tf_twohead.core.errors import ConfigError

# `exp` names one folder inside `output_dir`: no separators, no "..", no absolute path.
# Interpolations (`${oc.env:HOME}`) are resolved before this check, so they cannot leave
# `output_dir` either.
EXP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")
MAX_HEAD_WIDTH = 65536
# Upper bounds far above any real use, so a typo (1e20) is an error, not a crash later.
UPPER = {
    "data.img_size": 4096, "data.workers": 256, "data.rotation": 180.0,
    "data.max_image_pixels": 1_000_000_000, "data.max_rows": 100_000_000,
    "model.head_width": MAX_HEAD_WIDTH,
    "train.epochs": 100_000, "train.batch_size": 65536, "train.steps_per_epoch": 10**9,
    "train.freeze_epochs": 100_000, "train.lr_step_epochs": 100_000,
    "tune.max_trials": 100_000, "tune.epochs": 100_000, "tune.latency_images": 100_000,
    # A learning rate past 10 only ever diverges (Adam steps are ~lr per weight).
    "train.learning_rate": 10.0, "train.lr_gamma": 1000.0,
}
LOWER = {"data.workers": 0, "data.rotation": 0.0, "data.max_image_pixels": 1, "data.max_rows": 1,
         "train.learning_rate": 0.0}


def check_limits(config) -> None:
    """Check `exp`, every number's finiteness and the bounds of `UPPER` and `LOWER`."""
    if not EXP_NAME.fullmatch(config.exp) or ".." in config.exp:
        raise ConfigError(
            f"exp must be one plain folder name (letters, digits, _ . + -; no '/', no '..', "
            f"not absolute), the run's folder inside output_dir. Received: exp={config.exp!r}")
    values = flatten(dataclasses.asdict(config))
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number. Received: {key}={value!r}")
    for key, high in UPPER.items():
        value = values.get(key)
        if value is not None and value > high:
            raise ConfigError(f"{key} must be at most {high:,}. Received: {key}={value!r}")
    for key, low in LOWER.items():
        value = values.get(key)
        if value is not None and value < low:
            raise ConfigError(f"{key} must be at least {low}. Received: {key}={value!r}")


def flatten(tree, prefix: str = "") -> dict:
    """`{"train.loss_weights.main": 2.0, ...}`: every leaf of nested dicts and lists."""
    out = {}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for name, value in items:
        key = f"{prefix}{name}"
        if isinstance(value, (dict, list, tuple)) and value:
            out.update(flatten(value, f"{key}."))
        else:
            out[key] = value
    return out
