"""Mergeable cross-moments of two representations of the same items, read in row blocks.

Linear CKA, its debiased form, the CCA family (SVCCA, PWCCA) and the orthogonal Procrustes distance of
two representations X (n x d_a) and Y (n x d_b) of the same n items need only

* the centred scatters ``Xc^T Xc``, ``Yc^T Yc`` and the centred cross-scatter ``Xc^T Yc``;
* for the unbiased HSIC, sums of centred squared row norms ``a_i = ||x_i - mu||^2``, ``b_i = ||y_i - nu||^2``:
  ``sum a_i``, ``sum b_i``, ``sum a_i b_i``, ``sum a_i^2``, ``sum b_i^2``.

:class:`CrossMoments` accumulates them from row blocks of both (float32 blocks read into float64
accumulators), so two memory-mapped files are read once, a block at a time, and objects built on
disjoint row chunks combine with :meth:`CrossMoments.merge` (a Dask engine maps one object per chunk
and tree-merges them).

Accuracy: the centred row norms depend on the global means, which are only known at the end. Every
sum is therefore kept about a *pivot* (the mean of the first block an object saw), where the data are
nearly centred; :meth:`CrossMoments.centred` moves them exactly to the final means by expanding
``||x - p - delta||^2`` (the polynomial shift below), so no quantity is formed as a large difference of
raw uncentred sums. Merging moves the other object's sums to this object's pivot the same way.
"""

from __future__ import annotations

import numpy as np

from .memory import resolve_memory_limit, size_text
from .progress import Progress
from .validation import EmbeddingInputError, _first, as_float32_matrix, iter_row_blocks

#: Rows per block of a scan: two float64 blocks of 8,192 x 768 are ~100 MB together.
CROSS_BLOCK_ROWS = 8_192
#: Float64 (d_a + d_b)^2 arrays' worth alive at the peak of ``linear_statistics`` (the moments, their
#: centred copy, the eigenvectors, whitening bases and SVD factors): 4.0 measured with tracemalloc.
CROSS_COPIES = 4

_FIELDS = ("sum_a", "sum_b", "aa", "bb", "ab", "q_aa", "q_bb", "q_ab", "qv_aa", "qv_bb", "qv_ab", "qv_ba")


