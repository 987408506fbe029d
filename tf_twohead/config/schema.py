"""The config schema: frozen dataclasses, one per section, with their defaults.

Every valid key is a field here; OmegaConf's structured configs enforce the types, so
an unknown or misspelled key is an error that names it (`config.loading`). Values
that the types cannot check are checked in `config.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf_twohead.core.api import public
from tf_twohead.core.defaults import (
    DEFAULT_CLASS_NAMES,
    DEFAULT_HEADS,
    DEFAULT_LOSS_WEIGHTS,
    DEFAULT_MONITOR_HEAD,
    MAX_IMAGE_PIXELS,
    MAX_SPLIT_ROWS,
    STAGE_REPEATS,
)


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
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_rows: int = MAX_SPLIT_ROWS
    allow_single_class: bool = False


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
    stage_repeats: list[int] = field(default_factory=lambda: list(STAGE_REPEATS))
    init_from: str | None = None
    drop_heads: list[str] = field(default_factory=list)


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
    monitor_head: str = DEFAULT_MONITOR_HEAD
    monitor: str | None = None
    strategy: str = "auto"
    backend: str = "tensorflow"
    distribution: str = "none"
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


@public
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
    def cache_dir(self) -> Path:
        """Where this config's runs cache decoded, resized splits: `data.cache_dir`,
        else `<output_dir>/cache`. The one answer for every run, search and evaluation."""
        return Path(self.data.cache_dir or Path(self.output_dir) / "cache")

    @property
    def objective(self) -> str:
        """What a search optimises: `tune.objective`, else the monitored head's val F1."""
        return self.tune.objective or f"val_{self.train.monitor_head}_f1"

    @property
    def monitor(self) -> str:
        """The logged metric that picks `best.keras`: `train.monitor`, else the
        validation F1 of `train.monitor_head`."""
        return self.train.monitor or f"val_{self.train.monitor_head}_f1"
