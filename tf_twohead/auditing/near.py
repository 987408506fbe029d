"""Near-duplicate images: perceptual hashes (`imagehash.phash`) and an index that finds
every pair within a Hamming distance without comparing all pairs.

The index is multi-index hashing: each 64-bit hash is cut into four 16-bit chunks. Two
hashes at most `t` bits apart differ in at most `t // 4` bits in one of the chunks
(pigeonhole), so for every chunk it looks up, in a sorted array of that chunk's values,
the values within `t // 4` bits of each image's chunk (1 + 16 + 120 flips for t = 8),
vectorised over all images at once. Candidates are then checked on the whole hash. The
recall for distances up to `t` is exact; the work grows with the pairs that share a
chunk, not with the square of the images.
"""

from __future__ import annotations

import itertools

import numpy as np

DEFAULT_THRESHOLD = 8  # bits of 64: pHash distances of resized, recompressed, slightly
#                         cropped or rotated copies are 0-8; of unrelated photos ~32
CHUNKS = 4
CHUNK_BITS = 16


def phash_array(images: np.ndarray) -> np.ndarray:
    """pHash of each uint8 image `(N, S, S, 3)`, as uint64 `(N,)` (imagehash's 8x8 pHash)."""
    import imagehash
    from PIL import Image

    bits = np.zeros((len(images), 64), bool)
    for i, image in enumerate(images):
        bits[i] = imagehash.phash(Image.fromarray(np.asarray(image))).hash.reshape(-1)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between uint64 arrays, elementwise."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def near_pairs(hashes: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> np.ndarray:
    """All pairs `(i, j)`, `i < j`, whose hashes are at most `threshold` bits apart.

    Returns:
        int64 array `(P, 3)`: i, j and their distance, sorted.
    """
    hashes = np.asarray(hashes, np.uint64)
    if not 0 <= threshold < 32:
        raise ValueError(f"threshold must be in 0..31 bits. Received: {threshold}")
    flips_per_chunk = threshold // CHUNKS
    masks = np.array([sum(1 << b for b in bits) for r in range(flips_per_chunk + 1)
                      for bits in itertools.combinations(range(CHUNK_BITS), r)], np.uint64)
    found = []
    for c in range(CHUNKS):
        chunk = (hashes >> np.uint64(c * CHUNK_BITS)) & np.uint64(0xFFFF)
        order = np.argsort(chunk, kind="stable")
        ranked = chunk[order]
        for mask in masks:
            query = chunk ^ mask
            lo = np.searchsorted(ranked, query, "left")
            hi = np.searchsorted(ranked, query, "right")
            counts = hi - lo
            if not counts.any():
                continue
            left = np.repeat(np.arange(len(hashes)), counts)
            starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
            right = order[starts + np.arange(len(left))]
            keep = left < right
            found.append(np.stack([left[keep], right[keep]], 1))
    if not found:
        return np.zeros((0, 3), np.int64)
    pairs = np.unique(np.concatenate(found), axis=0)
    distance = hamming(hashes[pairs[:, 0]], hashes[pairs[:, 1]])
    pairs, distance = pairs[distance <= threshold], distance[distance <= threshold]
    return np.column_stack([pairs, distance]).astype(np.int64)


def groups(count: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of `count` items linked by `pairs` `(M, 2)`: a group id each."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (count, count))
    return connected_components(graph, directed=False)[1]
