"""Cross-moments of every pair of several row-aligned representations (layers of one model, several
models) from one pass over all their rows: the scatter of the stacked rows holds every pair's
:class:`~.cross_moments.CrossMoments`, in less memory than the pairs apart, and each set's rows are read
once instead of once per other set.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.blas import dsyrk

from .cross_moments import CROSS_BLOCK_ROWS, CrossMoments, _check_block, check_cross_memory, cross_moments_bytes
from .memory import resolve_memory_limit
from .progress import Progress
from .validation import EmbeddingInputError, as_float32_matrix, iter_row_blocks


class StackedMoments:
    """Cross-moments of every pair of several row-aligned representations, filled from one pass over all.

    The scatter of the stacked rows ``[x^(1) | ... | x^(L)]`` (D x D, D = sum of the d_l) holds every
    pair's ``aa``, ``bb`` and ``ab`` as tiles; with each set's squared-norm sums it is the same information
    as the L (L - 1) / 2 :class:`CrossMoments`, in less memory (D^2 <= sum over pairs of (d_i + d_j)^2).
    :meth:`pair` slices one pair's :class:`CrossMoments` out.

    Parameters
    ----------
    dims : sequence of int
        Dimensions of the representations.
    names : sequence of str, optional
        Their names, for error messages (default ``"0"``, ``"1"``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y, z = rng.normal(size=(50, 3)), rng.normal(size=(50, 2)), rng.normal(size=(50, 4))
    >>> s = StackedMoments([3, 2, 4]).update([x, y, z])
    >>> bool(np.allclose(s.pair(0, 2).centred().ab, CrossMoments(3, 4).update(x, z).centred().ab))
    True
    """

    def __init__(self, dims, names=None):
        dims = list(dims)
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
                raise EmbeddingInputError(f"dimensions must be positive integers, got {d!r}")
        self.dims = [int(d) for d in dims]
        self.names = [str(i) for i in range(len(dims))] if names is None else [str(v) for v in names]
        self.offsets = np.concatenate([[0], np.cumsum(self.dims)]).astype(int)
        total, sets = int(self.offsets[-1]), len(self.dims)
        self.count = 0
        self.pivot, self.sum = np.zeros(total), np.zeros(total)
        self.scatter = np.zeros((total, total), order="F")  # upper triangle only (BLAS syrk, in place)
        self.q = np.zeros((sets, sets))  # sum_i a^(l)_i a^(m)_i, a^(l)_i = ||x^(l)_i - pivot^(l)||^2
        self.qv = np.zeros((sets, total))  # sum_i a^(l)_i (x_i - pivot), the stacked row

    def _slice(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def update(self, blocks, *, start: int | None = None) -> "StackedMoments":
        """Add the same rows of every representation (one block per set, in order); returns self."""
        blocks = [np.asarray(b) for b in blocks]
        if len(blocks) != len(self.dims):
            raise EmbeddingInputError(f"expected {len(self.dims)} blocks, one per set; got {len(blocks)}")
        rows = blocks[0].shape[0] if blocks[0].ndim == 2 else -1
        for b, d, name in zip(blocks, self.dims, self.names):
            if b.ndim != 2 or b.shape != (rows, d):
                raise EmbeddingInputError(f"the block of {name!r} must have shape ({rows}, {d}); got {b.shape}")
        if rows == 0:
            return self
        z = np.empty((rows, len(self.pivot)))
        for i, (b, name) in enumerate(zip(blocks, self.names)):
            z[:, self._slice(i)] = b
            _check_block(z[:, self._slice(i)], self.count if start is None else start, repr(name))
        if self.count == 0:
            self.pivot = z.mean(axis=0)
        z -= self.pivot
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow to inf is refused by centred()
            self._add(z)
        return self

    def _add(self, z: np.ndarray) -> None:
        s = np.stack([np.einsum("ij,ij->i", z[:, self._slice(i)], z[:, self._slice(i)])
                      for i in range(len(self.dims))], axis=1)
        self.count += z.shape[0]
        self.sum += z.sum(axis=0)
        self.scatter = dsyrk(1.0, z.T, beta=1.0, c=self.scatter, lower=0, overwrite_c=1)  # no D x D temporary
        self.q += s.T @ s
        self.qv += s.T @ z

    def pair(self, i: int, j: int) -> CrossMoments:
        """The :class:`CrossMoments` of sets ``i`` (A) and ``j`` (B), ``i != j`` (new arrays)."""
        if i == j:
            raise EmbeddingInputError("pair() needs two different sets")
        a, b = self._slice(i), self._slice(j)
        out = CrossMoments(self.dims[i], self.dims[j])
        tile = self._tile
        out.count = self.count
        out.pivot_a, out.pivot_b = self.pivot[a].copy(), self.pivot[b].copy()
        out.sum_a, out.sum_b = self.sum[a].copy(), self.sum[b].copy()
        out.aa, out.bb, out.ab = tile(a, a), tile(b, b), tile(a, b)
        out.q_aa, out.q_bb, out.q_ab = float(self.q[i, i]), float(self.q[j, j]), float(self.q[i, j])
        out.qv_aa, out.qv_bb = self.qv[i, a].copy(), self.qv[j, b].copy()
        out.qv_ab, out.qv_ba = self.qv[i, b].copy(), self.qv[j, a].copy()
        return out

    def _tile(self, a: slice, b: slice) -> np.ndarray:
        """The block (a, b) of the symmetric scatter, of which only the upper triangle is filled."""
        if a == b:
            t = self.scatter[a, a]
            return np.triu(t) + np.triu(t, 1).T
        return self.scatter[a, b].copy() if a.start < b.start else self.scatter[b, a].T.copy()

    def __repr__(self) -> str:
        return f"StackedMoments(dims={self.dims}, count={self.count})"


def stacked_moments_bytes(dims, block_rows: int) -> int:
    """Peak bytes of :func:`scan_stacked_moments` (the float64 D x D scatter, D = sum d, and two float64
    stacked blocks) and of the statistics of its pairs (the scatter and one pair's
    :func:`cross_moments_bytes`)."""
    dims = sorted(int(d) for d in dims)
    return _stacked_bytes(sum(dims), dims[-2:] if len(dims) > 1 else [], int(block_rows))


def _stacked_bytes(total: int, pair_dims, rows: int) -> int:
    pair = cross_moments_bytes(pair_dims, 0) if len(pair_dims) else 0
    return 8 * total * total + max(16 * rows * total, pair)


def plan_stacked_passes(dims, block_rows: int, memory_limit=None) -> list[list[int]]:
    """Groups of set indices (ascending), one :func:`scan_stacked_moments` each, that together hold every
    pair of sets and each fit in ``memory_limit`` (default half of the available memory).

    All sets in one pass (each set's rows read once) when their stacked moments fit; else the sets in
    chunks any two of which fit together, one pass per pair of chunks (each set read chunks - 1 times).
    Raises before any pass when even that does not fit.
    """
    dims, limit, rows = [int(d) for d in dims], resolve_memory_limit(memory_limit), int(block_rows)
    every = list(range(len(dims)))
    if len(dims) < 3 or stacked_moments_bytes(dims, rows) <= limit:
        groups = [every]
    else:
        top = sorted(dims)[-2:]
        lo, hi = max(dims), sum(dims)  # the largest chunk dimension t whose two chunks fit together
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if _stacked_bytes(2 * mid, top, rows) <= limit else (lo, mid - 1)
        chunks = [[0]]
        for i in every[1:]:
            if sum(dims[j] for j in chunks[-1]) + dims[i] <= lo:
                chunks[-1].append(i)
            else:
                chunks.append([i])
        groups = ([every] if len(chunks) == 1 else
                  [chunks[a] + chunks[b] for a in range(len(chunks)) for b in range(a + 1, len(chunks))])
    for g in groups:
        check_cross_memory(stacked_moments_bytes([dims[i] for i in g], rows), limit,
                           f"stacked cross-moments of {len(g)} sets ({sum(dims[i] for i in g):,} dimensions in all)")
    return groups


def scan_stacked_moments(arrays, *, names=None, block_rows: int = CROSS_BLOCK_ROWS, progress=None,
                         description: str = "cross-moments", memory_limit=None) -> StackedMoments:
    """:class:`StackedMoments` of several row-aligned arrays from one pass: each array's rows are read once,
    a block at a time (memory maps are never loaded whole).

    Parameters
    ----------
    arrays : sequence of array-like, each of shape (n, d_l)
    names : sequence of str, optional
        For error messages.
    block_rows : int
        Rows per block (of every array at once).
    progress : None, bool or callable
        One step per block; a callback that raises stops the scan between two blocks.
    memory_limit : int, optional
        Bytes the moments may take (:func:`stacked_moments_bytes`; default half of the available memory).

    Returns
    -------
    StackedMoments
    """
    arrays = [v if isinstance(v, np.ndarray) and v.ndim == 2 and v.dtype in (np.float32, np.float64)
              else as_float32_matrix(v) for v in arrays]
    if not arrays:
        raise EmbeddingInputError("scan_stacked_moments needs at least one array")
    n = arrays[0].shape[0]
    if any(v.shape[0] != n for v in arrays):
        raise EmbeddingInputError(f"the representations hold different numbers of items: "
                                  f"{', '.join(str(v.shape[0]) for v in arrays)}; they must be the same items")
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise EmbeddingInputError(f"block_rows must be a positive integer, got {block_rows!r}")
    dims = [v.shape[1] for v in arrays]
    check_cross_memory(stacked_moments_bytes(dims, min(int(block_rows), n)), memory_limit,
                       f"stacked cross-moments of {len(dims)} sets ({sum(dims):,} dimensions in all)")
    m = StackedMoments(dims, names)
    steps = -(-n // int(block_rows))
    with Progress(progress, steps, description, unit="block", auto=n >= 500_000) as bar:
        for start, block in iter_row_blocks(arrays[0], int(block_rows)):
            m.update([block] + [v[start:start + block.shape[0]] for v in arrays[1:]], start=start)
            bar.update()
    return m
