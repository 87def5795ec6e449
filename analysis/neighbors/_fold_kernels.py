"""Folding a score tile into running top-k lists on the host, in one pass over the tile (numba).

The exact self-join (:func:`embgeo.analysis.neighbors.exact_knn`) computes each tile S = B_i B_j^T once
and uses its rows as candidates for block i and its columns for block j. What follows the matrix
product decides how close the search gets to the BLAS floor. Array libraries need a pass to
compare, a pass to select and a strided pass for the columns (a dense column top-k cost more than
the product itself). Here each list keeps its current k-th best score as a threshold, as faiss's
heaps do: a cell is read once, compared once, and only the rare cell that beats the threshold
touches the list (replace the minimum, find the new one). Scores only tighten the thresholds, so
after a few blocks almost nothing gets past.

Lists are unsorted arrays of k (score, id) pairs whose minimum is ``kth``; empty slots hold -inf.
Ties at the threshold are not admitted (strict ``>``), which only matters for exactly equal scores.
"""

from __future__ import annotations

import numba
import numpy as np

#: Fewest columns one worker owns in the column fold. Walking a column chunk down the rows touches a
#: new page per row (rows are 16 KB apart at 4,096 columns), so chunks are made as wide as the
#: workers allow: 64 columns ran the fold at 42 ms a 4,096^2 tile, one chunk per worker at 30.
MIN_COLUMN_CHUNK = 64


@numba.njit(inline="always", cache=True)
def _admit(scores, ids, t, value, cand, kth):
    """Put (value, cand) in place of list t's minimum and return the list's new minimum."""
    k = scores.shape[1]
    pos = 0
    low = scores[t, 0]
    for q in range(1, k):
        if scores[t, q] < low:
            low = scores[t, q]
            pos = q
    scores[t, pos] = value
    ids[t, pos] = cand
    low = scores[t, 0]
    for q in range(1, k):
        if scores[t, q] < low:
            low = scores[t, q]
    kth[t] = low
    return low


@numba.njit(parallel=True, cache=True)
def fold_rows(tile, scores, ids, kth, target0, cand0):
    """Row r of ``tile`` offers candidates ``cand0 + j`` to list ``target0 + r``."""
    n_rows, n_cols = tile.shape
    for r in numba.prange(n_rows):
        t = target0 + r
        threshold = kth[t]
        for j in range(n_cols):
            v = tile[r, j]
            if v > threshold:
                threshold = _admit(scores, ids, t, v, cand0 + j, kth)


@numba.njit(parallel=True, cache=True)
def fold_columns(tile, scores, ids, kth, target0, cand0, chunk_cols):
    """Column c of ``tile`` offers candidates ``cand0 + i`` to list ``target0 + c``.

    Each worker owns a chunk of ``chunk_cols`` columns (so no two write one list) and walks the
    rows in order, reading each row's slice of its chunk contiguously.
    """
    n_rows, n_cols = tile.shape
    n_chunks = (n_cols + chunk_cols - 1) // chunk_cols
    for chunk in numba.prange(n_chunks):
        c0 = chunk * chunk_cols
        c1 = min(n_cols, c0 + chunk_cols)
        # a private copy of the chunk's thresholds: kth is written by _admit, and reading it in the
        # inner loop made the fold 30 ms a 4,096^2 tile on 2 cores, 26 with the copy (rows: 8 ms)
        threshold = kth[target0 + c0:target0 + c1].copy()
        for i in range(n_rows):
            for c in range(c0, c1):
                v = tile[i, c]
                if v > threshold[c - c0]:
                    threshold[c - c0] = _admit(scores, ids, target0 + c, v, cand0 + i, kth)


def fold_tile(tile: np.ndarray, scores: np.ndarray, ids: np.ndarray, kth: np.ndarray, axis: int,
              target0: int, cand0: int) -> None:
    """Fold ``tile`` (float32, C-contiguous) into the lists: by rows (``axis=1``) or by columns (0)."""
    if axis == 1:
        fold_rows(tile, scores, ids, kth, target0, cand0)
    else:
        workers = numba.get_num_threads()
        chunk = max(MIN_COLUMN_CHUNK, -(-tile.shape[1] // workers))
        fold_columns(tile, scores, ids, kth, target0, cand0, chunk)


@numba.njit(parallel=True, cache=True)
def tile_product(a, b, out, workers):
    """``out = a @ b.T``, each worker multiplying its share of the rows with a single-threaded sgemm.

    Called under a one-thread BLAS limit, this keeps every thread of a tiled search in numba's pool:
    an OpenBLAS pool spins for a while after each product, and the numba folds that run next then
    compete with it for the same cores (measured on 2 cores: a 4,096 x 316 tile and its fold took
    9.2 ms alternating with NumPy's sgemm against 5.1 ms for the two apart).
    """
    rows = a.shape[0]
    step = -(-rows // workers)
    for w in numba.prange(workers):
        r0 = w * step
        r1 = min(rows, r0 + step)
        if r1 > r0:
            np.dot(a[r0:r1], b.T, out[r0:r1])


@numba.njit(parallel=True, cache=True)
def fold_cosine_and_dot(tile, q_norm, c_norm, cos_s, cos_i, cos_kth, dot_s, dot_i, dot_kth, dist_sum, target0, cand0):
    """One read of a tile of unit-vector scores serves three tables of queries ``target0 + r``.

    Cell (r, j) holds cos(q_r, c_j); it is offered to the cosine list, offered as the inner
    product ``cos * |q_r| * |c_j|`` to the dot list, and its chord distance ``sqrt(2 - 2 cos)`` is
    added to the row's sum (for the mean distance; -inf cells, the query itself, add 0).
    """
    n_rows, n_cols = tile.shape
    for r in numba.prange(n_rows):
        t = target0 + r
        cos_threshold = cos_kth[t]
        dot_threshold = dot_kth[t]
        acc = 0.0
        for j in range(n_cols):
            v = tile[r, j]
            if v == -np.inf:
                continue
            acc += np.sqrt(max(0.0, 2.0 - 2.0 * min(np.float64(v), 1.0)))
            if v > cos_threshold:
                cos_threshold = _admit(cos_s, cos_i, t, v, cand0 + j, cos_kth)
            d = v * q_norm[r] * c_norm[j]
            if d > dot_threshold:
                dot_threshold = _admit(dot_s, dot_i, t, d, cand0 + j, dot_kth)
        dist_sum[t] += acc


def warm_up() -> None:
    """Compile (or load from numba's cache) both kernels on a tiny tile, ahead of a first real search."""
    tile = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    for axis in (1, 0):
        scores = np.full((8, 2), -np.inf, dtype=np.float32)
        fold_tile(tile, scores, np.full((8, 2), -1, dtype=np.int64), np.full(8, -np.inf, dtype=np.float32),
                  axis, 0, 0)