class CrossMoments:
    """Sufficient statistics of two row-aligned representations, filled block by block.

    Parameters
    ----------
    dim_a, dim_b : int
        Dimensions of the two representations.

    Attributes
    ----------
    count : int
        Rows (items) seen.
    pivot_a, pivot_b : ndarray, float64
        The point every sum below is taken about (the first block's means).
    sum_a, sum_b : ndarray
        ``sum_i x'_i``, ``sum_i y'_i`` with ``x' = x - pivot_a``, ``y' = y - pivot_b``.
    aa, bb, ab : ndarray
        ``sum x' x'^T`` (d_a x d_a), ``sum y' y'^T`` (d_b x d_b), ``sum x' y'^T`` (d_a x d_b).
    q_aa, q_bb, q_ab : float
        ``sum a'_i^2``, ``sum b'_i^2``, ``sum a'_i b'_i`` with ``a' = ||x'||^2``, ``b' = ||y'||^2``.
    qv_aa, qv_bb, qv_ab, qv_ba : ndarray
        ``sum a' x'``, ``sum b' y'``, ``sum a' y'``, ``sum b' x'`` (what moves the q sums to a new pivot).

    Notes
    -----
    Memory is ``8 (d_a + d_b)^2`` bytes whatever n is; time is ``O(n (d_a + d_b)^2)``.
    :meth:`merge` is associative and commutative up to floating-point rounding.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(300, 5)), rng.normal(size=(300, 3))
    >>> m = CrossMoments(5, 3).update(x[:100], y[:100]).merge(CrossMoments(5, 3).update(x[100:], y[100:]))
    >>> c = m.centred()
    >>> bool(np.allclose(c.ab, (x - x.mean(0)).T @ (y - y.mean(0))))
    True
    """

    def __init__(self, dim_a: int, dim_b: int):
        for name, d in (("dim_a", dim_a), ("dim_b", dim_b)):
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
                raise EmbeddingInputError(f"{name} must be a positive integer, got {d!r}")
        self.dim_a, self.dim_b = int(dim_a), int(dim_b)
        self.count = 0
        self.pivot_a, self.pivot_b = np.zeros(self.dim_a), np.zeros(self.dim_b)
        self.sum_a, self.sum_b = np.zeros(self.dim_a), np.zeros(self.dim_b)
        self.aa = np.zeros((self.dim_a, self.dim_a))
        self.bb = np.zeros((self.dim_b, self.dim_b))
        self.ab = np.zeros((self.dim_a, self.dim_b))
        self.q_aa = self.q_bb = self.q_ab = 0.0
        self.qv_aa, self.qv_bb = np.zeros(self.dim_a), np.zeros(self.dim_b)
        self.qv_ab, self.qv_ba = np.zeros(self.dim_b), np.zeros(self.dim_a)

    # ------------------------------------------------------------------------------------ updates
    def update(self, block_a, block_b, *, start: int | None = None) -> "CrossMoments":
        """Add the same rows of both representations (shapes (m, d_a) and (m, d_b)); returns self.

        A block holding NaN or inf is refused, naming its rows: ``start + i`` (``start`` defaults to the
        rows this object has seen, which is the row number in a single scan)."""
        x, y = np.asarray(block_a), np.asarray(block_b)
        if x.ndim != 2 or x.shape[1] != self.dim_a or y.ndim != 2 or y.shape[1] != self.dim_b:
            raise EmbeddingInputError(f"blocks must have shapes (m, {self.dim_a}) and (m, {self.dim_b}); "
                                      f"got {x.shape} and {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise EmbeddingInputError(f"the two blocks hold different numbers of rows: {x.shape[0]} and {y.shape[0]}")
        if x.shape[0] == 0:
            return self
        x, y = x.astype(np.float64), y.astype(np.float64)  # new arrays: the caller's blocks are never written
        for v, side in ((x, "A"), (y, "B")):
            _check_block(v, self.count if start is None else start, side)
        if self.count == 0:
            self.pivot_a, self.pivot_b = x.mean(axis=0), y.mean(axis=0)
        x -= self.pivot_a
        y -= self.pivot_b
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow to inf is refused by centred()
            self._add(x, y)
        return self

    def _add(self, x: np.ndarray, y: np.ndarray) -> None:
        sa, sb = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        self.count += x.shape[0]
        self.sum_a += x.sum(axis=0)
        self.sum_b += y.sum(axis=0)
        self.aa += x.T @ x
        self.bb += y.T @ y
        self.ab += x.T @ y
        self.q_aa += float(sa @ sa)
        self.q_bb += float(sb @ sb)
        self.q_ab += float(sa @ sb)
        self.qv_aa += sa @ x
        self.qv_bb += sb @ y
        self.qv_ab += sa @ y
        self.qv_ba += sb @ x

    def copy(self) -> "CrossMoments":
        out = CrossMoments(self.dim_a, self.dim_b)
        for name, value in vars(self).items():
            setattr(out, name, value.copy() if isinstance(value, np.ndarray) else value)
        return out

    def merge(self, other: "CrossMoments") -> "CrossMoments":
        """A new object holding the statistics of both (disjoint rows; neither input is changed)."""
        if not isinstance(other, CrossMoments):
            raise TypeError(f"can only merge CrossMoments with CrossMoments, got {type(other).__name__}")
        if (other.dim_a, other.dim_b) != (self.dim_a, self.dim_b):
            raise EmbeddingInputError(f"cannot merge cross-moments of dims ({other.dim_a}, {other.dim_b}) into "
                                      f"({self.dim_a}, {self.dim_b})")
        if self.count == 0:
            return other.copy()
        out = self.copy()
        if other.count == 0:
            return out
        moved = other._shifted(self.pivot_a - other.pivot_a, self.pivot_b - other.pivot_b)
        out.count += moved.count
        for name in _FIELDS:
            setattr(out, name, getattr(out, name) + getattr(moved, name))
        return out

    __add__ = merge

    def __radd__(self, other):
        # lets ``sum(chunks)`` reduce a list of per-chunk objects (sum starts from 0)
        if isinstance(other, int) and other == 0:
            return self.copy()
        return NotImplemented

    # ------------------------------------------------------------------------------------ shifts
    def _shifted(self, da: np.ndarray, db: np.ndarray) -> "CrossMoments":
        """The same rows' sums about ``pivot + (da, db)``: exact polynomial re-centring (module notes)."""
        n = self.count
        out = CrossMoments(self.dim_a, self.dim_b)
        out.count = n
        out.pivot_a, out.pivot_b = self.pivot_a + da, self.pivot_b + db
        ta, tb = float(np.trace(self.aa)), float(np.trace(self.bb))
        out.sum_a, out.sum_b = self.sum_a - n * da, self.sum_b - n * db
        out.aa = _second(self.aa, self.sum_a, self.sum_a, da, da, n)
        out.bb = _second(self.bb, self.sum_b, self.sum_b, db, db, n)
        out.ab = _second(self.ab, self.sum_a, self.sum_b, da, db, n)
        # (u, v) pairs: (x, x), (y, y), (x, y); s = ||u'||^2, t = ||v'||^2
        out.q_aa = _quartic(self.q_aa, self.qv_aa, self.qv_aa, self.aa, self.sum_a, self.sum_a, ta, ta, da, da, n)
        out.q_bb = _quartic(self.q_bb, self.qv_bb, self.qv_bb, self.bb, self.sum_b, self.sum_b, tb, tb, db, db, n)
        out.q_ab = _quartic(self.q_ab, self.qv_ab, self.qv_ba, self.ab, self.sum_a, self.sum_b, ta, tb, da, db, n)
        out.qv_aa = _cubic(self.qv_aa, self.aa, self.sum_a, self.sum_a, ta, da, da, n)
        out.qv_bb = _cubic(self.qv_bb, self.bb, self.sum_b, self.sum_b, tb, db, db, n)
        out.qv_ab = _cubic(self.qv_ab, self.ab, self.sum_a, self.sum_b, ta, da, db, n)
        out.qv_ba = _cubic(self.qv_ba, self.ab.T, self.sum_b, self.sum_a, tb, db, da, n)
        return out

    def centred(self) -> "CrossMoments":
        """The same statistics about the two means (``sum_a``, ``sum_b`` become 0; ``aa`` is the centred
        scatter, ``q_ab`` is ``sum ||x_i - mu||^2 ||y_i - nu||^2``, ...)."""
        if self.count == 0:
            raise EmbeddingInputError("no rows have been added to these cross-moments")
        self._check_finite()
        out = self._shifted(self.sum_a / self.count, self.sum_b / self.count)
        out.sum_a, out.sum_b = np.zeros(self.dim_a), np.zeros(self.dim_b)  # exactly, not rounding noise
        out._check_finite()
        return out

    def _check_finite(self) -> None:
        """Raise if any sum is NaN or inf (else every statistic would be NaN, or the traces would fail the
        zero-variance check with the wrong diagnosis)."""
        bad = [name for name in ("pivot_a", "pivot_b", *_FIELDS) if not np.all(np.isfinite(getattr(self, name)))]
        if bad:
            raise EmbeddingInputError(
                f"NaN/inf in the cross-moments ({', '.join(bad)}, over {self.count:,} rows): a block held NaN "
                "or inf, or values too large for float64 fourth powers (|value| above ~1e76); check the "
                "rows (EmbeddingSet(vectors) names the bad ones) and every chunk that was merged")

    def swapped(self) -> "CrossMoments":
        """The same statistics with the roles of A and B exchanged."""
        out = CrossMoments(self.dim_b, self.dim_a)
        out.count = self.count
        out.pivot_a, out.pivot_b, out.sum_a, out.sum_b = self.pivot_b, self.pivot_a, self.sum_b, self.sum_a
        out.aa, out.bb, out.ab = self.bb, self.aa, self.ab.T
        out.q_aa, out.q_bb, out.q_ab = self.q_bb, self.q_aa, self.q_ab
        out.qv_aa, out.qv_bb, out.qv_ab, out.qv_ba = self.qv_bb, self.qv_aa, self.qv_ba, self.qv_ab
        return out.copy()

    @property
    def mean_a(self) -> np.ndarray:
        return self.pivot_a + self.sum_a / max(self.count, 1)

    @property
    def mean_b(self) -> np.ndarray:
        return self.pivot_b + self.sum_b / max(self.count, 1)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in _FIELDS if isinstance(getattr(self, name), np.ndarray))

    def __repr__(self) -> str:
        return f"CrossMoments(dim_a={self.dim_a}, dim_b={self.dim_b}, count={self.count})"


