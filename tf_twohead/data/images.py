"""The one image decoder: any file Pillow reads -> upright RGB uint8 of a given size.

It mirrors the reference's PIL pipeline: EXIF orientation applied, every mode
(grayscale, 16-bit, RGBA, CMYK, palette) converted to RGB, then a bilinear resize to a
square. TensorFlow's decoders ignore EXIF orientation, so training, evaluation,
latency and prediction all go through this function.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

RESAMPLE = Image.Resampling.BILINEAR


def load_rgb(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Decode an image file into an upright RGB uint8 array.

    Args:
        path: str. Image file (JPEG, PNG, GIF, BMP, TIFF, WebP, ...).
        size: int or None. Resize to `size x size`; None keeps the original size.

    Returns:
        A `(H, W, 3)` uint8 array.

    Raises:
        OSError: the file is missing, truncated or not an image.
    """
    with Image.open(path) as img:
        if size is not None and img.format == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target is that much
            # smaller: big phone photos decode several times faster.
            img.draft("RGB", (size, size))
        img.load()  # raises on truncated data instead of returning a grey tail
        img = ImageOps.exif_transpose(img)
        img = to_rgb(img)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), RESAMPLE)
        return np.asarray(img, dtype=np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparent pixels become white, not black."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grayscale: scale the real range to 8 bits instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.round().astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
