"""Mergeable first and second moments of embedding vectors, read in row blocks.

A :class:`Moments` object holds the sufficient statistics of a weighted set of rows: total weight,
weighted mean, weighted centred scatter matrix, weighted sums of norms, and the weighted sum of unit
vectors. It is filled block by block (:meth:`Moments.update`), so a memory-mapped file larger than RAM
is read once, and two objects built on disjoint chunks combine with :meth:`Moments.merge`, so the same
code serves a distributed engine (map: one object per chunk; reduce: merge).

Why a centred scatter and not raw sums: embedding sets usually share a large common direction, so
``E[x x^T] - mu mu^T`` subtracts two nearly equal numbers and loses the small eigenvalues. Each block is
centred at its own mean in float64 and blocks are combined with the pairwise update of Chan, Golub &
LeVeque (1979), which stays accurate whatever the offset of the data.

Wide data (n < d rows, e.g. a few LLM embeddings of 4,096-8,192 dims): a d x d scatter costs d^2 memory
and d^3 time whatever n is, so until ``dim`` rows are in the object keeps the rows and every spectrum
comes from the n x n side (:meth:`Moments.eigensystem`), in O(n^2 d) time and O(n d) memory, with the
other d - n eigenvalues exactly 0. Past ``dim`` rows they fold into the scatter, as before.
"""

from __future__ import annotations

import numpy as np

from .validation import EmbeddingInputError, as_float32_matrix, iter_row_blocks

#: Rows per block when scanning: the block is cast to float64 and centred, so 8,192 x 768 is ~50 MB.
MOMENT_BLOCK_ROWS = 8_192
#: Total variance below this fraction of mean ||x||^2 is rounding noise: the vectors are all alike.
ZERO_VARIANCE_TOL = 1e-12