def _check_block(v: np.ndarray, start: int, side: str) -> None:
    """Raise, naming the rows (``start`` + offset in the block), if the float64 block ``v`` holds NaN/inf."""
    finite = np.isfinite(v)
    if not finite.all():
        rows = start + np.flatnonzero(~finite.all(axis=1))
        raise EmbeddingInputError(f"NaN/inf in the cross-moments' input: rows {_first(rows)} of {side} hold NaN or "
                                  "inf values; fix them at the source, or drop the same rows from every set")


def cross_moments_bytes(dims, block_rows: int) -> int:
    """Peak bytes of a scan of sets of dimensions ``dims`` (the moments and two float64 blocks of
    ``block_rows`` rows) and of its statistics (:data:`CROSS_COPIES` float64 (sum d)^2 arrays)."""
    total = int(sum(dims))
    return 8 * max(CROSS_COPIES * total * total, total * total + 2 * int(block_rows) * total)


def check_cross_memory(need: int, memory_limit, what: str) -> None:
    """Raise if ``need`` bytes exceed ``memory_limit`` (None: half of the available memory), naming both."""
    limit = resolve_memory_limit(memory_limit)
    if need > limit:
        raise EmbeddingInputError(
            f"{what} need about {size_text(need)} of float64 moments, more than the memory limit "
            f"{size_text(limit)}: the linear statistics are computed in feature space, (d_A + d_B)^2 numbers "
            "whatever n is; reduce the dimensions first (e.g. PCA to a few hundred) or pass a larger "
            "memory_limit")


