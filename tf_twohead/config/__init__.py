"""Experiment configuration: the schema (`schema`), loading with overrides (`loading`)
and the checks a type schema cannot make (`validation`).

Everything a caller needs is re-exported here (`from tf_twohead.config import Config,
load_config`); the shared vocabulary lives in `tf_twohead.core.defaults`. Importing it
loads OmegaConf and NumPy, never TensorFlow.

Example:

>>> from tf_twohead import config
>>> cfg = config.load_config("configs/two_head.yaml", ["train.epochs=3"])
>>> cfg.run_dir
PosixPath('saved_models/two_head')
"""

from tf_twohead.config.loading import (
    REPLACED_MAPPINGS,
    dump,
    load_config,
    to_yaml,
    with_absolute_paths,
    with_values,
)
from tf_twohead.config.presets import preset_names
from tf_twohead.config.schema import (
    Config,
    DataConfig,
    ModelConfig,
    StageEpochs,
    TrainConfig,
    TuneConfig,
)
from tf_twohead.config.validation import (
    MULTI_WORKER_UNSUPPORTED,
    coarse_ids,
    objective_names,
    validate,
)
from tf_twohead.core.errors import ConfigError

__all__ = ["Config", "ConfigError", "DataConfig", "ModelConfig", "StageEpochs", "TrainConfig",
           "TuneConfig", "MULTI_WORKER_UNSUPPORTED", "REPLACED_MAPPINGS",
           "coarse_ids", "dump", "load_config", "objective_names", "to_yaml",
           "validate", "with_absolute_paths", "with_values", "preset_names"]
