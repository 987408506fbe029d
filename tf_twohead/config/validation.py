"""Check the values a type schema cannot: ranges, choices and cross references.

Every failure is a `ConfigError` naming the key, what it expects and what it received.
"""

from __future__ import annotations

import numpy as np

from tf_twohead.config.limits import MAX_HEAD_WIDTH, check_limits
from tf_twohead.config.schema import Config, TrainConfig
from tf_twohead.core.defaults import (
    BACKBONES,
    BACKENDS,
    BAD_IMAGE_POLICIES,
    CONSTRAINTS,
    DISTRIBUTIONS,
    FROZEN_BN,
    HEAD_METRICS,
    INITS,
    INTERPOLATIONS,
    MAX_STAGE_REPEATS,
    MOBILENET_ALPHAS,
    MODEL_KINDS,
    ORACLES,
    SCHEDULES,
    SOFTMAX_KINDS,
    SOFTMAX_OUTPUT,
    STAGE_REPEATS,
    STAGES,
    STRATEGIES,
    WEIGHT_DECAY_MODES,
    WIDTHS,
    class_metric_names,
)
from tf_twohead.core.errors import ConfigError

MULTI_WORKER_UNSUPPORTED = (
    "train.strategy=multi_worker is not supported: Keras 3 on TensorFlow cannot train under "
    "MultiWorkerMirroredStrategy (keras-team/keras#20585, open). Use train.strategy=mirrored "
    "for several GPUs of one machine; train.backend=jax train.distribution=data_parallel for "
    "one run over several processes or machines (docs/distributed.md); or spread a search "
    "over machines: tf-twohead tune --chief PORT / --worker ID --chief HOST:PORT."
)


