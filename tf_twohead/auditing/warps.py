"""The small geometric edits a copy of a picture goes through (a crop of up to ~10%, a
rotation of up to ~6 degrees), as sparse resampling matrices over grayscale images.

One matrix row per output pixel, four bilinear weights each: `warp @ image.ravel()` is
the image zoomed by `scale` and rotated by `angle` about its centre, sampled on an
`out x out` grid (the centre `1 - 2 * margin` of the frame, so that pixels the edit
pushed in from outside are left out). Stacking the grid's transforms makes every warp
of a batch of images one sparse product.
"""

from __future__ import annotations

import functools

import numpy as np

SCALES = (1 / 1.1, 1 / 1.066, 1 / 1.033, 1.0, 1.033, 1.066, 1.1)
ANGLES = (-6.0, -3.0, 0.0, 3.0, 6.0)  # degrees
GRID = tuple((s, a) for s in SCALES for a in ANGLES)  # what the pixel check searches
IDENTITY = ((1.0, 0.0),)


def warp_matrix(size: int, transforms, out: int, margin: float):
    """A CSR matrix `(len(transforms) * out * out, size * size)`, float32: each transform
    `(scale, angle)` of a `size x size` image, sampled at `out x out` points spread over
    the frame without its outer `margin` (a fraction of the side)."""
    from scipy.sparse import csr_matrix

    centre = (size - 1) / 2
    coords = np.linspace(margin * size, (1 - margin) * size - 1, out)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    rows, cols, weights = [], [], []
    for t, (scale, angle) in enumerate(transforms):
        cos, sin = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
        xs = centre + ((x - centre) * cos - (y - centre) * sin) / scale
        ys = centre + ((x - centre) * sin + (y - centre) * cos) / scale
        xs = np.clip(xs, 0, size - 1.001).ravel()
        ys = np.clip(ys, 0, size - 1.001).ravel()
        x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
        fx, fy = xs - x0, ys - y0
        row = t * out * out + np.arange(out * out)
        for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                          (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            rows.append(row)
            cols.append((y0 + dy) * size + x0 + dx)
            weights.append(w)
    shape = (len(transforms) * out * out, size * size)
    return csr_matrix((np.concatenate(weights).astype(np.float32),
                       (np.concatenate(rows), np.concatenate(cols))), shape)


@functools.lru_cache(maxsize=64)
def cached_warp(size: int, transforms: tuple, out: int, margin: float):
    return warp_matrix(size, transforms, out, margin)


def warp_batch(pixels: np.ndarray, size: int, transforms: tuple, out: int,
               margin: float) -> np.ndarray:
    """Images as columns, float32 `(size * size, N)` -> `(len(transforms), out * out, N)`
    (the sparse product's own layout: nothing is transposed)."""
    warp = cached_warp(size, tuple(transforms), out, margin)
    return (warp @ pixels).reshape(len(transforms), out * out, pixels.shape[1])
