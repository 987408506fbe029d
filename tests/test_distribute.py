"""`train.strategy`: MirroredStrategy on one machine (tested on two logical CPUs), and a
clear refusal of multi-worker training, which Keras 3 on TensorFlow cannot do."""

import json
import subprocess
import sys

import pytest
from conftest import SHALLOW

from tf_twohead import config

# TensorFlow's devices are fixed when it starts, so the two logical CPUs need a fresh process.
MIRRORED = """
import json, sys
import tf_twohead
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tf_twohead import config
from tf_twohead.training import distribute
from tf_twohead.keras_files import load as saving
from tf_twohead.training import run as training
cfg = config.load_config("configs/two_head.yaml", sys.argv[1:])
state = training.train(cfg, verbose=0)
model = saving.load_model(cfg.run_dir / "best.keras")
out = model.predict(tf.zeros((3, 32, 32, 3), tf.uint8), verbose=0)
print("RESULT", json.dumps({"replicas": distribute.replicas(cfg), "epoch": state["epoch"],
                            "shapes": {k: list(v.shape) for k, v in out.items()}}))
"""


def test_multi_worker_is_refused_with_the_reason():
    with pytest.raises(config.ConfigError,
                       match=r"keras-team/keras#20585.*data_parallel.*tune --chief"):
        config.load_config("configs/two_head.yaml", ["train.strategy=multi_worker"])


@pytest.mark.parametrize("overrides, says", [
    (["train.backend=pytorch"], "train.backend must be one of"),
    (["train.distribution=data_parallel"], "set train.backend=jax"),
    (["train.backend=jax", "train.strategy=mirrored"], "mirrored is TensorFlow's"),
    (["train.backend=jax", "train.distribution=ring"], "train.distribution must be one of"),
])
def test_engine_and_distribution_settings_are_checked(overrides, says):
    with pytest.raises(config.ConfigError, match=says):
        config.load_config("two_head", overrides)
    with pytest.raises(config.ConfigError, match="combined's staged run"):
        config.load_config("combined", ["train.backend=jax", "train.distribution=data_parallel"])


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_devices(dataset, tmp_path):
    overrides = [f"data.root={dataset}", "data.img_size=32", f"output_dir={tmp_path}",
                 "model.head_width=16", SHALLOW, "train.epochs=2", "train.batch_size=8",
                 "train.strategy=mirrored"]
    done = subprocess.run([sys.executable, "-c", MIRRORED, *overrides], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT"))
    result = json.loads(line.split(" ", 1)[1])
    assert result == {"replicas": 2, "epoch": 2, "shapes": {"main": [3, 1], "aux": [3, 1]}}
