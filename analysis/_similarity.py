"""Similarity diagnostics: what cosine scores look like, when cosine and dot disagree, near-duplicates.

* :func:`similarity_distribution`: histograms of the cosine of random pairs against the cosine of each
  point's k-th neighbour. When the two overlap, neighbours barely stand out (distance concentration).
* :func:`cosine_vs_dot`: how far the k-NN sets under cosine and under the raw inner product agree, and
  whether vector norms track item frequency (Steck, Ekanadham, Kallus, 2024).
* :func:`near_duplicates`: points whose nearest neighbour is (almost) the same vector.

Neighbour tables come from :meth:`EmbeddingSet.neighbors` (shared and cached) or, for a query
sample, from :func:`exact_knn` with ``query_indices``; no n x n matrix is ever formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from ._embedding_set import as_embedding_set
from ._fold import row_norms
from ._knn import exact_knn
from ._results import Result, metric as _field
from ._validation import EmbeddingInputError, check_k, check_random_state, iter_row_blocks

#: Default cosine at or above which two vectors count as near-duplicates.
DUPLICATE_COSINE = 0.99


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _row_norms(x: np.ndarray) -> np.ndarray:
    """L2 norm of every row (float64 of float32 sums), block by block (a memory map is not loaded whole).

    Float32 sums are accurate to ~1e-7 relative, far below what the norm statistics resolve, and
    the numba pass reads the rows once (a float64 copy of 100,000 x 384 took 0.2-0.4 s). A zero row
    gets the smallest normal float32, not 0; the callers refuse zero rows before they get here.
    """
    return np.concatenate([row_norms(np.ascontiguousarray(b, dtype=np.float32)) for _, b in iter_row_blocks(x)]
                          ).astype(np.float64)


@numba.njit(cache=True)
def _average_ranks(x):
    """Ranks 1..n of ``x``, ties sharing their average rank (scipy's rankdata, method="average")."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


@numba.njit(cache=True)
def _spearman(a, b):
    """Spearman correlation of two float64 vectors (NaN when either is constant), as scipy defines it."""
    if len(a) < 2 or a.max() == a.min() or b.max() == b.min():
        return np.nan
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    return (ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum())


@numba.njit(cache=True)
def _agreement(c_ids, c_sim, d_ids, d_sim, norms, q_rows):
    """Per query: Jaccard of the cosine and dot neighbour sets, and the Spearman correlation of the
    two scores over their union (cosine scores of dot neighbours from <q, x> / (|q| |x|))."""
    m, k = c_ids.shape
    jac = np.empty(m)
    rho = np.empty(m)
    for r in range(m):
        q = q_rows[r]
        union = np.unique(np.concatenate((c_ids[r], d_ids[r])))
        jac[r] = (2 * k - len(union)) / len(union)  # |C & D| = |C| + |D| - |C | D|
        cos_u = np.empty(len(union))
        pos = np.searchsorted(union, d_ids[r])
        for j in range(k):
            cos_u[pos[j]] = d_sim[r, j] / (norms[q] * norms[d_ids[r, j]])
        pos = np.searchsorted(union, c_ids[r])
        for j in range(k):
            cos_u[pos[j]] = c_sim[r, j]
        rho[r] = _spearman(cos_u, cos_u * norms[q] * norms[union])
    return jac, rho


def _sample_rows(n: int, sample: int | None, rng) -> np.ndarray | None:
    """Sorted random rows, or None when the sample would cover every point."""
    if sample is None or sample >= n:
        return None
    sample = check_k(sample, n, what="sample", context="points to sample")
    return np.sort(rng.choice(n, size=sample, replace=False))


# --------------------------------------------------------------------------------------------- distribution


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
    rng = check_random_state(random_state)
    i = rng.integers(0, data.n, size=n_pairs)
    j = (i + rng.integers(1, data.n, size=n_pairs)) % data.n  # uniform over j != i
    random_cos = np.empty(n_pairs, dtype=np.float64)
    step = 65_536
    for s in range(0, n_pairs, step):
        a, b = _unit_rows(data.vectors[i[s:s + step]]), _unit_rows(data.vectors[j[s:s + step]])
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


# --------------------------------------------------------------------------------------------- cosine vs dot


@dataclass(frozen=True, repr=False)
class CosineDotReport(Result):
    """Agreement of cosine and inner-product neighbours, and whether norms carry frequency."""

    _title = "cosine versus dot-product neighbours"
    k: int = _field("Neighbours compared per query.")
    sample_size: int = _field("Queries compared.")
    jaccard_mean: float = _field(
        "Mean Jaccard@k = |cos-kNN & dot-kNN| / |cos-kNN | dot-kNN|; 1 when the two metrics retrieve the same "
        "items.", "Steck, Ekanadham, Kallus, WWW 2024")
    jaccard_median: float = _field("Median over queries of Jaccard@k.")
    spearman_median: float = _field(
        "Median over queries of the Spearman correlation of cosine and dot scores over the union of the "
        "two neighbour sets.", "Steck, Ekanadham, Kallus, WWW 2024")
    norm_cv: float = _field("Coefficient of variation of the vector norms; 0 means cosine and dot rank alike.")
    norm_frequency_spearman: float | None = _field(
        "Spearman correlation of vector norm with item weight (frequency); None without weights. Norms that "
        "track frequency make dot favour frequent items.", "Steck et al., 2024", default=None)
    jaccard: np.ndarray = _field("Jaccard@k of each query.", default=None)
    query_indices: np.ndarray = _field("Rows used as queries.", default=None)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.pop("jaccard")
        out.pop("query_indices")
        return out


def _neighbour_tables(data, k, queries):
    """Cosine and dot k-NN of the queries: shared cached tables for all points, else a sampled search."""
    if queries is None:
        return data.neighbors(k, metric="cosine"), data.neighbors(k, metric="dot")
    tables = []
    for metric in ("cosine", "dot"):
        cached = data.cached_neighbors(k, metric=metric)  # a full report has searched cosine already
        tables.append(cached.rows(queries) if cached is not None else
                      exact_knn(data.vectors, k=k, metric=metric, query_indices=queries, progress=False))
    return tuple(tables)


def cosine_vs_dot(data, k: int = 10, *, sample: int | None = 2000, random_state=0) -> CosineDotReport:
    """Compare k-NN under cosine similarity with k-NN under the raw inner product.

    For each query q, with C = its cosine k-NN and D = its dot k-NN (self excluded):
    Jaccard@k = |C & D| / |C | D|, and the Spearman correlation between cos(q, x) and <q, x> over
    x in C | D (the candidates either metric would return; scores are derived from the stored
    distances and the vector norms, <q, x> = cos(q, x) ||q|| ||x||). With weights on the set, the
    Spearman correlation of ||x_i|| with the weight w_i over all points is reported too.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    k : int
        Neighbours per query.
    sample : int or None
        Random queries; None (or >= n) uses every point and the set's cached neighbour tables.
    random_state : int, Generator or None

    Returns
    -------
    CosineDotReport

    References
    ----------
    Steck, Ekanadham, Kallus, "Is cosine-similarity of embeddings really about similarity?", WWW 2024
    Companion.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 16))
    >>> cosine_vs_dot(x / np.linalg.norm(x, axis=1, keepdims=True), k=5).jaccard_mean
    1.0
    """
    data = as_embedding_set(data)
    k = check_k(k, data.n - 1, context="neighbours (self excluded)")
    rng = check_random_state(random_state)
    queries = _sample_rows(data.n, sample, rng)
    cos_t, dot_t = _neighbour_tables(data, k, queries)
    return cosine_dot_from_tables(data, cos_t, dot_t, np.arange(data.n) if queries is None else queries)


def cosine_dot_from_tables(data, cos_t, dot_t, q_rows: np.ndarray) -> CosineDotReport:
    """:func:`cosine_vs_dot` from the queries' exact cosine and dot k-NN tables (same k)."""
    k = cos_t.k
    norms = _row_norms(data.vectors)  # non-zero: the cosine search refuses zero rows

    jac, rho = _agreement(cos_t.indices, cos_t.similarities, dot_t.indices, dot_t.similarities,
                          norms, np.asarray(q_rows, dtype=np.int64))

    weights = data.weights
    return CosineDotReport(
        k=k, sample_size=len(q_rows), jaccard_mean=float(jac.mean()), jaccard_median=float(np.median(jac)),
        spearman_median=float(np.nanmedian(rho)) if np.isfinite(rho).any() else math.nan,
        norm_cv=float(norms.std() / norms.mean()),
        norm_frequency_spearman=None if weights is None else float(
            _spearman(norms, np.asarray(weights, dtype=np.float64))),
        jaccard=jac, query_indices=q_rows,
    )


# --------------------------------------------------------------------------------------------- duplicates


@dataclass(frozen=True, repr=False)
class NearDuplicateReport(Result):
    """Points whose nearest cosine neighbour is (almost) the same direction."""

    _title = "near-duplicate vectors"
    threshold: float = _field("Cosine at or above which a nearest neighbour counts as a near-duplicate.")
    chord_threshold: float = _field("The same threshold as a chord distance, sqrt(2 - 2 cos).")
    rate: float = _field("Share of points whose nearest neighbour is a near-duplicate.")
    n_points: int = _field("Points whose nearest neighbour is a near-duplicate.")
    n_exact: int = _field("Points whose nearest unit vector is identical to theirs (chord distance 0).")
    n_pairs: int = _field("Distinct near-duplicate pairs (i < j) among the k-NN lists.")
    examples: object = _field("The most similar near-duplicate pairs (i, j, cosine, labels).")
    duplicate_of: np.ndarray = _field("Nearest neighbour of each point if it is a near-duplicate, else -1.",
                                      default=None)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.pop("duplicate_of")
        return out


def near_duplicates(data, *, threshold: float = DUPLICATE_COSINE, k: int = 10,
                    max_examples: int = 20) -> NearDuplicateReport:
    """Find points whose nearest cosine neighbour has cosine >= ``threshold``.

    The test is made on the chord distance ``||u_i - u_j|| <= sqrt(2 - 2 * threshold)``, which the
    neighbour engine computes directly from the vectors (accurate for tiny distances, where
    ``1 - cos`` in float32 is not). Neighbours come from the set's shared cosine k-NN table; ``k``
    only selects which cached table to read (k = 10 matches the other reports' default), while the
    rate uses the first neighbour. Pairs are counted from all k neighbours, so a group of more than
    k + 1 copies is undercounted.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    threshold : float in (-1, 1]
        Cosine threshold; default 0.99.
    k : int
        Size of the shared neighbour table to read.
    max_examples : int
        Example pairs listed, most similar first.

    Returns
    -------
    NearDuplicateReport

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 16))
    >>> x[10] = x[3] * 2.0  # same direction
    >>> near_duplicates(x).n_points
    2
    """
    data = as_embedding_set(data)
    threshold = float(threshold)
    if not -1.0 < threshold <= 1.0:
        raise EmbeddingInputError(f"threshold is a cosine and must lie in (-1, 1]; got {threshold}")
    k = check_k(k, data.n - 1, context="neighbours (self excluded)")
    max_examples = check_k(max_examples, 10**9, what="max_examples", context="examples")
    chord = math.sqrt(max(0.0, 2.0 - 2.0 * threshold))
    table = data.neighbors(k, metric="cosine")
    dist = table.distances.astype(np.float64)
    close = dist <= chord
    first = close[:, 0]
    duplicate_of = np.where(first, table.indices[:, 0], -1)

    # every close (point, neighbour) entry as an unordered pair, each pair kept once
    rows, cols = np.nonzero(close)
    a, b = rows, table.indices[rows, cols]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    pairs, first_seen = np.unique(pairs, axis=0, return_index=True)
    pair_cos = 1.0 - 0.5 * dist[rows, cols][first_seen] ** 2
    order = np.argsort(-pair_cos, kind="stable")[:max_examples]
    import pandas as pd

    examples = pd.DataFrame({
        "i": pairs[order, 0], "j": pairs[order, 1], "cosine": pair_cos[order],
        "label_i": [data.label(int(r)) for r in pairs[order, 0]],
        "label_j": [data.label(int(r)) for r in pairs[order, 1]],
    })
    return NearDuplicateReport(
        threshold=threshold, chord_threshold=chord, rate=float(first.mean()), n_points=int(first.sum()),
        n_exact=int((dist[:, 0] == 0).sum()), n_pairs=len(pairs), examples=examples,
        duplicate_of=duplicate_of,
    )
