"""Shared plumbing of the transformers: validation, item probabilities, fitted moments, the blocked
affine map, and the base class that fixes float32 output.

Fitting accumulates means and covariances in float64 with :class:`~embgeo.analysis._core.Moments`,
block by block (no n x n matrix and no float64 copy of the whole data); transforming is one blocked
matrix product.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._core import (
    EmbeddingInputError,
    Moments,
    check_weights,
    iter_row_blocks,
    scan_moments,
    validate_estimator_input,
)

#: Rows handled per block when accumulating moments or transforming.
BLOCK_ROWS = 16_384
#: float32's largest finite value: every transform's output is float32.
F32_MAX = float(np.finfo(np.float32).max)
#: Relative rounding error of the float64 affine map (64 ulps: the shift, the mean it came from, the
#: product); an output entry below it, relative to its inputs, is not known to differ from 0.
ROUNDING = 64 * float(np.finfo(np.float64).eps)
#: A dimension whose variance is at most this fraction of its mean square is constant: the rule of
#: ``Moments.eigenvalues`` (variance below float precision relative to the data's scale is rounding
#: noise of the mean, not spread), applied per dimension.
CONSTANT_TOL = 1e-12
#: Eigenvalues at most this fraction of the largest are rounding noise of the float64
#: eigendecomposition (its error is about d * 2.2e-16 of the largest): whitening may not divide by them.
SPECTRUM_FLOOR = 1e-12
#: Largest ``eps``: a regulariser above the largest eigenvalue no longer whitens, it only shrinks
#: (``--eps inf`` or ``1e300`` made every output 0).
EPS_MAX = 1.0


def probabilities(sample_weight, X: np.ndarray) -> np.ndarray:
    """Item probabilities p (float64, sum 1) from optional sample weights."""
    if sample_weight is None:
        return np.full(X.shape[0], 1.0 / X.shape[0])
    try:
        w = _check_sample_weight(sample_weight, X, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # TypeError: e.g. a dict, which float() cannot read
        raise EmbeddingInputError(f"sample_weight: {exc}") from None
    return check_weights(w, X.shape[0])


def fitted_moments(X: np.ndarray, p: np.ndarray) -> Moments:
    """p-weighted moments of the rows of ``X`` (float32 or float64, read as they are), in float64.

    Each block is centred at its own mean before its scatter is formed and blocks are merged
    pairwise (Chan et al., 1979), which avoids the cancellation of E[x x^T] - mu mu^T.
    """
    return scan_moments(X, p, block_rows=BLOCK_ROWS)


def check_variance(moments: Moments, who: str) -> None:
    """Refuse data with (relatively) zero variance, which whitening would scale into noise.

    The test is the one of :meth:`Moments.eigenvalues` (and so of ``isotropy_report``): a total
    variance that is only rounding noise relative to the data's mean square counts as none. An
    absolute test let 300 identical rows through (top eigenvalue 1.7e-29, rounding of the mean) and
    whitened them into unit-scale noise.
    """
    if not moments.eigenvalues()[0] > 0:
        raise EmbeddingInputError(
            f"{who}: the fitted rows have zero variance: all rows are identical (or differ only below "
            "float precision relative to their scale), so the data has no variance to whiten")


def affine(X: np.ndarray, shift: np.ndarray | None, matrix: np.ndarray | None, *, who: str,
           column_scale: np.ndarray | None = None) -> np.ndarray:
    """``(X - shift) @ matrix * column_scale`` computed block by block into a new float32 array.

    An entry within the rounding error of its own computation (at most :data:`ROUNDING` times the
    row's and the shift's largest magnitude times the column's gain) is set to 0: it is not known to
    differ from 0, and centring identical rows otherwise left ~1e-15 residue (or ~1e-30 after
    all-but-the-top) that reads as data. Raises :class:`EmbeddingInputError` naming the rows (and the
    estimator ``who``) whose result float32 cannot hold, instead of writing inf: rows far outside the
    data a transform was fitted on can be scaled past float32's range.
    """
    d_out = X.shape[1] if matrix is None else matrix.shape[1]
    out = np.empty((X.shape[0], d_out), dtype=np.float32)
    # |sum_i b_i M_ij| <= max_i |b_i| * sum_i |M_ij|: each column's gain bounds how far rounding spreads.
    gain = np.ones(d_out) if matrix is None else np.abs(matrix).sum(axis=0)
    if column_scale is not None:
        gain = gain * np.abs(column_scale)
    shift_peak = 0.0 if shift is None else float(np.abs(shift).max())
    for start, block in iter_row_blocks(X, BLOCK_ROWS):
        # float64 per block (a copy; X is never written): whitening amplifies small-variance
        # directions, and float32 BLAS kernels round rows differently at tile edges, which would
        # make a row's output depend on its position in the batch.
        b = block.astype(np.float64)
        noise = ROUNDING * (np.abs(b).max(axis=1) + shift_peak)
        if shift is not None:
            b -= shift
        if matrix is not None:
            b = b @ matrix
        if column_scale is not None:
            b *= column_scale
        b[np.abs(b) <= noise[:, None] * gain] = 0.0
        too_big = ~(np.abs(b) <= F32_MAX).all(axis=1)
        if too_big.any():
            rows = start + np.flatnonzero(too_big)
            shown = ", ".join(str(int(i)) for i in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise EmbeddingInputError(
                f"{who}: the transformed values of {len(rows)} of {X.shape[0]} rows (first rows [{shown}]) "
                f"exceed float32's range ({F32_MAX:.3g}); these rows lie far outside the data the "
                "transform was fitted on: fit it on data like them, or rescale them")
        out[start:start + len(b)] = b
    return out


def check_eps(eps) -> float:
    """``eps`` as a float if it is a finite number in ``[0, EPS_MAX]``, else raise."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not 0 <= eps <= EPS_MAX:
        raise EmbeddingInputError(
            f"eps must be a finite number between 0 and {EPS_MAX:g} (the regulariser, relative to the "
            f"largest eigenvalue; default 1e-6), got {eps!r}")
    return float(eps)


def check_n_components(n_components, d: int, n: int, *, limit_by_samples: bool = False) -> int | None:
    if n_components is None:
        return None
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise EmbeddingInputError(f"n_components must be an integer or None, got {n_components!r}")
    top = min(d, n) if limit_by_samples else d
    if not 1 <= n_components <= top:
        raise EmbeddingInputError(
            f"n_components={n_components} is out of range: it must be between 1 and {top} "
            f"(data have {n} rows and {d} dimensions)"
        )
    return int(n_components)


class EmbeddingTransform(TransformerMixin, BaseEstimator):
    """Shared plumbing: float32 output and fitted-state checks."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _prepare_transform(self, X) -> np.ndarray:
        check_is_fitted(self)
        return validate_estimator_input(self, X, reset=False)

