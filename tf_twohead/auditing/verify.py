"""The pixel check of a candidate pair: is one image an edited copy of the other?

pHash finds candidates, but on uniform data (centred garments, blank forms) different
pictures of one kind lie within a few bits of each other, while a crop or rotation of a
copy can move its hash by 10 bits. The check aligns the pair and compares detail:

1. on every other pixel of the 64 px grayscale images, it searches the zoom and
   rotation (`warps.GRID`) of the second image that best correlates with the first
   (Pearson correlation of the grey levels, blind to brightness and contrast);
2. at 64 px, around that alignment (a 3 x 3 grid at a third of the search's steps), it
   correlates the two images' *detail*: a band-pass of each (the difference of Gaussian
   blurs of 0.7 and 2.5 px, which leaves out the finest pixels, where JPEG and
   resampling noise live). A copy keeps its stitching, text and texture, so its detail
   still correlates after a crop, a rotation and JPEG at quality 60; a look-alike
   shares the outline, not the detail.

`similarity` is that detail correlation, in [-1, 1] (an image too flat to have detail
is judged on step 1). Measured on Fashion-MNIST (`bench/audit_demo.py`'s planted copies:
1-3 px crops, rotations up to 5 degrees, JPEG 60-90, all at 64 px): copies score 0.99
and up; of the 4,000 closest look-alikes by pHash, 99.9% score under 0.95 (the highest,
0.972: plain trousers whose only detail is their outline). On fine-textured pictures
(`tests/test_audit.py`), copies cropped by 2 px, rotated by 4 degrees and saved at JPEG
70 score 0.976 and up, but 0.958 at 3 px and 5 degrees: JPEG applied *at the audit's
64 px* is the hard case (a copy recompressed at full size and then reduced keeps more).
`DEFAULT_SIMILARITY` is 0.97; lower it (`--min-similarity`) for heavily recompressed
small images, at the price of more look-alikes.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from tf_twohead.auditing.warps import GRID, IDENTITY, warp_batch

SIZE = 64  # the check's image side; the alignment is searched at half of it
MARGIN = 0.1  # the frame's outer 10% is left out (what a crop or rotation changes)
BAND = (0.7, 2.5)  # px at SIZE: "detail" is the difference of these two Gaussian blurs
DEFAULT_SIMILARITY = 0.97
BATCH = 1024
FLAT = 1.0  # grey levels: a detail this faint is noise; such pairs are judged on step 1


def gray(images: np.ndarray) -> np.ndarray:
    """uint8 `(N, S, S, 3)` (or `(N, S, S)`) -> uint8 grayscale `(N, 64, 64)`."""
    from PIL import Image

    images = np.asarray(images)
    out = np.empty((len(images), SIZE, SIZE), np.uint8)
    for i, image in enumerate(images):
        img = Image.fromarray(image).convert("L")
        if img.size != (SIZE, SIZE):
            img = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        out[i] = np.asarray(img)
    return out


def similarity(images: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The detail correlation of each pair `(i, j)` of `images` (uint8 `(N, 64, 64)`)."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    out = np.zeros(len(pairs), np.float32)

    def run(lo: int) -> None:  # NumPy and SciPy release the GIL: one batch per core
        batch = pairs[lo:lo + BATCH]
        a, b = (np.ascontiguousarray(images[side].reshape(len(batch), -1).T, np.float32)
                for side in (batch[:, 0], batch[:, 1]))
        out[lo:lo + BATCH] = _pair_scores(a, b)

    with ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 8))) as pool:
        list(pool.map(run, range(0, len(pairs), BATCH)))
    return out


def thumbnail_correlation(images: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The Pearson correlation of each pair's 8 x 8 thumbnails: a cheap first look,
    used to order candidates that tie on pHash."""
    thumbs = images.reshape(len(images), 8, SIZE // 8, 8, SIZE // 8).mean(axis=(2, 4))
    thumbs = thumbs.reshape(len(images), 64).astype(np.float32)
    thumbs -= thumbs.mean(axis=1, keepdims=True)
    thumbs /= np.maximum(np.linalg.norm(thumbs, axis=1, keepdims=True), 1e-6)
    out = np.zeros(len(pairs), np.float32)
    for lo in range(0, len(pairs), 1 << 20):
        i, j = pairs[lo:lo + (1 << 20), 0], pairs[lo:lo + (1 << 20), 1]
        out[lo:lo + len(i)] = np.einsum("pd,pd->p", thumbs[i], thumbs[j])
    return out


def _pair_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a, b: float32 `(S * S, P)`, the pairs' images as columns."""
    side = int(SIZE // 2 * (1 - 2 * MARGIN))  # the search samples every other pixel
    centre = warp_batch(a, SIZE, IDENTITY, side, MARGIN)[0]
    r = _correlation(warp_batch(b, SIZE, GRID, side, MARGIN), centre)  # (G, P)
    scores, transform = r.max(axis=0), r.argmax(axis=0)
    a, b = _detail(a), _detail(b)  # blur and warp commute (up to the zoom's 10%)
    side = int(SIZE * (1 - 2 * MARGIN))
    for t in np.unique(transform):
        k = np.nonzero(transform == t)[0]
        x = warp_batch(a[:, k], SIZE, IDENTITY, side, MARGIN)[0]
        y = warp_batch(b[:, k], SIZE, _refined(GRID[t]), side, MARGIN)
        textured = (x.std(axis=0) > FLAT) & (y.std(axis=1).max(axis=0) > FLAT)
        scores[k] = np.where(textured, _correlation(y, x).max(axis=0), scores[k])
    return scores


def _refined(transform: tuple) -> tuple:
    """The search's best transform and its neighbours at a third of its steps."""
    scale, angle = transform
    return tuple((scale * f, angle + d) for f in (1 / 1.011, 1.0, 1.011) for d in (-1.0, 0.0, 1.0))


def _detail(pixels: np.ndarray) -> np.ndarray:
    """The band of detail of images as columns `(S * S, P)`, same layout: the difference
    of two Gaussian blurs (`BAND`), each as two matrix products."""
    images = pixels.reshape(SIZE, SIZE, -1)
    fine, coarse = (np.matmul(blur, (blur @ images.reshape(SIZE, -1)).reshape(images.shape))
                    for blur in (_blur_matrix(s) for s in BAND))
    return (fine - coarse).reshape(pixels.shape)


@functools.lru_cache(maxsize=4)
def _blur_matrix(sigma: float) -> np.ndarray:
    """`SIZE x SIZE`: a Gaussian blur along one axis as a matrix (scipy's, edges mirrored)."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.eye(SIZE, dtype=np.float64), sigma, axis=0).astype(np.float32)


def _correlation(warped: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson correlation of each `warped[g, :, p]` `(G, M, P)` with `target[:, p]`
    `(M, P)`: `(G, P)`."""
    m = target.shape[0]
    t = target - target.mean(axis=0, keepdims=True)
    t /= np.maximum(np.linalg.norm(t, axis=0, keepdims=True), 1e-6)
    dot = np.einsum("gmp,mp->gp", warped, t)  # t sums to 0: warped's mean drops out
    total = warped.sum(axis=1)
    spread = np.einsum("gmp,gmp->gp", warped, warped) - total * total / m
    return dot / np.sqrt(np.maximum(spread, 1e-6))
