"""Experiment configuration: frozen dataclasses, YAML loading, `key=value` overrides.

Config flows one way: YAML gives defaults, overrides win, the result is a frozen
`Config`. Builders receive plain keyword arguments taken from it; they never see YAML.
The schema is enforced by OmegaConf's structured configs, so an unknown or misspelled
key is an error that names it.

Example:

>>> cfg = load("configs/two_head.yaml", ["train.epochs=3", "data.root=demo_data"])
>>> cfg.train.epochs
3
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException

# The one place that knows the reference task: class ids, their names, and which
# class ids each head calls positive.
DEFAULT_CLASS_NAMES = ("document", "not a document", "screen")
DEFAULT_HEADS = {"main": [2], "aux": [1]}
DEFAULT_LOSS_WEIGHTS = {"main": 2.0, "aux": 1.0}
MODEL_KINDS = ("two_head", "softmax")
WIDTHS = (0.5, 1.0, 1.5, 2.0)  # the keys of models.shufflenet.STAGE_OUT_CHANNELS
# Feature extractors (models.backbones) and MobileNetV3's alphas with ImageNet weights.
BACKBONES = ("shufflenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
MOBILENET_ALPHAS = (0.75, 1.0)
BAD_IMAGE_POLICIES = ("error", "skip")
INITS = ("torch", "keras")  # weight initialisation: PyTorch's defaults (the reference) or Keras'
WEIGHT_DECAY_MODES = ("l2", "decoupled")  # PyTorch Adam's L2-in-the-gradient, or AdamW-style
INTERPOLATIONS = ("nearest", "bilinear")
SOFTMAX_OUTPUT = "probs"


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which key."""


@dataclass(frozen=True)
class DataConfig:
    root: str = "dataset"
    img_size: int = 256
    on_bad_image: str = "error"
    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASS_NAMES))
    rotation: float = 10.0
    rotation_interpolation: str = "nearest"
    hflip: bool = False
    cache_dir: str | None = None
    workers: int = 0


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "two_head"
    width: float = 0.5
    head_width: int = 1024
    backbone: str = "shufflenet_v2"
    init: str = "torch"
    pretrained: str | None = None
    heads: dict[str, list[int]] = field(default_factory=lambda: dict(DEFAULT_HEADS))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 9
    batch_size: int = 64
    steps_per_epoch: int | None = None
    seed: int = 42
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    weight_decay_mode: str = "l2"
    adam_epsilon: float = 1e-8
    freeze_epochs: int = 0
    lr_step_epochs: int = 4
    lr_gamma: float = 0.1
    label_smoothing: float = 0.1
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSS_WEIGHTS))
    pos_weight: dict[str, float] = field(default_factory=dict)
    monitor_head: str = "main"


@dataclass(frozen=True)
class Config:
    exp: str = "two_head"
    output_dir: str = "saved_models"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def run_dir(self) -> Path:
        """The folder this experiment writes into: `<output_dir>/<exp>`."""
        return Path(self.output_dir) / self.exp

    @property
    def head_names(self) -> list[str]:
        return list(self.model.heads)