def _second(suv, su, sv, d, e, n):
    """sum (u - d)(v - e)^T from sum u v^T, sum u, sum v."""
    return suv - np.outer(su, e) - np.outer(d, sv) + n * np.outer(d, e)


def _cubic(sv_sum, suv, su, sv, s, d, e, n):
    """sum s''_i v''_i with s'' = ||u - d||^2, v'' = v - e, from sum s v (``sv_sum``), sum u v^T, sums."""
    dd = float(d @ d)
    return sv_sum - s * e - 2.0 * (suv.T @ d) + 2.0 * float(d @ su) * e + dd * sv - n * dd * e


def _quartic(st, sv_sum, tu_sum, suv, su, sv, s, t, d, e, n):
    """sum s''_i t''_i with s'' = ||u - d||^2, t'' = ||v - e||^2 (u, v about the old pivot)."""
    dd, ee = float(d @ d), float(e @ e)
    return float(st - 2.0 * (e @ sv_sum) + ee * s - 2.0 * (d @ tu_sum) + 4.0 * (d @ suv @ e)
                 - 2.0 * ee * (d @ su) + dd * t - 2.0 * dd * (e @ sv) + n * dd * ee)


def scan_cross_moments(x, y, *, block_rows: int = CROSS_BLOCK_ROWS, progress=None,
                       description: str = "cross-moments", memory_limit=None) -> CrossMoments:
    """Cross-moments of two row-aligned arrays (memory maps are read a block at a time, never whole).

    Parameters
    ----------
    x, y : array-like of shape (n, d_a), (n, d_b)
        The same n items in two representations; float32 and float64 arrays are read as they are.
    block_rows : int
        Rows per block; bounds the working memory to about ``block_rows * (d_a + d_b) * 16`` bytes.
    progress : None, bool or callable
        Reports one step per block (see :class:`~embgeo.analysis._core.Progress`); a callback that raises
        stops the scan between two blocks.
    memory_limit : int, optional
        Bytes the moments and their statistics may take (default half of the available memory); wider
        sets raise before the scan (two 8,192-d sets need ~8 GiB).

    Returns
    -------
    CrossMoments

    Raises
    ------
    EmbeddingInputError
        Different numbers of rows, NaN/inf in a block (naming the rows), or moments over the memory limit.
    """
    x, y = (v if isinstance(v, np.ndarray) and v.ndim == 2 and v.dtype in (np.float32, np.float64)
            else as_float32_matrix(v) for v in (x, y))
    if x.shape[0] != y.shape[0]:
        raise EmbeddingInputError(f"the two representations hold different numbers of items: {x.shape[0]} and "
                                  f"{y.shape[0]}; they must be the same items, row for row")
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise EmbeddingInputError(f"block_rows must be a positive integer, got {block_rows!r}")
    check_cross_memory(cross_moments_bytes((x.shape[1], y.shape[1]), min(int(block_rows), x.shape[0])),
                       memory_limit, f"cross-moments of {x.shape[1]:,}-d and {y.shape[1]:,}-d sets")
    m = CrossMoments(x.shape[1], y.shape[1])
    steps = -(-x.shape[0] // int(block_rows))
    with Progress(progress, steps, description, unit="block", auto=x.shape[0] >= 500_000) as bar:
        for start, block in iter_row_blocks(x, int(block_rows)):
            m.update(block, y[start:start + block.shape[0]], start=start)
            bar.update()
    return m