def validate(config: Config) -> None:
    """Check values that the type schema cannot: ranges, choices, cross references."""
    d, m, t = config.data, config.model, config.train
    check_limits(config)
    if t.strategy == "multi_worker":
        raise ConfigError(MULTI_WORKER_UNSUPPORTED)
    _check(t.strategy in STRATEGIES, "train.strategy", f"one of {STRATEGIES}", t.strategy)
    _check(t.backend in BACKENDS, "train.backend", f"one of {BACKENDS}", t.backend)
    _check(t.distribution in DISTRIBUTIONS, "train.distribution", f"one of {DISTRIBUTIONS}",
           t.distribution)
    if t.backend == "jax" and t.strategy == "mirrored":
        raise ConfigError("train.strategy=mirrored is TensorFlow's: with train.backend=jax, "
                          "use train.distribution=data_parallel (docs/distributed.md).")
    if t.distribution == "data_parallel" and m.kind == "combined":
        raise ConfigError("train.distribution=data_parallel trains plain runs (two_head, "
                          "softmax); model.kind=combined's staged run trains in one process.")
    if t.distribution == "data_parallel" and t.backend != "jax":
        raise ConfigError("train.distribution=data_parallel trains on Keras' JAX engine: set "
                          "train.backend=jax as well (docs/distributed.md).")
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
    repeats = list(m.stage_repeats)
    _check(len(repeats) == 3 and all(1 <= r <= MAX_STAGE_REPEATS for r in repeats),
           "model.stage_repeats", f"three unit counts of 1 to {MAX_STAGE_REPEATS} (stage2, "
           f"stage3, stage4; torchvision's are {list(STAGE_REPEATS)})", repeats)
    _check(tuple(repeats) == STAGE_REPEATS or (m.backbone == "shufflenet_v2"
                                               and not m.pretrained),
           "model.stage_repeats", f"torchvision's {list(STAGE_REPEATS)} with "
           f"model.backbone={m.backbone} and model.pretrained={m.pretrained} (other depths "
           "are ShuffleNetV2's, trained from scratch)", repeats)
    _check(m.head_width > 0, "model.head_width", "a positive integer", m.head_width)
    for name, width in m.head_widths.items():
        _check(name in m.heads, f"model.head_widths.{name}",
               f"a width for one of the heads {list(m.heads)}", name)
        _check(0 < width <= MAX_HEAD_WIDTH, f"model.head_widths.{name}",
               f"a positive integer up to {MAX_HEAD_WIDTH:,}", width)
    _check(not (m.kind in SOFTMAX_KINDS and m.head_widths), "model.head_widths",
           f"empty for model.kind={m.kind} (it has one shared conv5: model.head_width)",
           dict(m.head_widths))
    # A file given as model.pretrained is checked when training starts (pretrained.py), not
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
        # [] names a head answered in its own column of per-head CSVs (data.layouts).
        _check((ids or m.kind == "two_head") and not bad, f"model.heads.{name}",
               f"positive class ids in 0..{len(d.class_names) - 1}"
               + (", or [] for a head answered in its own CSV column"
                  if m.kind == "two_head" else ""), list(ids))
    for key, mapping in (("train.loss_weights", t.loss_weights),
                         ("train.pos_weight", t.pos_weight)):
        unknown = sorted(set(mapping) - set(m.heads))
        _check(not unknown, key, f"keys among the heads {list(m.heads)}", unknown)
    for head, weight in t.loss_weights.items():  # a negative weight trains the head to fail
        _check(weight >= 0, f"train.loss_weights.{head}", "0 or more", weight)
    for head, weight in t.pos_weight.items():
        _check(weight > 0, f"train.pos_weight.{head}", "a positive number", weight)
    _check(not (m.kind in SOFTMAX_KINDS and t.pos_weight), "train.pos_weight",
           f"empty for model.kind={m.kind} (it weights per-head sigmoid losses)",
           dict(t.pos_weight))
    _check(t.monitor_head in m.heads, "train.monitor_head", f"one of {list(m.heads)}",
           t.monitor_head)
    _check(t.epochs >= 1, "train.epochs", "at least 1", t.epochs)
    _check(0 <= t.freeze_epochs <= t.epochs, "train.freeze_epochs",
           f"0..train.epochs ({t.epochs})", t.freeze_epochs)
    _check(not t.freeze_epochs or m.pretrained or m.init_from, "train.freeze_epochs",
           "0 unless model.pretrained or model.init_from is set (a random backbone is not "
           "worth freezing)", t.freeze_epochs)
    _check(m.init_from is None or str(m.init_from).strip() != "", "model.init_from",
           "null, or a run folder or .keras file of a trained model", m.init_from)
    _check(not (m.init_from and m.pretrained), "model.init_from",
           "null when model.pretrained is set (the trained model brings its own backbone)",
           m.init_from)
    _check(not (m.init_from and m.kind != "two_head"), "model.init_from",
           "null unless model.kind=two_head (it carries heads over by name)", m.init_from)
    kept = sorted(set(m.drop_heads) & set(m.heads))
    _check(not kept, "model.drop_heads", "heads of the model in model.init_from that this "
           "config leaves out, not heads it keeps", kept)
    _check(not m.drop_heads or m.init_from, "model.drop_heads",
           "empty unless model.init_from is set", list(m.drop_heads))
    _check(t.batch_size >= 1, "train.batch_size", "at least 1", t.batch_size)
    _check(t.steps_per_epoch is None or t.steps_per_epoch >= 1, "train.steps_per_epoch",
           "null or at least 1", t.steps_per_epoch)
    _check(t.weight_decay_mode in WEIGHT_DECAY_MODES, "train.weight_decay_mode",
           f"one of {WEIGHT_DECAY_MODES}", t.weight_decay_mode)
    _check(t.weight_decay >= 0, "train.weight_decay", "0 or more", t.weight_decay)
    _check(t.adam_epsilon > 0, "train.adam_epsilon", "a positive number", t.adam_epsilon)
    _check(t.lr_gamma > 0, "train.lr_gamma", "a positive factor (0.1: ten times smaller)",
           t.lr_gamma)
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
