"""TensorFlow's threads: the rule that splits a small training step's threads between two
ops at a time, applied by `train` before TensorFlow runs (no timing here: the speed is
measured in bench/anchors.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tf_twohead.cli import main
from tf_twohead.core import runtime
from tf_twohead.core.runtime import SMALL_STEP_PIXELS, thread_plan


@pytest.mark.parametrize("threads, step_pixels, plan", [
    (None, None, None),                        # TensorFlow's own defaults
    (2, None, (2, 2)),                         # inference, or an unknown step
    (1, None, (1, 1)),
    (1, 64 * 64 * 64, (1, 1)),                 # one thread stays one thread
    (2, 64 * 64 * 64, (1, 2)),                 # a 64 px step: two ops at a time
    (8, 64 * 64 * 64, (4, 2)),
    (2, 64 * 128 * 128, (2, 2)),               # a 128 px step: one op on all threads
    (2, SMALL_STEP_PIXELS, (2, 2)),
    (2, SMALL_STEP_PIXELS - 1, (1, 2)),
])
def test_thread_plan(threads, step_pixels, plan):
    assert thread_plan(threads, step_pixels) == plan


def test_all_threads_of_a_small_step_are_the_available_cpus(monkeypatch):
    monkeypatch.setattr(runtime, "available_cpus", lambda: 6)
    assert thread_plan(None, 64 * 64 * 64) == (3, 2)
    assert thread_plan(None, 64 * 256 * 256) is None


def test_set_threads_configures_a_fresh_tensorflow():
    code = ("from tf_twohead.core.runtime import set_threads; set_threads(2, 64 * 64 * 64); "
            "import tensorflow as tf; t = tf.config.threading; "
            "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["1", "2"]


@pytest.mark.parametrize("size, batch", [(32, 16), (128, 64)])
def test_train_sets_the_threads_for_its_step(dataset, tmp_path, monkeypatch, size, batch):
    calls = []
    monkeypatch.setattr(runtime, "set_threads", lambda *a, **k: calls.append((a, k)))
    from tf_twohead.training import run as training

    monkeypatch.setattr(training, "train", lambda cfg, **kwargs: None)
    assert main(["train", "--config", "two_head", f"data.root={dataset}",
                 f"output_dir={tmp_path / 'runs'}", f"data.img_size={size}",
                 f"train.batch_size={batch}", "--threads", "2"]) == 0
    assert calls == [((2,), {"step_pixels": batch * size * size})]
