"""Pairwise squared distances of a row sample and the median-heuristic bandwidth: one home for the
quadratic kernel statistics (the shift report's MMD, the comparison part's RBF CKA).

Memory is the point. :func:`pairwise_sq_distances` builds its n x n float64 matrix in place (one
n x n array, no ``|a|^2 + |b|^2 - 2 a.b`` temporaries), and :func:`median_distance` never forms the
``triu_indices`` of all pairs: up to :data:`MEDIAN_PAIRS` pairs it takes the exact median of every
distinct pair (the strict upper triangle, copied row by row), above that the median of that many pairs
drawn at random (a fixed seed, so a result is reproducible), with their distances computed directly
from the rows when no matrix is given.
"""

from __future__ import annotations

import numpy as np

from .validation import EmbeddingInputError

#: Pairs whose distances the median heuristic reads at most (exact below, a random subset above):
#: 2,000,000 float64 distances are 16 MB; a random subset of that size puts the median within about
#: 0.1 % of the distances' quantile range of the exact one.
MEDIAN_PAIRS = 2_000_000
#: Pairs whose distances are computed from the rows at once (pairs x d float64 differences).
_PAIR_BLOCK = 32_768


def pairwise_sq_distances(x) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``x``: a new (n, n) float64 matrix, symmetric,
    clipped at 0, zero diagonal.

    The rows are centred first (a large common offset would otherwise cancel in
    ``|a|^2 + |b|^2 - 2 a.b``); the matrix is the Gram matrix of the centred rows turned into distances
    in place, so the peak is that one n x n array plus the n x d centred copy.
    """
    z = np.array(x, dtype=np.float64)  # a copy: the caller's rows are never written
    if z.ndim != 2:
        raise EmbeddingInputError(f"pairwise distances need a 2-D array of rows, got shape {z.shape}")
    z -= z.mean(axis=0)
    d2 = z @ z.T
    sq = np.diagonal(d2).copy()
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def _random_pairs(n: int, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pairs (i, j), i != j, each drawn uniformly among the ordered pairs (with replacement)."""
    i = rng.integers(0, n, size=count)
    j = rng.integers(0, n - 1, size=count)
    j += j >= i  # skip the diagonal: j uniform over the other n - 1 rows
    return i, j


def median_distance(x=None, *, d2=None, max_pairs: int = MEDIAN_PAIRS, random_state=0) -> float:
    """The median heuristic: the median Euclidean distance between the sample's distinct pairs that do
    not coincide (Gretton et al., JMLR 2012, Section 8).

    Give the rows ``x`` (n, d) or their squared distances ``d2`` (n, n, e.g. from
    :func:`pairwise_sq_distances`). Pairs at distance 0 (copies of one point) are left out: with many
    copies the median of all pairs would be 0 and give no scale. Up to ``max_pairs`` distinct pairs
    the median is exact; above, it is the median over ``max_pairs`` pairs drawn at random (seeded by
    ``random_state``), computed from ``d2`` when given, else from the rows in blocks.

    Returns NaN when no two points differ (or fewer than two rows): no scale to take; the callers say so.
    """
    if (x is None) == (d2 is None):
        raise EmbeddingInputError("median_distance needs the rows x or their squared distances d2 (one of them)")
    if d2 is not None:
        d2 = np.asarray(d2)
        n = d2.shape[0]
    else:
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
    if n < 2:
        return float("nan")
    n_pairs = n * (n - 1) // 2
    if n_pairs <= max_pairs:
        if d2 is None:
            d2 = pairwise_sq_distances(x)  # small: at most ~2,000 rows
        values = np.concatenate([d2[i, i + 1:] for i in range(n - 1)])
    else:
        rng = np.random.default_rng(random_state)
        i, j = _random_pairs(n, int(max_pairs), rng)
        if d2 is not None:
            values = np.asarray(d2[i, j], dtype=np.float64)
        else:
            values = np.empty(len(i))
            for s in range(0, len(i), _PAIR_BLOCK):
                diff = x[i[s:s + _PAIR_BLOCK]] - x[j[s:s + _PAIR_BLOCK]]
                values[s:s + len(diff)] = np.einsum("ij,ij->i", diff, diff)
    values = values[values > 0]
    return float(np.median(np.sqrt(values))) if values.size else float("nan")
