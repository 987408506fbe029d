"""A search space: the `tune.space` mapping of dotted config keys to choices
(`model.head_width: [64, 256, 1024]`) or ranges (`{min: 1e-4, max: 3e-3, log: true}`).

Every value is checked here, before any trial runs, by building the `Config` it would
give, so each trial is a normal, validated config and the winner is a config file.
Nothing here imports Keras Tuner: `Dimension.declare` registers a key with the `hp`
object Keras Tuner hands the HyperModel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from tf_twohead.config import Config, with_values
from tf_twohead.core.errors import ConfigError

# Keys a search cannot vary: where things are written and read, and the search itself.
UNSEARCHABLE = ("exp", "output_dir", "data.root", "data.cache_dir", "data.workers",
                "data.class_names", "model.heads", "train.monitor_head", "tune")
RANGE_KEYS = {"min", "max", "log", "step"}


@dataclass(frozen=True)
class Dimension:
    """One searched config key: a choice of values, or a numeric range."""

    key: str
    values: tuple | None = None  # a choice
    low: float | None = None  # a range
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def declare(self, hp):
        """Register the dimension with Keras Tuner's `hp` (under its dotted key) and
        return its value."""
        if self.values is not None:
            return hp.Choice(self.key, list(self.values))
        sampling = "log" if self.log else "linear"
        if self.integer:
            return hp.Int(self.key, int(self.low), int(self.high),
                          step=int(self.step) if self.step else None, sampling=sampling)
        return hp.Float(self.key, self.low, self.high, step=self.step, sampling=sampling)


def search_space(cfg: Config) -> list[Dimension]:
    """Parse and check `cfg.tune.space` before any trial runs.

    Every key must be a config key a search may vary, and every choice (each end of a
    range) must give a valid `Config` on its own; values are cast to the key's type.

    Raises:
        ConfigError: naming `tune.space.<key>`, the value, and why.
    """
    space = cfg.tune.space
    kinds = space.get("model.kind", [])
    if cfg.model.kind == "combined" or (isinstance(kinds, (list, tuple)) and "combined" in kinds):
        raise ConfigError("model.kind=combined cannot be searched yet: a trial trains one "
                          "model, and a combined run is four staged fits (train it with "
                          "tf-twohead train). Search two_head or softmax models.")
    if not space:
        raise ConfigError("tune.space is empty: map dotted config keys to choices or ranges, "
                          "e.g. model.head_width: [64, 256, 1024] (configs/tune_head_width.yaml).")
    dims = []
    for key, spec in space.items():
        where = f"tune.space.{key}"
        if any(key == k or key.startswith(k + ".") for k in UNSEARCHABLE):
            raise ConfigError(f"{where}: {key} cannot be searched (it says where runs and data "
                              f"live, or what the heads mean). Keys that cannot: {UNSEARCHABLE}.")
        if isinstance(spec, (list, tuple)):
            if not spec or len(set(map(repr, spec))) != len(spec):
                raise ConfigError(f"{where} must be a non-empty list of distinct values. "
                                  f"Received: {spec!r}")
            values = tuple(_typed(cfg, key, v, where) for v in spec)
            if len({type(v) for v in values}) != 1 or isinstance(values[0], (list, dict)):
                raise ConfigError(f"{where}: choices must be plain values of one type "
                                  f"(numbers, strings or booleans). Received: {spec!r}")
            dims.append(Dimension(key, values=values))
        elif isinstance(spec, dict):
            dims.append(_range(cfg, key, spec, where))
        else:
            raise ConfigError(f"{where} must be a list of choices or a range {{min, max, "
                              f"log, step}}. Received: {spec!r}")
    return dims


def _range(cfg: Config, key: str, spec: dict, where: str) -> Dimension:
    unknown = sorted(set(spec) - RANGE_KEYS)
    if unknown or not {"min", "max"} <= set(spec):
        raise ConfigError(f"{where}: a range needs min and max (and optionally log, step). "
                          f"Received: {dict(spec)}")
    low, high = (_typed(cfg, key, spec[k], where) for k in ("min", "max"))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numeric or not low < high:
        raise ConfigError(f"{where}: a range needs numbers with min < max. "
                          f"Received: min={spec['min']!r}, max={spec['max']!r}")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs min > 0. Received: min={low}")
    return Dimension(key, low=low, high=high, log=log, step=spec.get("step"),
                     integer=isinstance(low, int))


def _typed(cfg: Config, key: str, value: Any, where: str) -> Any:
    """`value` as the config stores it at `key` (1 -> 1.0 for a float key), checked."""
    try:
        trial = with_values(cfg, {key: value}, where="tune.space")
    except ConfigError as e:
        if str(e).startswith("Invalid tune.space"):  # already names the key and value
            raise
        raise ConfigError(f"{where}: the value {value!r} is not usable: {e}") from None
    return OmegaConf.select(OmegaConf.structured(trial), key)


def plain_value(value):
    """Keras Tuner's numpy scalars and float steps (0.30000000000000004) as plain values."""
    if hasattr(value, "item"):
        value = value.item()
    return round(value, 10) if isinstance(value, float) else value