def load(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config, apply `key=value` overrides and validate the result.

    Args:
        path: str or None. YAML file; None starts from the defaults.
        overrides: list of str. `dotted.key=value` items; they win over the file.

    Returns:
        A frozen, validated `Config`.
    """
    sources = []
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"Config file not found: {path}")
        sources.append((f"config file {path}", lambda: OmegaConf.load(path)))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(
                f"Override must look like key=value, e.g. train.epochs=3. Received: {item!r}"
            )
        sources.append((f"override {item!r}", lambda item=item: OmegaConf.from_dotlist([item])))
    return _resolve(sources)


def _resolve(sources) -> Config:
    """Merge `(where, make_source)` pairs over the schema, in order; validate the result."""
    merged = OmegaConf.structured(Config)
    for where, make in sources:
        with _config_errors(where):
            source = make()
            merged = OmegaConf.merge(merged, source)
            _replace_mappings(merged, source)
    with _config_errors("config"):
        config = OmegaConf.to_object(merged)
    validate(config)
    return config


# Mappings whose keys are data (head names): a source that sets one replaces it whole,
# instead of OmegaConf's key-by-key merge, so a config with heads {screen: [2]} does not
# silently keep the default main and aux heads.
REPLACED_MAPPINGS = ("model.heads", "train.loss_weights", "train.pos_weight")


def _replace_mappings(merged, source) -> None:
    for key in REPLACED_MAPPINGS:
        value = OmegaConf.select(source, key, default=None)
        if value is not None:
            section, name = key.split(".")
            if name != "heads" and isinstance(value, DictConfig):
                value = {k: float(v) if isinstance(v, int) else v for k, v in value.items()}
            with read_write(merged[section]):  # the schema is frozen; this is the loader
                merged[section][name] = value


@contextlib.contextmanager
def _config_errors(where: str):
    """Turn OmegaConf and YAML errors into one `ConfigError` naming the source."""
    try:
        yield
    except OmegaConfBaseException as e:
        reason = str(e).splitlines()[0]
        raise ConfigError(
            f"Invalid {where}: {reason} Every valid key is listed, with its type and meaning, "
            f"in configs/two_head.yaml."
        ) from None
    except Exception as e:  # YAML syntax errors and the like
        raise ConfigError(f"Invalid {where}: {e}") from None


def validate(config: Config) -> None:
    """Check values that the type schema cannot: ranges, choices, cross references."""
    d, m, t = config.data, config.model, config.train
    _check(d.img_size >= 32, "data.img_size", "an image size of at least 32 pixels", d.img_size)
    _check(d.on_bad_image in BAD_IMAGE_POLICIES, "data.on_bad_image",
           f"one of {BAD_IMAGE_POLICIES}", d.on_bad_image)
    _check(len(d.class_names) >= 2, "data.class_names", "at least two class names",
           d.class_names)
    _check(d.rotation_interpolation in INTERPOLATIONS, "data.rotation_interpolation",
           f"one of {INTERPOLATIONS}", d.rotation_interpolation)
    _check(m.init in INITS, "model.init", f"one of {INITS}", m.init)
    _check(m.kind in MODEL_KINDS, "model.kind", f"one of {MODEL_KINDS}", m.kind)
    _check(m.backbone in BACKBONES, "model.backbone", f"one of {BACKBONES}", m.backbone)
    if m.backbone == "shufflenet_v2":
        _check(m.width in WIDTHS, "model.width", f"one of {WIDTHS}", m.width)
    else:
        _check(m.width in MOBILENET_ALPHAS, "model.width",
               f"MobileNetV3's alpha, one of {MOBILENET_ALPHAS}, for model.backbone="
               f"{m.backbone}", m.width)
        _check(m.pretrained in (None, "imagenet"), "model.pretrained",
               f"null or imagenet (Keras' own weights) for model.backbone={m.backbone}",
               m.pretrained)
    _check(m.head_width > 0, "model.head_width", "a positive integer", m.head_width)
    # A file given as model.pretrained is checked when training starts (weights.py), not
    # here: a finished run's config.yaml must stay loadable after the file has moved.
    _check(m.pretrained is None or str(m.pretrained).strip() != "", "model.pretrained",
           "null, imagenet, or a torchvision .pth / .weights.h5 file", m.pretrained)
    _check(len(m.heads) >= 1, "model.heads", "at least one head", dict(m.heads))
    for name, ids in m.heads.items():
        _check(name.isidentifier(), f"model.heads.{name}", "a head name that is an identifier",
               name)
        _check(name != SOFTMAX_OUTPUT, f"model.heads.{name}",
               f"a head name other than {SOFTMAX_OUTPUT!r}", name)
        bad = [i for i in ids if not 0 <= i < len(d.class_names)]
        _check(ids and not bad, f"model.heads.{name}",
               f"positive class ids in 0..{len(d.class_names) - 1}", list(ids))
    for key, mapping in (("train.loss_weights", t.loss_weights),
                         ("train.pos_weight", t.pos_weight)):
        unknown = sorted(set(mapping) - set(m.heads))
        _check(not unknown, key, f"keys among the heads {list(m.heads)}", unknown)
    _check(not (m.kind == "softmax" and t.pos_weight), "train.pos_weight",
           "empty for model.kind=softmax (it weights per-head sigmoid losses)", dict(t.pos_weight))
    _check(t.monitor_head in m.heads, "train.monitor_head", f"one of {list(m.heads)}",
           t.monitor_head)
    _check(t.epochs >= 1, "train.epochs", "at least 1", t.epochs)
    _check(0 <= t.freeze_epochs <= t.epochs, "train.freeze_epochs",
           f"0..train.epochs ({t.epochs})", t.freeze_epochs)
    _check(not t.freeze_epochs or m.pretrained, "train.freeze_epochs",
           "0 unless model.pretrained is set (a random backbone is not worth freezing)",
           t.freeze_epochs)
    _check(t.batch_size >= 1, "train.batch_size", "at least 1", t.batch_size)
    _check(t.steps_per_epoch is None or t.steps_per_epoch >= 1, "train.steps_per_epoch",
           "null or at least 1", t.steps_per_epoch)
    _check(t.weight_decay_mode in WEIGHT_DECAY_MODES, "train.weight_decay_mode",
           f"one of {WEIGHT_DECAY_MODES}", t.weight_decay_mode)
    _check(t.weight_decay >= 0, "train.weight_decay", "0 or more", t.weight_decay)
    _check(t.adam_epsilon > 0, "train.adam_epsilon", "a positive number", t.adam_epsilon)
    _check(0 <= t.label_smoothing < 1, "train.label_smoothing", "a value in [0, 1)",
           t.label_smoothing)


def _check(ok, key, expected, received) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {expected}. Received: {key}={received!r}")


def to_yaml(config: Config) -> str:
    """The resolved config as YAML text; loading it back gives an equal `Config`."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def dump(config: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config atomically to `path` (temporary file, then rename)."""
    from tf_twohead.fileio import atomic_write_text

    return atomic_write_text(path, to_yaml(config))
