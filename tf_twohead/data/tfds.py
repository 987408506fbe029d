"""Write any TensorFlow Datasets image-classification dataset in our layout.

`write_tfds("oxford_iiit_pet", "pets", coarse_label="species")` writes
`pets/<class name>/<split>_<n>.jpg`, headerless `train.csv`, `val.csv`, `test.csv` and
`pets/tf_twohead.yaml`, a config layer with `data.root`, `data.class_names` and (with a
coarse label) `data.coarse`, the groups derived from the data:

    tf-twohead train --config configs/combined.yaml --config pets/tf_twohead.yaml

TFDS' `train` split gives our train and val (`val_fraction` of it, seeded); its `test`
split (else `validation`) our test. Downloads happen only here, when TFDS has not
prepared the dataset yet (online users); offline, prepare it elsewhere and pass
`data_dir`. Examples: `oxford_iiit_pet` (`label` = 37 breeds, `species` = cat/dog, the
post's own data), `cifar100` (`label` = 100 classes, `coarse_label` = 20 superclasses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from PIL import Image
from tqdm import tqdm

from tf_twohead.core.api import public
from tf_twohead.core.fileio import atomic_write_text
from tf_twohead.data.splits import DataError

LAYER_FILE = "tf_twohead.yaml"


@public
def write_tfds(name: str, out: str | Path, label: str = "label",
               coarse_label: str | None = None, size: int | None = None,
               val_fraction: float = 0.2, limit: int | None = None,
               data_dir: str | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Write a TFDS dataset as class folders, CSV splits and a config layer.

    Args:
        name: str. A TFDS dataset name, e.g. "oxford_iiit_pet" or "cifar100".
        out: str. Output folder.
        label: str. The fine `ClassLabel` feature. Defaults to "label".
        coarse_label: str or None. A coarse `ClassLabel` feature; every fine class must
            come with one coarse class only, and the groups become `data.coarse`.
        size: int or None. Resize images to `size` x `size`; None keeps them as they are.
        val_fraction: float. Share of TFDS' train split held out as our val split.
        limit: int or None. Read at most this many examples per TFDS split.
        data_dir: str or None. TFDS' data folder; None: its default.
        seed: int. Seed of the train/val split.

    Returns:
        `{"counts": {split: rows}, "config": path of the config layer, "class_names",
        "coarse"}`.

    Raises:
        DataError: unknown features, a fine class with two coarse classes, fine classes
            never seen with a coarse label, or a dataset TFDS cannot prepare.
    """
    import tensorflow_datasets as tfds

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1). Received: val_fraction={val_fraction}")
    builder = tfds.builder(name, data_dir=data_dir)
    features = builder.info.features
    image_key = _image_feature(name, features)
    fine_names = _class_names(name, features, label, "--label")
    coarse_names = _class_names(name, features, coarse_label, "--coarse-label") \
        if coarse_label else None
    try:
        builder.download_and_prepare()
    except Exception as e:  # network, checksum, manual-download datasets, ...
        raise DataError(f"TFDS could not prepare {name!r}: {str(e).splitlines()[0]}. "
                        "Offline? Prepare it on a machine that is online and copy its "
                        "data_dir here (--data-dir), or see TFDS' manual_dir for archives.") \
            from None
    available = list(builder.info.splits) or ["train", "test"]  # mock data lists none
    test_split = next((s for s in ("test", "validation") if s in available), None)
    if "train" not in available or test_split is None:
        raise DataError(f"{name} has splits {available}; tf-twohead needs 'train' and "
                        "'test' (or 'validation').")
    out = Path(out)
    folders = _folders(fine_names)
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    pairs: dict[int, set] = {}
    for split in ("train", test_split):
        ds = builder.as_dataset(split=split, shuffle_files=False)
        if limit:
            ds = ds.take(limit)
        count = int(ds.cardinality())  # TFDS splits know their size: stream, one image
        if count < 0:                    # in memory at a time; else count them first
            count = sum(1 for _ in ds)
        targets = ("test",) if split != "train" else ("train", "val")
        held_out = _held_out(count, val_fraction, rng) if split == "train" else None
        examples = tqdm(tfds.as_numpy(ds), total=count, desc=f"Writing {name}/{split}",
                        disable=not progress, unit="img")
        for index, example in enumerate(examples):
            fine = int(example[label])
            if coarse_label:
                pairs.setdefault(fine, set()).add(int(example[coarse_label]))
            ours = targets[0] if held_out is None or not held_out[index] else targets[1]
            rel = f"{folders[fine]}/{split}_{index:06d}.jpg"
            _write_image(example[image_key], out / rel, size)
            rows[ours].append((rel, fine))
    coarse = _coarse_groups(pairs, fine_names, coarse_names) if coarse_label else {}
    for split, split_rows in rows.items():
        text = pd.DataFrame(split_rows).to_csv(header=False, index=False, lineterminator="\n")
        atomic_write_text(out / f"{split}.csv", text)
    layer = {"data": {"root": str(out), "class_names": list(fine_names)}}
    if coarse:
        layer["data"]["coarse"] = coarse
    config_path = out / LAYER_FILE
    atomic_write_text(config_path, f"# Written by tf-twohead data tfds {name}: layer it over "
                      f"an experiment's config with a second --config.\n"
                      + OmegaConf.to_yaml(OmegaConf.create(layer)))
    return {"counts": {k: len(v) for k, v in rows.items()}, "config": str(config_path),
            "class_names": list(fine_names), "coarse": coarse}


