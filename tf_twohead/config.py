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
from typing import Any

from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException

# The one place that knows the reference task: class ids, their names, and which
# class ids each head calls positive.
DEFAULT_CLASS_NAMES = ("document", "not a document", "screen")
DEFAULT_HEADS = {"main": [2], "aux": [1]}
DEFAULT_LOSS_WEIGHTS = {"main": 2.0, "aux": 1.0}
MODEL_KINDS = ("two_head", "softmax", "combined")
# Kinds whose single output is "probs", a softmax over the (fine) classes.
SOFTMAX_KINDS = ("softmax", "combined")
# The combined model's training stages, in order (training_stages.py).
STAGES = ("coarse", "fine", "frozen", "unfrozen")
SCHEDULES = ("step", "one_cycle")
# How frozen encoders treat their BatchNorm: fastai's train_bn (batch statistics, moving
# statistics and gamma/beta keep training) or Keras' convention (inference mode, fixed).
FROZEN_BN = ("train", "inference")
CLASS_METRICS = ("accuracy", "top5")  # logged by softmax-kind models (top5: over 5 classes)
WIDTHS = (0.5, 1.0, 1.5, 2.0)  # the keys of models.shufflenet.STAGE_OUT_CHANNELS
# Feature extractors (models.backbones) and MobileNetV3's alphas with ImageNet weights.
BACKBONES = ("shufflenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
MOBILENET_ALPHAS = (0.75, 1.0)
BAD_IMAGE_POLICIES = ("error", "skip")
INITS = ("torch", "keras")  # weight initialisation: PyTorch's defaults (the reference) or Keras'
WEIGHT_DECAY_MODES = ("l2", "decoupled")  # PyTorch Adam's L2-in-the-gradient, or AdamW-style
INTERPOLATIONS = ("nearest", "bilinear")
SOFTMAX_OUTPUT = "probs"
# tf.distribute for one run: auto = mirrored when the machine has several GPUs.
STRATEGIES = ("auto", "none", "mirrored")
MULTI_WORKER_UNSUPPORTED = (
    "train.strategy=multi_worker is not supported: Keras 3 on TensorFlow cannot train under "
    "MultiWorkerMirroredStrategy (keras-team/keras#20585, open). Use train.strategy=mirrored "
    "for several GPUs of one machine, and spread work over machines with a distributed "
    "search: tf-twohead tune --chief PORT / --worker ID --chief HOST:PORT (README, "
    "'Searches on many machines')."
)
ORACLES = ("random", "bayesian", "hyperband", "grid")
# What a search records per trial that `tune.constraints` can bound (all: at most).
CONSTRAINTS = ("tflite_kb", "latency_ms", "params", "train_seconds")
HEAD_METRICS = ("loss", "precision", "recall", "f1", "auc")


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
    coarse: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "two_head"
    width: float = 0.5
    head_width: int = 1024
    head_widths: dict[str, int] = field(default_factory=dict)
    backbone: str = "shufflenet_v2"
    init: str = "torch"
    pretrained: str | None = None
    heads: dict[str, list[int]] = field(default_factory=lambda: dict(DEFAULT_HEADS))


@dataclass(frozen=True)
class StageEpochs:
    """Epochs of each stage of `model.kind=combined` (0 skips a stage)."""

    coarse: int = 1
    fine: int = 1
    frozen: int = 1
    unfrozen: int = 1

    @property
    def total(self) -> int:
        return self.coarse + self.fine + self.frozen + self.unfrozen


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
    monitor: str | None = None
    strategy: str = "auto"
    schedule: str = "step"
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    stages: StageEpochs = field(default_factory=StageEpochs)
    frozen_bn: str = "train"


@dataclass(frozen=True)
class TuneConfig:
    oracle: str = "bayesian"
    max_trials: int = 20
    epochs: int | None = None
    objective: str | None = None
    direction: str = "max"
    space: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    latency_images: int = 50
    hyperband_factor: int = 3
    max_failed_trials: int = 3


@dataclass(frozen=True)
class Config:
    exp: str = "two_head"
    output_dir: str = "saved_models"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    @property
    def run_dir(self) -> Path:
        """The folder this experiment writes into: `<output_dir>/<exp>`."""
        return Path(self.output_dir) / self.exp

    @property
    def objective(self) -> str:
        """What a search optimises: `tune.objective`, else the monitored head's val F1."""
        return self.tune.objective or f"val_{self.train.monitor_head}_f1"

    @property
    def head_names(self) -> list[str]:
        return list(self.model.heads)

    @property
    def monitor(self) -> str:
        """The logged metric that picks `best.keras`: `train.monitor`, else the
        validation F1 of `train.monitor_head`."""
        return self.train.monitor or f"val_{self.train.monitor_head}_f1"


def load(path=None, overrides: list[str] | None = None) -> Config:
    """Load YAML config files, apply `key=value` overrides and validate the result.

    Args:
        path: str, list of str or None. YAML file(s), merged in order (a later file
            wins; `tf-twohead data tfds` writes one with a dataset's classes and coarse
            groups to layer over an experiment's file); None starts from the defaults.
        overrides: list of str. `dotted.key=value` items; they win over the files.

    Returns:
        A frozen, validated `Config`.
    """
    sources = []
    paths = [] if path is None else [path] if isinstance(path, (str, os.PathLike)) else path
    for file in paths:
        if not Path(file).is_file():
            raise ConfigError(f"Config file not found: {file}")
        sources.append((f"config file {file}", lambda file=file: OmegaConf.load(file), None))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(
                f"Override must look like key=value, e.g. train.epochs=3. Received: {item!r}"
            )
        sources.append((f"override {item!r}", lambda item=item: OmegaConf.from_dotlist([item]),
                        item.split("=", 1)[0].strip()))
    return _resolve(sources)


def with_values(cfg: Config, values: dict[str, Any], where: str = "values") -> Config:
    """`cfg` with dotted keys set to values (`{"model.head_width": 256}`), validated.

    A key inside a mapping (`train.loss_weights.aux`) changes that one entry; the
    mapping's other entries stay. Used by searches to turn a trial's values into a
    `Config`.
    """
    sources = [("config", lambda: OmegaConf.structured(cfg), None)]
    for key, value in values.items():
        sources.append((f"{where} {key}={value!r}",
                        lambda key=key, value=value: _dotted(key, value), key))
    return _resolve(sources)


def _dotted(key: str, value: Any) -> DictConfig:
    node: Any = value
    for part in reversed(key.split(".")):
        node = {part: node}
    return OmegaConf.create(node)


def _resolve(sources) -> Config:
    """Merge `(where, make_source, key)` triples over the schema, in order; validate.

    `key` is the dotted key an override sets (None for a whole file)."""
    merged = OmegaConf.structured(Config)
    for where, make, key in sources:
        with _config_errors(where):
            source = make()
            _clear_replaced_mappings(merged, source, key)
            merged = OmegaConf.merge(merged, source)
    with _config_errors("config"):
        config = OmegaConf.to_object(merged)
    validate(config)
    return config


# Mappings whose keys are data (head names, searched keys): a source that sets one
# replaces it whole, instead of OmegaConf's key-by-key merge, so a config with heads
# {screen: [2]} does not silently keep the default main and aux heads. An override of
# one entry (train.loss_weights.aux=0.5) changes only that entry.
REPLACED_MAPPINGS = ("data.coarse", "model.heads", "model.head_widths", "train.loss_weights",
                     "train.pos_weight", "tune.space", "tune.constraints")


def _clear_replaced_mappings(merged, source, set_key: str | None = None) -> None:
    """Empty the mappings `source` sets whole, so the merge that follows replaces them."""
    for key in REPLACED_MAPPINGS:
        if set_key is not None and set_key != key:
            continue  # an override of another key, or of one entry of this mapping
        if OmegaConf.select(source, key, default=None) is not None:
            section, name = key.split(".")
            with read_write(merged[section]):  # the schema is frozen; this is the loader
                merged[section][name] = {}


@contextlib.contextmanager
def _config_errors(where: str):
    """Turn OmegaConf and YAML errors into one `ConfigError` naming the source."""
    try:
        yield
    except OmegaConfBaseException as e:
        reason = str(e).splitlines()[0]
        raise ConfigError(
            f"Invalid {where}: {reason} Every valid key is listed, with its type and meaning, "
            f"in configs/two_head.yaml (tune: keys in configs/tune_head_width.yaml)."
        ) from None
    except Exception as e:  # YAML syntax errors and the like
        raise ConfigError(f"Invalid {where}: {e}") from None


def validate(config: Config) -> None:
    """Check values that the type schema cannot: ranges, choices, cross references."""
    d, m, t = config.data, config.model, config.train
    if t.strategy == "multi_worker":
        raise ConfigError(MULTI_WORKER_UNSUPPORTED)
    _check(t.strategy in STRATEGIES, "train.strategy", f"one of {STRATEGIES}", t.strategy)
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
    for name, width in m.head_widths.items():
        _check(name in m.heads, f"model.head_widths.{name}",
               f"a width for one of the heads {list(m.heads)}", name)
        _check(width > 0, f"model.head_widths.{name}", "a positive integer", width)
    _check(not (m.kind in SOFTMAX_KINDS and m.head_widths), "model.head_widths",
           f"empty for model.kind={m.kind} (it has one shared conv5: model.head_width)",
           dict(m.head_widths))
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
    _check(not (m.kind in SOFTMAX_KINDS and t.pos_weight), "train.pos_weight",
           f"empty for model.kind={m.kind} (it weights per-head sigmoid losses)",
           dict(t.pos_weight))
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
    _check(config.monitor in objective_names(config) and config.monitor != "val_loss",
           "train.monitor", "null (the validation F1 of train.monitor_head) or a logged "
           f"validation metric that is better when higher, one of "
           f"{[n for n in objective_names(config) if n != 'val_loss']}", t.monitor)
    _validate_schedule(t)
    _validate_coarse(config)
    _validate_tune(config)


def _validate_schedule(t: TrainConfig) -> None:
    _check(t.schedule in SCHEDULES, "train.schedule", f"one of {SCHEDULES}", t.schedule)
    _check(0 < t.pct_start < 1, "train.pct_start", "a fraction in (0, 1)", t.pct_start)
    _check(t.div > 0, "train.div", "a positive number", t.div)
    _check(t.div_final > 0, "train.div_final", "a positive number", t.div_final)
    _check(t.frozen_bn in FROZEN_BN, "train.frozen_bn", f"one of {FROZEN_BN}", t.frozen_bn)
    for stage in STAGES:
        epochs = getattr(t.stages, stage)
        _check(epochs >= 0, f"train.stages.{stage}", "0 or more epochs", epochs)


def _validate_coarse(config: Config) -> None:
    """`data.coarse`: groups of fine class ids; every id in exactly one group."""
    groups, names = config.data.coarse, config.data.class_names
    if config.model.kind == "combined":
        _check(len(groups) >= 2, "data.coarse", "at least two groups of class ids for "
               "model.kind=combined, e.g. {tops: [0, 2], shoes: [5, 7]}", dict(groups))
        s = config.train.stages
        _check(s.frozen + s.unfrozen >= 1, "train.stages",
               "at least one epoch of the combined model (frozen + unfrozen)", vars(s))
    if not groups:
        return
    seen: dict[int, str] = {}
    for group, ids in groups.items():
        _check(len(ids) >= 1, f"data.coarse.{group}", "a non-empty list of class ids",
               list(ids))
        for i in ids:
            _check(0 <= i < len(names), f"data.coarse.{group}",
                   f"class ids in 0..{len(names) - 1} (data.class_names); class id {i} "
                   "does not exist", list(ids))
            if i in seen:
                raise ConfigError(
                    f"data.coarse: class id {i} ({names[i]!r}) is in two groups, "
                    f"{seen[i]!r} and {group!r}; every class id belongs to exactly one group.")
            seen[i] = group
    missing = [i for i in range(len(names)) if i not in seen]
    if missing:
        listed = ", ".join(f"{i} ({names[i]!r})" for i in missing)
        raise ConfigError(f"data.coarse: class id{'s' * (len(missing) > 1)} {listed} "
                          f"{'are' if len(missing) > 1 else 'is'} in no group; every class "
                          f"id of data.class_names belongs to exactly one group.")


def coarse_ids(config: Config):
    """Fine class id -> coarse group index (groups in `data.coarse` order), as an array."""
    import numpy as np

    table = np.zeros(len(config.data.class_names), dtype=np.int64)
    for index, ids in enumerate(config.data.coarse.values()):
        table[list(ids)] = index
    return table


def objective_names(config: Config) -> list[str]:
    """The validation metrics a run logs, any of which a search can optimise."""
    names = ["val_loss"]
    softmax = config.model.kind in SOFTMAX_KINDS
    if softmax:
        names += [f"val_{m}" for m in class_metric_names(len(config.data.class_names))]
    for head in config.model.heads:
        names += [f"val_{head}_{metric}" for metric in HEAD_METRICS
                  if not (metric == "loss" and softmax)]
    return names


def class_metric_names(num_classes: int) -> list[str]:
    """The class-level metrics a softmax over `num_classes` logs (top5 needs over 5)."""
    return [m for m in CLASS_METRICS if m != "top5" or num_classes > 5]


def _validate_tune(config: Config) -> None:
    u = config.tune
    _check(u.oracle in ORACLES, "tune.oracle", f"one of {ORACLES}", u.oracle)
    _check(u.max_trials >= 1, "tune.max_trials", "at least 1", u.max_trials)
    _check(u.epochs is None or u.epochs >= 1, "tune.epochs", "null or at least 1", u.epochs)
    _check(u.objective is None or u.objective in objective_names(config), "tune.objective",
           f"null or a logged validation metric, one of {objective_names(config)}", u.objective)
    _check(u.direction in ("max", "min"), "tune.direction", "max or min", u.direction)
    for key, bound in u.constraints.items():
        _check(key in CONSTRAINTS, f"tune.constraints.{key}", f"one of {CONSTRAINTS}", key)
        _check(bound > 0, f"tune.constraints.{key}", "a positive upper bound", bound)
    _check(u.latency_images >= 1, "tune.latency_images", "at least 1", u.latency_images)
    _check(u.hyperband_factor >= 2, "tune.hyperband_factor", "at least 2", u.hyperband_factor)
    _check(u.max_failed_trials >= 1, "tune.max_failed_trials", "at least 1",
           u.max_failed_trials)


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
