"""A split of the dataset a model was trained on, as `evaluate`, `convert`'s parity check
and a search trial read it: validated and cached at the model's input size, with the
run's bad-image policy, decode cache and pixel budget."""

from __future__ import annotations

from tf_twohead.core.defaults import MAX_IMAGE_PIXELS, MAX_SPLIT_ROWS
from tf_twohead.data.cache import load_split
from tf_twohead.inference.predictor import Predictor


def load_model_split(predictor: Predictor, split: str, data_root=None, progress=True):
    """A split of the dataset a model was trained on (or `data_root`), validated and
    cached at the model's input size, with the run's `on_bad_image` policy."""
    cfg = predictor.config
    root = data_root or (cfg.data.root if cfg else None)
    if root is None:
        raise ValueError(f"{predictor.path} has no config.yaml beside it: pass --data ROOT "
                         f"(a dataset folder with {split}.csv).")
    return load_split(root, split, predictor.img_size, len(predictor.class_names),
                      cfg.data.on_bad_image if cfg else "error",
                      cfg.cache_dir if cfg else None, progress=progress,
                      max_pixels=cfg.data.max_image_pixels if cfg else MAX_IMAGE_PIXELS,
                      max_rows=cfg.data.max_rows if cfg else MAX_SPLIT_ROWS)
