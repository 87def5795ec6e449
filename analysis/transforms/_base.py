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


def probabilities(sample_weight, X: np.ndarray) -> np.ndarray:
    """Item probabilities p (float64, sum 1) from optional sample weights."""
    if sample_weight is None:
        return np.full(X.shape[0], 1.0 / X.shape[0])
    try:
        w = _check_sample_weight(sample_weight, X, dtype=np.float64)
    except ValueError as exc:
        raise EmbeddingInputError(f"sample_weight: {exc}") from None
    return check_weights(w, X.shape[0])



def fitted_moments(X: np.ndarray, p: np.ndarray) -> Moments:
    """p-weighted moments of the rows of ``X`` (float32 or float64, read as they are), in float64.

    Each block is centred at its own mean before its scatter is formed and blocks are merged
    pairwise (Chan et al., 1979), which avoids the cancellation of E[x x^T] - mu mu^T.
    """
    return scan_moments(X, p, block_rows=BLOCK_ROWS)


def affine(X: np.ndarray, shift: np.ndarray | None, matrix: np.ndarray | None) -> np.ndarray:
    """``(X - shift) @ matrix`` computed block by block into a new float32 array."""
    d_out = X.shape[1] if matrix is None else matrix.shape[1]
    out = np.empty((X.shape[0], d_out), dtype=np.float32)
    for start, block in iter_row_blocks(X, BLOCK_ROWS):
        # float64 per block (a copy; X is never written): whitening amplifies small-variance
        # directions, and float32 BLAS kernels round rows differently at tile edges, which would
        # make a row's output depend on its position in the batch.
        b = block.astype(np.float64)
        if shift is not None:
            b -= shift
        out[start:start + len(b)] = b if matrix is None else b @ matrix
    return out


def check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) or not eps >= 0:
        raise EmbeddingInputError(f"eps must be a non-negative number, got {eps!r}")
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

