"""Row-wise primitives every layer shares: unit rows, the rows each metric's kernels see, row norms.

One home for normalisation, so that every search, statistic and transform divides by the same norm
(zero rows divide by the smallest normal float32 and stay zero; the callers that must refuse zero
rows check them first, see :func:`~.validation.check_no_zero_rows`).
"""

from __future__ import annotations

import numba
import numpy as np

from .validation import iter_row_blocks

_TINY32 = np.finfo(np.float32).tiny


def unit_rows(x, *, dtype=np.float32) -> np.ndarray:
    """A new array of the rows of ``x`` divided by their L2 norms (computed in ``dtype``).

    The norms come from one ``einsum`` (no n x d temporary, 3x faster than ``np.linalg.norm``); an
    all-zero row stays zero. ``x`` is never written to.
    """
    block = np.asarray(x, dtype=dtype)
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
    return block / np.maximum(norms, np.finfo(dtype).tiny)


def prepare_rows(block, metric: str, *, dtype=np.float32) -> np.ndarray:
    """The rows a metric's kernels compare, in ``dtype`` (float32 for the searches, float64 for the
    quadratic statistics): unit rows under cosine, the rows as they are otherwise."""
    block = np.asarray(block, dtype=dtype)
    return unit_rows(block, dtype=dtype) if metric == "cosine" else block


@numba.njit(parallel=True, cache=True)
def row_norms(x):
    """L2 norm of each float32 row (at least the smallest normal float32), summed in index order.

    The fixed summation order (SIMD sums are not) makes identical rows give identical norms wherever
    they sit in memory, so their unit vectors are identical and their distance is exactly 0.
    """
    out = np.empty(x.shape[0], dtype=np.float32)
    tiny = np.float32(np.finfo(np.float32).tiny)
    for i in numba.prange(x.shape[0]):
        acc = np.float32(0.0)
        for t in range(x.shape[1]):
            acc += x[i, t] * x[i, t]
        out[i] = max(np.sqrt(acc), tiny)
    return out


def blocked_row_norms(x) -> np.ndarray:
    """:func:`row_norms` of every row of ``x`` (a memory map is read block by block), as float32."""
    return np.concatenate([row_norms(np.ascontiguousarray(b, dtype=np.float32)) for _, b in iter_row_blocks(x)])
