"""`tf-twohead data tfds`: TFDS datasets into our layout, offline through mock_data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from tf_twohead import config  # noqa: E402
from tf_twohead.cli import main  # noqa: E402
from tf_twohead.data.splits import DataError  # noqa: E402


def pets(n=40):
    """A mock `as_dataset` for oxford_iiit_pet, breeds 0, 1, 2, ... in turn, whose species
    follow the breeds as in the post (cat breeds are capitalised); mock_data alone draws
    them independently, which breaks the hierarchy."""
    import tensorflow as tf

    def as_dataset_fn(self, *args, **kwargs):
        names = self.info.features["label"].names
        labels = np.arange(n, dtype=np.int64) % len(names)
        species = np.array([0 if names[i][0].isupper() else 1 for i in labels], np.int64)
        rng = np.random.default_rng(0)
        return tf.data.Dataset.from_tensor_slices({
            "image": rng.integers(0, 256, (n, 30, 40, 3), dtype=np.uint8),
            "label": labels, "species": species, "file_name": np.array([b"f.jpg"] * n),
            "segmentation_mask": np.zeros((n, 30, 40, 1), np.uint8),
            "head_bbox": np.zeros((n, 4), np.float32)})

    return as_dataset_fn


def test_tfds_export_writes_our_layout_and_coarse_groups(tmp_path, capsys):
    out = tmp_path / "pets"
    with tfds.testing.mock_data(num_examples=40, as_dataset_fn=pets()):
        code = main(["data", "tfds", "oxford_iiit_pet", str(out), "--coarse-label", "species",
                     "--size", "32", "--val-fraction", "0.25", "--limit", "40"])
    assert code == 0
    assert "tf_twohead.yaml" in capsys.readouterr().out
    splits = {s: pd.read_csv(out / f"{s}.csv", header=None) for s in ("train", "val", "test")}
    assert {s: len(df) for s, df in splits.items()} == {"train": 30, "val": 10, "test": 40}
    train = splits["train"]
    assert not set(train[0]) & set(splits["val"][0])  # val is held out of train
    path, class_id = train.iloc[0]
    from PIL import Image

    names = tfds.builder("oxford_iiit_pet").info.features["label"].names
    assert path.startswith(f"{names[class_id]}/")
    assert Image.open(out / path).size == (32, 32)
    # The layer's classes and coarse groups load over the combined recipe.
    cfg = config.load_config(["configs/combined.yaml", out / "tf_twohead.yaml"],
                      ["model.heads={main: [1], aux: [2]}"])
    assert cfg.data.root == str(out) and len(cfg.data.class_names) == 37
    assert list(cfg.data.coarse) == ["Cat", "Dog"]
    assert cfg.data.coarse["Cat"] == [i for i, n in enumerate(names) if n[0].isupper()]


def test_tfds_layer_loads_over_an_experiment_config(tmp_path):
    with tfds.testing.mock_data(num_examples=12, as_dataset_fn=pets(12)):  # no --coarse-label
        from tf_twohead.data.tfds import write_tfds

        result = write_tfds("oxford_iiit_pet", tmp_path / "pets", progress=False)
    assert result["coarse"] == {}
    cfg = config.load_config(["configs/combined_baseline.yaml", result["config"]],
                      ["data.coarse={}", "model.heads={main: [1], aux: [2]}"])
    assert cfg.data.root == str(tmp_path / "pets") and len(cfg.data.class_names) == 37


def test_tfds_random_mock_labels_break_the_hierarchy_with_a_clear_error(tmp_path):
    from tf_twohead.data.tfds import write_tfds

    with tfds.testing.mock_data(num_examples=60):  # species drawn independently of breed
        with pytest.raises(DataError, match=r"class \d+ \('[^']+'\) with 0 \('Cat'\) and "
                                            r"1 \('Dog'\)"):
            write_tfds("oxford_iiit_pet", tmp_path / "a", coarse_label="species",
                       progress=False)
        with pytest.raises(DataError, match="no class-label feature 'breed'.*'species'"):
            write_tfds("oxford_iiit_pet", tmp_path / "b", label="breed", progress=False)


def test_tfds_unseen_fine_classes_are_named(tmp_path):
    from tf_twohead.data.tfds import write_tfds

    with tfds.testing.mock_data(num_examples=6, as_dataset_fn=pets(6)):
        with pytest.raises(DataError, match=r"Classes \[6, 7, 8, .*never appear"):
            write_tfds("oxford_iiit_pet", tmp_path / "p", coarse_label="species",
                       progress=False)