def _image_feature(name: str, features) -> str:
    import tensorflow_datasets as tfds

    keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not keys:
        raise DataError(f"{name} has no image feature (features: {sorted(features)}).")
    return "image" if "image" in keys else keys[0]


def _class_names(name: str, features, key: str, option: str) -> list[str]:
    import tensorflow_datasets as tfds

    labels = sorted(k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel))
    if key not in features or not isinstance(features[key], tfds.features.ClassLabel):
        raise DataError(f"{option} {key}: {name} has no class-label feature {key!r}; its "
                        f"class labels are {labels}.")
    return list(features[key].names)


def _folders(names: list[str]) -> list[str]:
    """A folder per class: its name made path-safe, with the id when names collide."""
    safe = [n.replace("/", "_").replace("\\", "_").strip() or f"class_{i}"
            for i, n in enumerate(names)]
    return [s if safe.count(s) == 1 else f"{i}_{s}" for i, s in enumerate(safe)]


def _held_out(n: int, fraction: float, rng) -> np.ndarray:
    """A boolean mask choosing `round(fraction * n)` examples (at least one) for val."""
    mask = np.zeros(n, dtype=bool)
    if n:
        mask[rng.permutation(n)[:max(1, round(fraction * n))]] = True
    return mask


def _write_image(array: np.ndarray, path: Path, size: int | None) -> None:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    image = Image.fromarray(array)
    if size:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    if image.mode not in ("L", "RGB"):  # JPEG holds grayscale or RGB
        image = image.convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)


def _coarse_groups(pairs: dict[int, set], fine_names: list[str],
                   coarse_names: list[str]) -> dict[str, list[int]]:
    """`data.coarse` from the (fine, coarse) pairs seen: each fine class in one group."""
    mixed = {f: sorted(c) for f, c in pairs.items() if len(c) > 1}
    if mixed:
        shown = "; ".join(f"class {f} ({fine_names[f]!r}) with "
                          + " and ".join(f"{c} ({coarse_names[c]!r})" for c in cs)
                          for f, cs in list(mixed.items())[:10])
        raise DataError(f"The coarse label does not group the classes: {shown}. Every fine "
                        "class must come with one coarse class only.")
    unseen = [i for i in range(len(fine_names)) if i not in pairs]
    if unseen:
        raise DataError(f"Classes {unseen[:20]}{' ...' if len(unseen) > 20 else ''} never "
                        "appear, so their coarse group is unknown; raise --limit (or drop "
                        "--coarse-label).")
    groups: dict[str, list[int]] = {}
    for fine in sorted(pairs):
        groups.setdefault(coarse_names[next(iter(pairs[fine]))], []).append(fine)
    return groups
