"""Cosine of random pairs against cosine to each point's k-th neighbour (distance concentration).

When the two histograms overlap, neighbours barely stand out from random pairs. The k-th neighbour
cosines come from the set's shared cosine k-NN table; random pairs are drawn directly, O(pairs d).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import EmbeddingInputError, Result, check_k, check_random_state, metric as _field, unit_rows
from ..embeddings import as_embedding_set


@dataclass(frozen=True, repr=False)
class SimilarityDistribution(Result):
    """Cosine of random pairs against cosine to the k-th neighbour, as histograms on shared bins."""

    _title = "cosine similarity: random pairs vs k-th neighbours"
    k: int = _field("Neighbour rank whose similarity is shown.")
    n_pairs: int = _field("Random distinct pairs sampled.")
    random_mean: float = _field("Mean cosine of random pairs; far above 0 means the vectors share a direction "
                                "(anisotropy).", "Ethayarajh, EMNLP 2019")
    random_std: float = _field("Standard deviation of the cosine of random pairs.")
    kth_neighbor_median: float = _field("Median over points of the cosine to the k-th neighbour.")
    overlap: float = _field(
        "Share of random pairs at least as similar as the median k-th neighbour; near 0.5 means neighbours "
        "do not stand out from random pairs (concentration).", "Beyer et al., ICDT 1999")
    bin_edges: np.ndarray = _field("Shared histogram bin edges (cosine).")
    random_counts: np.ndarray = _field("Random pairs per bin.")
    kth_neighbor_counts: np.ndarray = _field("Points per bin by their cosine to the k-th neighbour.")


def similarity_distribution(data, *, k: int = 10, n_pairs: int = 20_000, bins: int = 50,
                            random_state=0) -> SimilarityDistribution:
    """Histogram data of the cosine of random pairs and of each point's k-th neighbour.

    Random pairs (i, j), i != j, are drawn uniformly with replacement and their cosine computed
    directly (O(n_pairs d)). The k-th neighbour cosines come from the shared cosine k-NN table.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    k : int
        Neighbour rank.
    n_pairs : int
        Random pairs to sample.
    bins : int
        Number of histogram bins, spanning the range of both samples.
    random_state : int, Generator or None

    Returns
    -------
    SimilarityDistribution

    References
    ----------
    Beyer, Goldstein, Ramakrishnan, Shaft, "When is 'nearest neighbor' meaningful?", ICDT 1999.
    Ethayarajh, "How contextual are contextualized word representations?", EMNLP 2019 (cosine of
    random pairs as a baseline).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> dist = similarity_distribution(rng.normal(size=(300, 20)), k=5, n_pairs=2000)
    >>> int(dist.random_counts.sum())
    2000
    """
    data = as_embedding_set(data)
    if data.n < 2:
        raise EmbeddingInputError("similarity_distribution needs at least 2 points")
    k = check_k(k, data.n - 1, context="neighbours (self excluded)")
    n_pairs = check_k(n_pairs, 10**9, what="n_pairs", context="pairs")
    bins = check_k(bins, 10**6, what="bins", context="bins")
    kth = data.neighbors(k, metric="cosine").similarities[:, k - 1]  # also validates the vectors
    return similarity_from_kth(data, kth, k, n_pairs, bins, check_random_state(random_state))


def similarity_from_kth(data, kth: np.ndarray, k: int, n_pairs: int, bins: int, rng) -> SimilarityDistribution:
    """:func:`similarity_distribution` from the k-th neighbour cosines already known for some points
    (every point's, or a query sample's searched against the whole set); random pairs span the whole set."""
    i = rng.integers(0, data.n, size=n_pairs)
    j = (i + rng.integers(1, data.n, size=n_pairs)) % data.n  # uniform over j != i
    random_cos = np.empty(n_pairs, dtype=np.float64)
    step = max(1, 2**22 // data.dim)  # pairs per block: ~100 MB of temporaries whatever d (not 65,536 x d)
    for s in range(0, n_pairs, step):
        a, b = unit_rows(data.vectors[i[s:s + step]]), unit_rows(data.vectors[j[s:s + step]])
        random_cos[s:s + step] = np.einsum("nd,nd->n", a.astype(np.float64), b.astype(np.float64))

    lo, hi = min(random_cos.min(), kth.min()), max(random_cos.max(), kth.max())
    if hi <= lo:
        lo, hi = lo - 1e-6, hi + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    median_kth = float(np.median(kth))
    return SimilarityDistribution(
        k=k, n_pairs=n_pairs, random_mean=float(random_cos.mean()), random_std=float(random_cos.std()),
        kth_neighbor_median=median_kth, overlap=float(np.mean(random_cos >= median_kth)),
        bin_edges=edges, random_counts=np.histogram(random_cos, edges)[0],
        kth_neighbor_counts=np.histogram(kth, edges)[0],
    )
