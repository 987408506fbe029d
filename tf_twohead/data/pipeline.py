"""tf.data pipelines over validated, cached splits.

Images come out as raw RGB uint8 batches (the model normalises them itself) with
targets keyed by output name, ready for `model.fit`. Decoding, EXIF and resizing
happened once in `data.cache`; per epoch the pipeline only shuffles (seeded), gathers
a batch from the memory-mapped cache, augments (training only) and prefetches.

Example:

>>> cfg = config.load_config("configs/two_head.yaml")
>>> train_ds, val_ds = make_datasets(cfg, ("train", "val"))
>>> model.fit(train_ds, validation_data=val_ds)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tf_twohead.core.api import public
from tf_twohead.data.cache import SplitData, describe, keep_usable, scan_split
from tf_twohead.data.checks import check_heads, report_duplicates
from tf_twohead.data.layouts import check_layouts
from tf_twohead.data.problems import raise_bad_rows
from tf_twohead.data.splits import split_csv
from tf_twohead.data.targets import split_targets


@public
def make_dataset(split: SplitData, targets: dict[str, np.ndarray], batch_size: int,
                 training: bool = False, seed: int = 0, rotation: float = 0.0,
                 hflip: bool = False, pos_weight: dict[str, float] | None = None,
                 rotation_interpolation: str = "nearest",
                 shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """A batched dataset of `(uint8 images, {name: target}[, {name: sample weight}])`.

    Args:
        split: `SplitData`. Validated pixels and class ids.
        targets: dict. Output name -> target array, row-aligned with `split`.
        batch_size: int. Images per batch (the last batch may be smaller).
        training: bool. Shuffle with `seed` every epoch and apply augmentation.
        seed: int. Seed for shuffling and augmentation.
        rotation: float. Maximum random rotation in degrees (training only); the
            corners are filled with black, as torchvision's `RandomRotation` does.
        rotation_interpolation: str. "nearest" (torchvision's default, the
            reference's) or "bilinear".
        hflip: bool. Random horizontal flips (training only).
        pos_weight: dict or None. Output name -> weight of positive examples; when
            given, the dataset also yields per-output sample weights.
        shard: `(processes, index)` or None. For data-parallel training: every process
            shuffles alike (the same seed), cuts the same global batches of `batch_size`
            (the last partial one dropped, so that every process takes the same number
            of steps) and decodes only its own `batch_size / processes` rows of each.
            Only for training: validation is read whole by every process.
    """
    images = split.images
    n = len(split)
    if n == 0:
        raise ValueError(f"Split {split.name!r} is empty.")
    ds = tf.data.Dataset.range(n)
    if training:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if shard and shard[0] > 1:
        processes, index = shard
        ds = ds.batch(batch_size, drop_remainder=True).map(lambda rows: rows[index::processes])
    else:
        ds = ds.batch(batch_size)
    size = images.shape[1:]

    def gather(indices):
        return images[indices]

    target_tensors = {k: tf.constant(v) for k, v in targets.items()}
    weights = {
        name: tf.constant(np.where(targets[name][:, :1] > 0.5, pos_weight.get(name, 1.0), 1.0)
                          .astype(np.float32)[:, 0])
        for name in targets
    } if pos_weight else None

    def load(indices):
        # Sorted indices make the memory-mapped read sequential; order inside a batch
        # does not matter, and targets are gathered with the same indices.
        indices = tf.sort(indices)
        batch = tf.numpy_function(gather, [indices], tf.uint8, stateful=False)
        batch = tf.ensure_shape(batch, (None, *size))
        y = {k: tf.gather(v, indices) for k, v in target_tensors.items()}
        if weights is None:
            return batch, y
        return batch, y, {k: tf.gather(v, indices) for k, v in weights.items()}

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training and (rotation or hflip):
        augment = _augmenter(rotation, hflip, seed, rotation_interpolation)
        ds = ds.map(lambda x, *rest: (augment(x), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _augmenter(rotation: float, hflip: bool, seed: int, interpolation: str = "nearest"):
    layers = []
    if hflip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation / 360.0, fill_mode="constant",
                                                  fill_value=0.0, seed=seed,
                                                  interpolation=interpolation))

    def augment(images):
        x = tf.cast(images, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)

    return augment


def checked_splits(cfg, splits=("train", "val"), root: str | None = None, progress=True
                ) -> dict[str, SplitData]:
    """Validate (and cache) several splits of the configured dataset before any training.

    Every row of every split is checked, and every image decoded, before anything is
    raised: with `data.on_bad_image=error`, one report lists the bad rows of all splits
    (malformed, unknown class id, missing file, undecodable image), so a bad test row
    is found before training starts, and one round of fixes is enough.

    Then the splits as a whole: a head without positive or negative examples in a split
    is a `DataError` (unless `data.allow_single_class`), and exact duplicate images
    within and across splits are reported as a warning (`data.checks`).
    """
    data = cfg.data
    root = root or data.root
    scanned = {name: scan_split(root, name, data.img_size, len(data.class_names), cfg.cache_dir,
                                data.workers, progress, data.max_image_pixels, data.max_rows,
                                list(cfg.model.heads))
               for name in splits}
    if data.on_bad_image == "error":
        raise_bad_rows({describe(name, root): problems
                        for name, (_, problems) in scanned.items()})
    loaded = {name: keep_usable(split, problems, data.on_bad_image, describe(name, root))
              for name, (split, problems) in scanned.items()}
    check_layouts(cfg, [split_csv(root, name) for name in loaded])
    check_heads(loaded, cfg.model.heads, data.allow_single_class)
    report_duplicates(loaded)
    return loaded


@public
def make_datasets(cfg, splits=("train", "val"), root: str | None = None, progress=True
                  ) -> list[tf.data.Dataset]:
    """Datasets for `splits` of a `Config`: the first named "train" is the training one.

    Args:
        cfg: `Config`. Uses `cfg.data`, `cfg.model.kind/heads` and `cfg.train`.
        splits: tuple of str. Which splits to build.
        root: str or None. Dataset folder overriding `cfg.data.root`.
        progress: bool. Progress bars while building caches.
    """
    loaded = checked_splits(cfg, splits, root, progress)
    return [datasets_for(cfg, split) for split in loaded.values()]


def datasets_for(cfg, split: SplitData, targets: dict[str, np.ndarray] | None = None,
                 shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """The dataset of one loaded split, configured from a `Config`.

    `targets` replaces the targets the config's model kind implies (a combined run's
    coarse stage learns the coarse groups of the same images). `shard`: this process's
    part of each training batch in a data-parallel group (`make_dataset`)."""
    training = split.name == "train"
    if targets is None:
        targets = split_targets(split.rows, cfg.model.kind, cfg.model.heads,
                                len(cfg.data.class_names))
    pos_weight = dict(cfg.train.pos_weight) if cfg.model.kind == "two_head" else None
    return make_dataset(split, targets, cfg.train.batch_size, training=training,
                        seed=cfg.train.seed, rotation=cfg.data.rotation,
                        hflip=cfg.data.hflip, pos_weight=pos_weight or None,
                        rotation_interpolation=cfg.data.rotation_interpolation,
                        shard=shard if training else None)