class Moments:
    """Sufficient statistics for the weighted mean and covariance of a stream of row blocks.

    Parameters
    ----------
    dim : int
        Dimension of the vectors.
    normalize : bool, default False
        Accumulate the mean and scatter of the unit vectors ``x / ||x||`` instead of the raw rows
        (the cosine view). Norm statistics always describe the raw rows.

    Attributes
    ----------
    count : int
        Rows seen.
    weight_sum, weight_sq_sum : float
        Sum of the row weights and of their squares (both equal ``count`` without weights).
    mean_ : ndarray of shape (dim,), float64
        Weighted mean of the accumulated rows (raw or unit, see ``normalize``).
    scatter_ : ndarray of shape (dim, dim), float64
        Weighted centred scatter ``sum_i w_i (x_i - mean)(x_i - mean)^T`` (built on request if wide).
    wide : bool
        True while fewer than ``dim`` rows are in (merges too): the rows are kept, not the scatter.
    norm_sum, norm_sq_sum : float
        ``sum_i w_i ||x_i||`` and ``sum_i w_i ||x_i||^2`` over the raw rows.
    unit_sum_ : ndarray of shape (dim,), float64
        ``sum_i w_i x_i / ||x_i||`` over the rows with a non-zero norm.
    unit_sq_sum_ : ndarray of shape (dim,), float64
        ``sum_i w_i (x_i / ||x_i||)^2``, coordinate-wise, over the same rows.
    unit_weight_sum, unit_weight_sq_sum : float
        Weight sums over those non-zero rows.
    zero_rows : int
        Rows with norm zero (left out of the unit-vector statistics).

    Notes
    -----
    Weights are per-row and need not be normalised: every statistic divides by the total weight, so
    passing item frequencies block by block gives the p-weighted (Zipfian) moments of Yokoi et al.
    (2024). :meth:`merge` is associative and commutative up to floating-point rounding.

    References
    ----------
    Chan, T. F., Golub, G. H. & LeVeque, R. J. (1979). Updating formulae and a pairwise algorithm for
    computing sample variances. Stanford CS report STAN-CS-79-773.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
    >>> m = Moments(8).update(x[:500]).update(x[500:])
    >>> bool(np.allclose(m.covariance(ddof=1), np.cov(x.T.astype(np.float64))))
    True
    """

    def __init__(self, dim: int, *, normalize: bool = False):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise EmbeddingInputError(f"dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.normalize = bool(normalize)
        self.count = 0
        self.weight_sum = 0.0
        self.weight_sq_sum = 0.0
        self.mean_ = np.zeros(self.dim)
        self._scatter: np.ndarray | None = None  # (dim, dim) once dim rows are in; None while wide
        self._rows: list[tuple[np.ndarray, np.ndarray]] = []  # while wide: (rows, weights) blocks, float64
        self.norm_sum = 0.0
        self.norm_sq_sum = 0.0
        self.unit_sum_ = np.zeros(self.dim)
        self.unit_sq_sum_ = np.zeros(self.dim)
        self.unit_weight_sum = 0.0
        self.unit_weight_sq_sum = 0.0
        self.zero_rows = 0

    # ------------------------------------------------------------------------------------ updates
    def update(self, block, weights=None) -> "Moments":
        """Add the rows of ``block`` (shape (m, dim)), optionally with per-row ``weights``; returns self."""
        other = Moments._of_block(block, weights, self.dim, self.normalize)
        self._absorb(other, take=True)
        return self

    def merge(self, other: "Moments") -> "Moments":
        """A new object holding the statistics of both (neither input is changed)."""
        if not isinstance(other, Moments):
            raise TypeError(f"can only merge Moments with Moments, got {type(other).__name__}")
        if other.dim != self.dim or other.normalize != self.normalize:
            raise EmbeddingInputError(
                f"cannot merge moments of dim={other.dim}, normalize={other.normalize} into "
                f"dim={self.dim}, normalize={self.normalize}"
            )
        out = self.copy()
        out._absorb(other)
        return out

    __add__ = merge

    def __radd__(self, other):
        # lets ``sum(chunks)`` reduce a list of per-chunk moments (sum starts from 0)
        if isinstance(other, int) and other == 0:
            return self.copy()
        return NotImplemented

    def copy(self) -> "Moments":
        out = Moments(self.dim, normalize=self.normalize)
        for name, value in vars(self).items():
            # the kept row blocks are never written in place, so copies may share them
            setattr(out, name, value.copy() if isinstance(value, (np.ndarray, list)) else value)
        return out

    @staticmethod
    def _of_block(block, weights, dim: int, normalize: bool) -> "Moments":
        x = np.asarray(block)
        if x.ndim != 2 or x.shape[1] != dim:
            raise EmbeddingInputError(f"block must have shape (m, {dim}); got {x.shape}")
        x = x.astype(np.float64)  # always a new array: the caller's block is never written
        m = Moments(dim, normalize=normalize)
        if x.shape[0] == 0:
            return m
        w = np.ones(x.shape[0]) if weights is None else _block_weights(weights, x.shape[0])
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        nonzero = norms > 0
        every = bool(nonzero.all())  # the usual case: no row selections (each one a copy of the block)
        if normalize and not every:
            raise EmbeddingInputError(
                f"block has {int((~nonzero).sum())} all-zero rows (first, counted within the block: "
                f"{np.flatnonzero(~nonzero)[:5].tolist()}); "
                "unit vectors are undefined for them"
            )
        m.count = x.shape[0]
        m.weight_sum, m.weight_sq_sum = float(w.sum()), float(w @ w)
        m.norm_sum, m.norm_sq_sum = float(w @ norms), float(w @ norms**2)
        m.zero_rows = int((~nonzero).sum())
        wu = w if every else w[nonzero]
        if normalize:
            x /= norms[:, None]  # x now holds the unit rows
            m.unit_sum_ = wu @ x
            m.unit_sq_sum_ = wu @ (x * x)
        else:
            rows, nrm = (x, norms) if every else (x[nonzero], norms[nonzero])
            scaled = wu / nrm
            m.unit_sum_ = scaled @ rows
            m.unit_sq_sum_ = (scaled / nrm) @ (rows * rows)
        m.unit_weight_sum, m.unit_weight_sq_sum = float(wu.sum()), float(wu @ wu)
        if m.weight_sum > 0:
            m.mean_ = (w @ x) / m.weight_sum
        if x.shape[0] < dim:  # wide: keep the (unit) rows; the spectrum comes from the n x n side
            m._rows = [(x, w)]
            return m
        x -= m.mean_
        if weights is not None:
            x *= np.sqrt(w)[:, None]
        m._scatter = x.T @ x
        return m

    def _absorb(self, other: "Moments", take: bool = False) -> None:
        """Pairwise (Chan et al., 1979) combination of two disjoint sets' statistics, in place
        (``take``: ``other`` is a temporary, whose scatter may be adopted without a copy)."""
        wa, wb, total = self.weight_sum, other.weight_sum, self.weight_sum + other.weight_sum
        delta = other.mean_ - self.mean_
        if self.count == 0:  # nothing here yet (the first block of a scan): adopt the other's state
            self._rows = list(other._rows)
            self._scatter = other._scatter if take or other._scatter is None else other._scatter.copy()
        elif other.count and self.wide and other.wide and self.count + other.count < self.dim:
            self._rows = self._rows + other._rows
        elif other.count:  # past dim rows: each side's scatter (built from its rows if wide), then Chan's update
            scatter = self.scatter_ + other.scatter_
            if wa > 0 and wb > 0:
                scatter += np.outer(delta, delta * (wa * wb / total))
            self._scatter, self._rows = scatter, []
        if wb > 0:
            self.mean_ = self.mean_ + delta * (wb / total)
        self.count += other.count
        self.weight_sum = total
        self.weight_sq_sum += other.weight_sq_sum
        self.norm_sum += other.norm_sum
        self.norm_sq_sum += other.norm_sq_sum
        self.unit_sum_ = self.unit_sum_ + other.unit_sum_
        self.unit_sq_sum_ = self.unit_sq_sum_ + other.unit_sq_sum_
        self.unit_weight_sum += other.unit_weight_sum
        self.unit_weight_sq_sum += other.unit_weight_sq_sum
        self.zero_rows += other.zero_rows

    # ------------------------------------------------------------------------------------ results
    def _need_weight(self) -> None:
        if self.weight_sum <= 0:
            raise EmbeddingInputError("no rows (or only zero-weight rows) have been added to these moments")

    @property
    def mean(self) -> np.ndarray:
        """Weighted mean (float64)."""
        self._need_weight()
        return self.mean_.copy()

    @property
    def wide(self) -> bool:
        """Fewer than ``dim`` rows are in: they are kept instead of the scatter (see the module notes)."""
        return self._scatter is None

    @property
    def scatter_(self) -> np.ndarray:
        """Weighted centred scatter (dim x dim); wide moments build it on request (no spectrum needs it)."""
        return self._wide_matrix(centre=True, denom=1.0) if self._scatter is None else self._scatter

    def _scaled_rows(self, *, centre: bool, denom: float) -> np.ndarray:
        """Wide moments' rows as the n x dim matrix ``A`` with rows ``sqrt(w_i / denom) (x_i - mean)``
        (``centre``) or ``sqrt(w_i / denom) x_i``: ``A^T A`` is the scatter / second moment over denom."""
        if not self._rows:
            return np.zeros((0, self.dim))
        fresh = len(self._rows) > 1  # a concatenation is ours to overwrite; a single kept block is not
        x = np.concatenate([r for r, _ in self._rows]) if fresh else self._rows[0][0]
        scale = np.sqrt(np.concatenate([w for _, w in self._rows]) / denom)[:, None]
        a = np.subtract(x, self.mean_, out=x if fresh else None) if centre else x
        return np.multiply(a, scale, out=a if (centre or fresh) else None)

    def _wide_matrix(self, *, centre: bool, denom: float) -> np.ndarray:
        a = self._scaled_rows(centre=centre, denom=denom)  # only where a caller asks for the d x d matrix
        return a.T @ a

    def _denominator(self, ddof) -> float:  # of the covariance
        self._need_weight()
        if ddof == 0:
            denom = self.weight_sum
        elif ddof == 1:
            denom = self.weight_sum - self.weight_sq_sum / self.weight_sum
        else:
            raise EmbeddingInputError(f"ddof must be 0 or 1, got {ddof!r}")
        if denom <= 0:
            raise EmbeddingInputError("covariance with ddof=1 needs at least two rows of positive weight")
        return denom

    def covariance(self, ddof: int = 0) -> np.ndarray:
        """Weighted covariance (float64, dim x dim; built on request when wide).

        ``ddof=0`` divides the scatter by the total weight (the p-weighted covariance of Yokoi et al.,
        2024); ``ddof=1`` divides by ``W - sum w^2 / W`` (reliability weights), which is ``n - 1``
        without weights and matches ``np.cov(x.T, aweights=w)``.
        """
        if self.wide:
            return self._wide_matrix(centre=True, denom=self._denominator(ddof))
        return self._scatter / self._denominator(ddof)

    def variances(self, ddof: int = 0) -> np.ndarray:
        """The diagonal of :meth:`covariance` (dim,), in O(n dim) for wide moments."""
        denom = self._denominator(ddof)
        if self.wide:
            a = self._scaled_rows(centre=True, denom=denom)
            return np.einsum("ij,ij->j", a, a)
        return np.diag(self._scatter) / denom

    def total_variance(self, ddof: int = 0) -> float:
        """Trace of :meth:`covariance`, ``sum_i w_i ||x_i - mean||^2 / denom``."""
        return float(self.variances(ddof).sum())

    def second_moment(self) -> np.ndarray:
        """Weighted uncentred second moment ``E[x x^T]`` (dim x dim; built on request when wide)."""
        self._need_weight()
        if self.wide:
            return self._wide_matrix(centre=False, denom=self.weight_sum)
        return self._scatter / self.weight_sum + np.outer(self.mean_, self.mean_)

    @property
    def norm_mean(self) -> float:
        """Weighted mean of the raw row norms."""
        self._need_weight()
        return self.norm_sum / self.weight_sum

    @property
    def norm_std(self) -> float:
        """Weighted (population) standard deviation of the raw row norms."""
        self._need_weight()
        var = self.norm_sq_sum / self.weight_sum - self.norm_mean**2
        return float(np.sqrt(max(var, 0.0)))

    @property
    def unit_mean(self) -> np.ndarray:
        """Weighted mean of the unit vectors ``E[u]`` (rows of norm zero left out)."""
        if self.unit_weight_sum <= 0:
            raise EmbeddingInputError("no non-zero rows of positive weight: unit vectors are undefined")
        return self.unit_sum_ / self.unit_weight_sum

    def eigensystem(self, *, centered: bool = True, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """All ``dim`` eigenvalues (largest first, clipped at 0) and the eigenvectors that carry them.

        The matrix is the covariance (``centered``) or the uncentred second moment ``E[x x^T]``.
        Square moments: ``numpy.linalg.eigh`` of the dim x dim matrix, every eigenvector, signs as
        LAPACK returns them. Wide moments (n < dim rows): ``eigh`` of the n x n Gram matrix ``A A^T``
        of the scaled rows A (``A^T A`` = the matrix), which has the same non-zero eigenvalues, and the
        eigenvectors ``V = A^T U / sqrt(lambda)`` of those above its rounding level ``n eps lambda_1``
        (numpy's ``matrix_rank`` tolerance), made orthonormal again (Lowdin) where the division
        amplified rounding: O(n^2 dim) time, O(n^2 + n dim) memory. The other dim - n eigenvalues are
        exactly 0 (n rows span at most n directions); any orthonormal basis of the complement of V
        holds their eigenvectors (and those of the eigenvalues below the rounding level).

        Returns ``(eigenvalues (dim,), vectors (dim, r))``: r = dim (square), the numerical rank (wide)."""
        if not self.wide:
            lam, vectors = np.linalg.eigh(self.covariance(ddof) if centered else self.second_moment())
            return np.clip(lam[::-1], 0.0, None), vectors[:, ::-1]
        self._need_weight()
        a = self._scaled_rows(centre=centered, denom=self._denominator(ddof) if centered else self.weight_sum)
        lam, u = np.linalg.eigh(a @ a.T)
        lam, u = np.clip(lam[::-1], 0.0, None), u[:, ::-1]
        rank = int(np.sum(lam > lam[0] * lam.size * np.finfo(np.float64).eps)) if lam.size else 0
        v = a.T @ (u[:, :rank] / np.sqrt(lam[:rank]))
        c, p = np.linalg.eigh(v.T @ v)  # V (V^T V)^(-1/2): the orthonormal columns nearest to V's
        return _padded(lam, self.dim), v @ ((p / np.sqrt(np.clip(c, 0.5, None))) @ p.T)

    def principal_axes(self, *, centered: bool = True, ddof: int = 0,
                       n_components: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (largest first, clipped at 0) and eigenvectors (columns) of the covariance.

        ``centered=False`` decomposes the uncentred second moment ``E[x x^T]`` instead, whose leading
        direction is the common direction of the rows (what inner products see). Signs follow
        :func:`sorted_eigh`, so the same data always give the same axes. ``n_components=k``: the leading
        k only (wide: O(n^2 dim) time, O(n^2 + (n + k) dim) memory). All dim axes need a dim x dim array;
        wide moments complete :meth:`eigensystem`'s by a Householder QR (O(n dim^2)), eigenvalue 0.
        """
        k = self.dim if n_components is None else n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.dim:
            raise EmbeddingInputError(f"n_components must be an integer from 1 to {self.dim} (the dimension), "
                                      f"got {n_components!r}")
        if not self.wide:
            lam, vectors = sorted_eigh(self.covariance(ddof) if centered else self.second_moment())
            return lam[:k], vectors[:, :k]
        lam, vectors = self.eigensystem(centered=centered, ddof=ddof)
        if k > vectors.shape[1]:  # Q's first r columns are +-V (orthonormal already); the rest span the complement
            vectors = np.linalg.qr(vectors, mode="complete")[0]
        return lam[:k], _fix_signs(vectors[:, :k])

    def eigenvalues(self, *, ddof: int = 0) -> np.ndarray:
        """Covariance eigenvalues, largest first, clipped at 0; all 0 when the total variance is only
        rounding noise (every row alike: at most ``ZERO_VARIANCE_TOL`` of the mean squared norm).
        Wide moments: the n of :meth:`eigensystem` (no vectors), then dim - n exact zeros."""
        total = self.total_variance(ddof)
        if total <= ZERO_VARIANCE_TOL * (total + float(self.mean_ @ self.mean_)):
            return np.zeros(self.dim)
        if self.wide:
            a = self._scaled_rows(centre=True, denom=self._denominator(ddof))
            return _padded(np.linalg.eigvalsh(a @ a.T)[::-1], self.dim)
        return np.clip(np.linalg.eigvalsh(self.covariance(ddof))[::-1], 0.0, None)

    @property
    def unit_sq_mean(self) -> np.ndarray:
        """``E[u_j^2]`` coordinate-wise over the unit vectors (rows of norm zero left out), the
        partner of :attr:`unit_mean` in a per-dimension variance."""
        if self.unit_weight_sum <= 0:
            raise EmbeddingInputError("no non-zero rows of positive weight: unit vectors are undefined")
        return self.unit_sq_sum_ / self.unit_weight_sum

    def cosine_shares(self) -> np.ndarray:
        """Each dimension's share ``E[u_j]^2 / sum_j E[u_j]^2`` of the expected cosine of random pairs.

        The expected cosine of two independent draws is ``sum_j E[u_j]^2`` (self pairs aside), so
        dimension j contributes ``E[u_j]^2`` (Timkey & van Schijndel, EMNLP 2021). NaN when there
        are no non-zero rows or the mean direction vanishes (0 / 0).
        """
        if self.unit_weight_sum <= 0:
            return np.full(self.dim, np.nan)
        contrib = self.unit_mean ** 2
        total = contrib.sum()
        return contrib / total if total > 0 else np.full(self.dim, np.nan)

    def mean_cosine(self) -> float:
        """Mean cosine over distinct pairs, weighted by ``w_i w_j`` (self pairs excluded).

        ``sum_{i != j} w_i w_j cos_ij / sum_{i != j} w_i w_j = (||sum w u||^2 - sum w^2) / (W^2 - sum w^2)``;
        unweighted this is ``(||S||^2 - n) / (n (n - 1))``. NaN when fewer than two rows qualify.
        """
        w, w2 = self.unit_weight_sum, self.unit_weight_sq_sum
        denom = w * w - w2
        if denom <= 0:
            return float("nan")
        return float((self.unit_sum_ @ self.unit_sum_ - w2) / denom)

    def __repr__(self) -> str:
        return (f"Moments(dim={self.dim}, normalize={self.normalize}, count={self.count}, "
                f"weight_sum={self.weight_sum:.6g})")


def _block_weights(weights, m: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != m:
        raise EmbeddingInputError(f"weights have {w.shape[0]} entries but the block has {m} rows")
    if not np.isfinite(w).all() or (w < 0).any():
        raise EmbeddingInputError("weights must be finite and non-negative")
    return w


def scan_moments(x, weights=None, *, normalize: bool = False,
                 block_rows: int = MOMENT_BLOCK_ROWS) -> Moments:
    """Moments of an (n, d) array (a memory map is fine) read ``block_rows`` rows at a time.

    Parameters
    ----------
    x : array-like of shape (n, d)
        Vectors; never modified. float32 and float64 arrays are read as they are (a memory map block
        by block, never loaded whole); anything else is validated and converted to float32.
    weights : array-like of shape (n,), optional
        Non-negative per-row weights (item frequencies); need not sum to 1.
    normalize : bool, default False
        Accumulate the moments of the unit vectors (see :class:`Moments`).
    block_rows : int
        Rows per block; bounds the float64 working memory to about ``block_rows * d * 16`` bytes.

    Returns
    -------
    Moments

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 4))
    >>> bool(np.allclose(scan_moments(x, block_rows=7).mean, x.astype(np.float32).mean(0)))
    True
    """
    if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype in (np.float32, np.float64)):
        x = as_float32_matrix(x)  # float32 and float64 rows (a memory map too) are read as they are
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise EmbeddingInputError(f"block_rows must be a positive integer, got {block_rows!r}")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape[0] != x.shape[0]:
            raise EmbeddingInputError(f"weights have {w.shape[0]} entries but there are {x.shape[0]} vectors")
    m = Moments(x.shape[1], normalize=normalize)
    for start, block in iter_row_blocks(x, int(block_rows)):
        m.update(block, None if w is None else w[start:start + block.shape[0]])
    return m


def sorted_eigh(matrix) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors of a symmetric matrix, signs fixed.

    Each eigenvector is flipped so that its largest-magnitude entry is positive (the convention of
    scikit-learn's ``svd_flip``), so refitting on the same data gives the same rotation.
    """
    lam, vectors = np.linalg.eigh(np.asarray(matrix, dtype=np.float64))
    return np.clip(lam[::-1], 0.0, None), _fix_signs(vectors[:, ::-1])


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """The columns flipped so that each one's largest-magnitude entry is positive (a new array)."""
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def _padded(values: np.ndarray, dim: int) -> np.ndarray:
    """Wide moments' n eigenvalues (descending, clipped at 0) followed by dim - n exact zeros."""
    out = np.zeros(dim)
    out[:values.size] = np.clip(values, 0.0, None)
    return out


def pca_dimension(eigenvalues, share: float) -> int:
    """Fewest leading components whose eigenvalues explain at least ``share`` of their sum (0 if none).

    A relative tolerance of 1e-9 lets exactly k equal components reach a share of k/d despite rounding.

    Examples
    --------
    >>> pca_dimension([1.0, 1.0, 1.0, 1.0], 0.5), pca_dimension([9.0, 1.0], 0.95)
    (2, 2)
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    total = lam.sum()
    if lam.size == 0 or not np.isfinite(total) or total <= 0:
        return 0
    cum = np.cumsum(lam) / total
    return int(min(np.searchsorted(cum, share - 1e-9) + 1, lam.size))
