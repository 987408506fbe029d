"""The one image decoder: any file Pillow reads -> upright RGB uint8 of a given size.

It mirrors the reference's PIL pipeline: EXIF orientation applied, every mode
(grayscale, 16-bit, RGBA, CMYK, palette) converted to RGB, then a bilinear resize to a
square. TensorFlow's decoders ignore EXIF orientation, so training, evaluation,
latency and prediction all go through this function.

Memory is bounded before any pixel is decoded: an image whose header declares more
than `max_pixels` pixels is refused (`ImageRefused`), JPEGs decode at a reduced scale
when the target size allows (libjpeg's DCT scaling, `draft_scale`), and 16/32-bit
images are scaled to 8 bits in row blocks, never as a float64 copy of the whole image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from tf_twohead.core.api import public
from tf_twohead.core.defaults import MAX_IMAGE_PIXELS

RESAMPLE = Image.Resampling.BILINEAR
ROW_BLOCK = 256  # rows converted at a time from 16/32-bit to 8-bit
HIGH_BIT = ("I;16", "I;16B", "I;16L", "I", "F")
SHRINK_FIRST = ("L", "LA", "RGBA")  # modes resized before the conversion to RGB


class ImageRefused(OSError):
    """An image refused before decoding: its header declares more pixels than allowed."""


@public
def load_rgb(path, size: int | None = None,
             max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image file into an upright RGB uint8 array.

    Args:
        path: str or a binary file object. Image file (JPEG, PNG, GIF, BMP, TIFF,
            WebP, ...).
        size: int or None. Resize to `size x size`; None keeps the original size.
        max_pixels: int. Refuse images with more pixels than this, before decoding.
            Defaults to 40 MP.

    Returns:
        A `(H, W, 3)` uint8 array.

    Raises:
        OSError: the file is missing, truncated or not an image; `ImageRefused` when
            it is over `max_pixels`.
    """
    try:
        opened = Image.open(path)
    except Image.DecompressionBombError as e:  # Pillow's own limit, past ours: same refusal
        raise ImageRefused(f"{e}; over the {max_pixels / 1e6:g} MP budget "
                           "(data.max_image_pixels)") from None
    with opened as img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageRefused(f"{width}x{height} is {width * height / 1e6:.1f} MP, over the "
                               f"{max_pixels / 1e6:g} MP budget (data.max_image_pixels)")
        if size is not None and img.format == "JPEG":
            scale = draft_scale(width, height, size)
            if scale > 1:
                img.draft("RGB", (width // scale, height // scale))
        img.load()  # raises on truncated data instead of returning a grey tail
        ImageOps.exif_transpose(img, in_place=True)  # no copy when upright
        if img.mode in HIGH_BIT:  # to 8 bits at full size (its real range), then shrink
            img = Image.fromarray(_to_8_bits(img), "L")
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        if img.mode in SHRINK_FIRST and size is not None and img.size != (size, size):
            # Grayscale: the same pixels, a third of the work. With alpha: Pillow resizes
            # premultiplied, so compositing on white after is the same picture, without
            # three full-size copies (a 40 MP RGBA PNG cost +764 MB, now +320 MB).
            img = img.resize((size, size), RESAMPLE)
        img = to_rgb(img)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), RESAMPLE)
        return np.asarray(img, dtype=np.uint8)


def draft_scale(width: int, height: int, size: int) -> int:
    """The JPEG decode reduction (libjpeg's 1/2, 1/4 or 1/8 DCT scaling) for a
    `size x size` target: the largest whose image still has at least as many pixels as
    the target and no side under 3/4 of it, else 1.

    The final resize to a square distorts the aspect anyway, so pixels are the measure:
    a 640x480 photo for 256 px decodes at 320x240 (76,800 pixels >= 65,536): decode and
    resize together 1.35 instead of 2.7 ms; a 4032x3024 photo decodes at 1/8.
    """
    for scale in (8, 4, 2):
        w, h = width // scale, height // scale
        if w * h >= size * size and 4 * min(w, h) >= 3 * size:
            return scale
    return 1


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparent pixels become white, not black."""
    if img.mode == "RGB":
        return img
    if img.mode in HIGH_BIT:
        return Image.fromarray(_to_8_bits(img), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _to_8_bits(img: Image.Image) -> np.ndarray:
    """16/32-bit grayscale scaled from its real range to 8 bits (not clipped), one block
    of rows at a time: the temporaries stay a few MB whatever the image's size."""
    lo, hi = (float(v) for v in img.getextrema())
    width, height = img.size
    out = np.zeros((height, width), np.uint8)
    if hi > lo:
        scale = np.float32(255.0 / (hi - lo))
        for top in range(0, height, ROW_BLOCK):
            rows = img.crop((0, top, width, min(height, top + ROW_BLOCK)))
            block = np.asarray(rows).astype(np.float32)
            block -= np.float32(lo)
            block *= scale
            out[top:top + ROW_BLOCK] = np.clip(np.rint(block), 0, 255)
    return out
