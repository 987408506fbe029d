"""Load configs: YAML files merged in order, `key=value` overrides win, the result is
validated and frozen.

Config flows one way: YAML gives defaults, overrides win, the result is a frozen
`Config`. Builders receive plain keyword arguments taken from it; they never see YAML.

Example:

>>> cfg = load_config("configs/two_head.yaml", ["train.epochs=3", "data.root=demo_data"])
>>> cfg.train.epochs
3
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException

from tf_twohead.config import presets
from tf_twohead.config.schema import Config
from tf_twohead.config.validation import validate
from tf_twohead.core.api import public
from tf_twohead.core.errors import ConfigError
from tf_twohead.core.fileio import atomic_write_text


@public
def load_config(path=None, overrides: list[str] | None = None) -> Config:
    """Load YAML config files, apply `key=value` overrides and validate the result.

    Args:
        path: str, list of str or None. YAML file(s) or preset names (`two_head`),
            merged in order (a later file wins; `tf-twohead data tfds` writes one with a
            dataset's classes and coarse groups to layer over an experiment's file); None
            starts from the defaults.
        overrides: list of str. `dotted.key=value` items; they win over the files.

    Returns:
        A frozen, validated `Config`.
    """
    sources = []
    paths = [] if path is None else [path] if isinstance(path, (str, os.PathLike)) else path
    for file in paths:
        file = presets.resolve(file)  # a path, or a shipped preset's name
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
        key = getattr(e, "full_key", None)
        named = f"{key}: " if key and key not in reason else ""
        raise ConfigError(
            f"Invalid {where}: {named}{reason} Every valid key is listed, with its type and "
            f"meaning, in configs/two_head.yaml (tune: keys in configs/tune_head_width.yaml)."
        ) from None
    except Exception as e:  # YAML syntax errors and the like
        raise ConfigError(f"Invalid {where}: {e}") from None


def to_yaml(config: Config) -> str:
    """The resolved config as YAML text; loading it back gives an equal `Config`."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def with_absolute_paths(config: Config) -> Config:
    """`config` with `data.root` and `data.cache_dir` made absolute, as a run's
    `config.yaml` stores them: evaluating the run from another folder still finds its data."""
    import dataclasses

    data = config.data
    cache = str(Path(data.cache_dir).resolve()) if data.cache_dir else None
    return dataclasses.replace(config, data=dataclasses.replace(
        data, root=str(Path(data.root).resolve()), cache_dir=cache))


def dump(config: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config atomically to `path` (temporary file, then rename)."""
    return atomic_write_text(path, to_yaml(config))


