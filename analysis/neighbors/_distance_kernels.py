"""Distances of listed (query, neighbour) pairs from the vector difference, without cancellation (numba)."""

from __future__ import annotations

import numba
import numpy as np


# Reassociation lets the sums vectorise; no fused multiply-adds ("contract"), which would round one
# side of ``c / |c| - q / |q|`` and not the other, so identical rows would not come out at 0.
@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "nsz", "arcp"})
def pair_distances(corpus, queries, ids, c_norms, q_norms, mode, visit):
    """Distance of each query row to each of its listed corpus rows, from the vector difference.

    ``mode`` 0: chord between the unit vectors (cosine; rows are divided by ``c_norms`` and
    ``q_norms``), 1: euclidean, 2: ``-<q, c>`` (dot). The difference q - c keeps the small
    distances of near neighbours exact, where ``|q|^2 + |c|^2 - 2<q, c>`` cancels. Ids below 0
    give NaN. Query rows are visited in the order ``visit`` when it is non-empty: an order in
    which consecutive rows share neighbours (the approximate join's lists) keeps those rows in cache.
    """
    m, k = ids.shape
    d = corpus.shape[1]
    out = np.empty((m, k), dtype=np.float32)
    ordered = visit.shape[0] > 0
    for ii in numba.prange(m):
        i = np.int64(visit[ii]) if ordered else np.int64(ii)
        q_norm = q_norms[i] if mode == 0 else np.float32(1.0)
        for j in range(k):
            b = ids[i, j]
            if b < 0:
                out[i, j] = np.nan
                continue
            acc = np.float32(0.0)
            if mode == 2:
                for t in range(d):
                    acc += queries[i, t] * corpus[b, t]
                out[i, j] = -acc
                continue
            c_norm = c_norms[b] if mode == 0 else np.float32(1.0)
            for t in range(d):
                diff = corpus[b, t] / c_norm - queries[i, t] / q_norm
                acc += diff * diff
            out[i, j] = np.sqrt(acc)
    return out
