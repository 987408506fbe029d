"""Shared fixtures: tiny generated datasets in the reference layout, in tmp_path."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

import tf_twohead  # noqa: E402,F401 - before any test module imports TensorFlow (oneDNN on)

# isort: split
import keras  # noqa: E402 - after tf_twohead

FOLDERS = ("documents", "not a documents", "screens")
# One unit per ShuffleNetV2 stage instead of torchvision's 4/8/4: every code path of the
# full network, at half the time to trace a training step (tests train many models).
SHALLOW = "model.stage_repeats=[1,1,1]"


def write_image(path, size=40, seed=0, mode="RGB", fmt=None, class_id=None):
    """A small image whose colour depends on the class, so models can learn it."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    if class_id is not None:
        arr[..., class_id % 3] += 150
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def write_dataset(root, per_class=(6, 6, 6), size=40, splits=("train", "val", "test"),
                 sep=","):
    """Write `root/<class folder>/*.jpg` and headerless `<split>.csv` files."""
    for s, split in enumerate(splits):
        lines = []
        for class_id, n in enumerate(per_class):
            for i in range(n):
                rel = f"{FOLDERS[class_id]}/{split} {i}.jpg"  # spaces, as in the reference
                write_image(root / rel, size, seed=1000 * s + 100 * class_id + i,
                            class_id=class_id)
                lines.append(f"{rel}{sep}{class_id}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "dataset")


def tiny_config(tmp_path, root, *overrides):
    """A config that trains in seconds: 32 px, x0.5, narrow heads, 2 epochs."""
    from tf_twohead import config

    return config.load_config("configs/two_head.yaml", [
        f"data.root={root}", "data.img_size=32", f"output_dir={tmp_path / 'runs'}",
        "model.head_width=16", SHALLOW, "train.epochs=2", "train.batch_size=8", *overrides,
    ])


class Interrupt(keras.callbacks.Callback):
    """Stops the run like Ctrl-C after `after` epochs."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt
