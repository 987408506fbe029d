"""Near-duplicate candidates: perceptual hashes (`imagehash.phash`) and an index that
finds every pair within a Hamming distance without comparing all pairs.

The index is multi-index hashing: each 64-bit hash is cut into four 16-bit chunks. Two
hashes at most `t` bits apart differ in at most `t // 4` bits in one of the chunks
(pigeonhole), so for every chunk it looks up, in a table of that chunk's 65,536 values,
the values within `t // 4` bits of each query's chunk (1 + 16 + 120 flips for t = 8),
vectorised over all queries at once. Candidates are then checked on the whole hash. The
recall for distances up to `t` is exact; the work grows with the pairs that share a
chunk, not with the square of the images.

A crop or rotation moves a small image's pHash by more than resampling or JPEG does,
so each image is also queried with the hashes of eight edited versions of itself
(zoomed by 7% either way, rotated by 3 degrees either way: `VARIANTS`), computed with
the same DCT as imagehash's pHash on the check's 64 px grayscale image.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

PER_IMAGE = 10  # pairs checked per image, its closest: on the Fashion-MNIST demo data,
#                 where look-alikes crowd, a copy's original is among them 98.5% of the time
DEFAULT_THRESHOLD = 8  # bits of 64: resized or recompressed copies of a photo are 0-8 bits
#                         apart, unrelated photos ~32; crops and rotations: VARIANTS
CHUNKS = 4
CHUNK_BITS = 16
VARIANTS = ((1 / 1.07, -3.0), (1 / 1.07, 0.0), (1 / 1.07, 3.0), (1.0, -3.0), (1.0, 3.0),
            (1.07, -3.0), (1.07, 0.0), (1.07, 3.0))


def phash_array(images: np.ndarray) -> np.ndarray:
    """pHash of each uint8 image, `(N, S, S, 3)` or grayscale `(N, S, S)`, as uint64 `(N,)`
    (imagehash's 8x8 pHash)."""
    import imagehash
    from PIL import Image

    bits = np.zeros((len(images), 64), bool)
    for i, image in enumerate(images):
        bits[i] = imagehash.phash(Image.fromarray(np.asarray(image))).hash.reshape(-1)
    return _packed(bits)


def variant_hashes(gray: np.ndarray) -> np.ndarray:
    """pHash of each `VARIANTS` edit of each grayscale image `(N, S, S)`: uint64 `(N, 8)`.

    As imagehash's pHash, on the edit averaged down to 32 x 32: DCT-II over both axes,
    the 8 x 8 lowest frequencies against their median. Edit, averaging and those 64
    coefficients are all linear in the pixels, so they are one matrix: one GEMM hashes
    a batch."""
    n, size = len(gray), gray.shape[1]
    project = _variant_projection(size)  # (V * 64, S * S)
    out = np.zeros((n, len(VARIANTS)), np.uint64)
    for lo in range(0, n, 4096):
        flat = np.asarray(gray[lo:lo + 4096], np.float32).reshape(-1, size * size)
        low = (flat @ project.T).reshape(-1, 64)  # (B * V, 64)
        bits = low > np.median(low, axis=1, keepdims=True)
        out[lo:lo + 4096] = _packed(bits).reshape(-1, len(VARIANTS))
    return out


@functools.lru_cache(maxsize=2)
def _variant_projection(size: int) -> np.ndarray:
    """Pixels of a `size x size` image -> the 8 x 8 low DCT coefficients of each of its
    `VARIANTS` edits at 32 x 32, float32 `(V * 64, size * size)`."""
    from scipy.sparse import csr_matrix

    from tf_twohead.auditing.warps import warp_matrix

    if size % 32:
        raise ValueError(f"variant hashes need a side that is a multiple of 32. Received: {size}")
    k = size // 32
    y, x = np.divmod(np.arange(size * size), size)
    pool = csr_matrix((np.full(size * size, 1 / (k * k), np.float32),
                       ((y // k) * 32 + x // k, np.arange(size * size))), (1024, size * size))
    k_, i_ = np.arange(8)[:, None], np.arange(32)[None, :]
    dct = 2 * np.cos(np.pi * k_ * (2 * i_ + 1) / 64)  # scipy's unnormalised DCT-II rows
    low = np.kron(dct, dct).astype(np.float32)  # (64, 1024): row 8k + l is coefficient (k, l)
    warp = warp_matrix(size, VARIANTS, size, 0.0)
    m = size * size
    return np.concatenate([(pool @ warp[v * m:(v + 1) * m]).T.dot(low.T).T
                           for v in range(len(VARIANTS))]).astype(np.float32)


def _packed(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between uint64 arrays, elementwise."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def near_pairs(hashes: np.ndarray, threshold: int = DEFAULT_THRESHOLD,
               variants: np.ndarray | None = None) -> np.ndarray:
    """All pairs `(i, j)`, `i < j`, whose hashes are at most `threshold` bits apart (or,
    with `variants` `(N, V)`, one of image i's or j's variant hashes is that close to the
    other's hash).

    Returns:
        int64 array `(P, 3)`: i, j and their closest distance (over the variants), sorted
        by i, j.
    """
    hashes = np.asarray(hashes, np.uint64)
    if not 0 <= threshold < 32:
        raise ValueError(f"threshold must be in 0..31 bits. Received: {threshold}")
    owners = np.arange(len(hashes))
    queries = hashes
    if variants is not None and len(hashes):
        variants = np.asarray(variants, np.uint64)
        queries = np.concatenate([hashes, variants.reshape(-1)])
        owners = np.concatenate([owners, np.repeat(owners, variants.shape[1])])
    keys, bits = _lookup(queries, owners, hashes, threshold)
    if not len(keys):
        return np.zeros((0, 3), np.int64)
    order = np.lexsort((bits, keys))  # by pair, closest first
    keys, bits = keys[order], bits[order]
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    n = np.int64(len(hashes))
    return np.column_stack([keys[first] // n, keys[first] % n, bits[first]])


def closest_only(pairs: np.ndarray, per_image: int, tiebreak=None) -> np.ndarray:
    """A mask of `pairs` `(P, 3)` keeping, for every image, its `per_image` closest
    pairs (a pair stays if it is among either image's closest). Pairs at the same
    distance are ordered by `tiebreak` `(P,)`, highest first (pHash distances come in
    steps of 2 bits, and on uniform data many candidates tie)."""
    index = np.tile(np.arange(len(pairs)), 2)
    owner = np.concatenate([pairs[:, 0], pairs[:, 1]])  # each pair once under each image
    second = np.zeros(len(pairs)) if tiebreak is None else -np.asarray(tiebreak, np.float64)
    order = np.lexsort((np.tile(second, 2), np.tile(pairs[:, 2], 2), owner))
    ranked = owner[order]
    rank = np.arange(len(ranked)) - np.searchsorted(ranked, ranked, "left")
    keep = np.zeros(len(pairs), bool)
    keep[index[order[rank < per_image]]] = True
    return keep


def _lookup(queries: np.ndarray, owners: np.ndarray, hashes: np.ndarray,
            threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Every query within `threshold` bits of `hashes[j]`, `owner != j`: the pair as one
    key `min * N + max` and the bits apart (a pair can be found more than once)."""
    flips = threshold // CHUNKS
    masks = np.array([sum(1 << b for b in bits) for r in range(flips + 1)
                      for bits in itertools.combinations(range(CHUNK_BITS), r)], np.int64)
    n = np.int64(len(hashes))
    keys, distances = [], []
    for c in range(CHUNKS):
        shift = np.uint64(c * CHUNK_BITS)
        chunk = ((hashes >> shift) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(chunk, kind="stable")
        counts = np.bincount(chunk, minlength=1 << CHUNK_BITS)
        starts = np.cumsum(counts) - counts
        query = ((queries >> shift) & np.uint64(0xFFFF)).astype(np.int64)
        for mask in masks:
            value = query ^ mask
            hits = counts[value]
            if not hits.any():
                continue
            left = np.repeat(np.arange(len(queries)), hits)
            first = np.repeat(starts[value] - np.cumsum(hits) + hits, hits)
            right = order[first + np.arange(len(left))]
            bits = hamming(queries[left], hashes[right])
            close = (bits <= threshold) & (owners[left] != right)
            i, j = owners[left[close]], right[close]
            keys.append(np.minimum(i, j) * n + np.maximum(i, j))
            distances.append(bits[close])
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(keys), np.concatenate(distances)


def groups(count: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of `count` items linked by `pairs` `(M, 2)`: a group id each."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (count, count))
    return connected_components(graph, directed=False)[1]
