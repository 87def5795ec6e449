"""Cosine versus dot product (Steck, Ekanadham, Kallus, WWW 2024): how far the k-NN sets under cosine
and under the raw inner product agree, and whether vector norms track item frequency.

Neighbour tables come from :meth:`EmbeddingSet.neighbors` (shared and cached) or, for a query
sample, from :func:`exact_knn` with ``query_indices``; no n x n matrix is ever formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from .._core import Result, check_k, check_random_state, metric as _field, sample_rows, spearman
from ..embeddings import as_embedding_set
from ..neighbors import exact_knn


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
        rho[r] = spearman(cos_u, cos_u * norms[q] * norms[union])
    return jac, rho


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
    jaccard: np.ndarray = _field("Jaccard@k of each query.", default=None, summary=False)
    query_indices: np.ndarray = _field("Rows used as queries.", default=None, summary=False)


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
    queries = sample_rows(data.n, sample, rng)
    cos_t, dot_t = _neighbour_tables(data, k, queries)
    return cosine_dot_from_tables(data, cos_t, dot_t, np.arange(data.n) if queries is None else queries)


def cosine_dot_from_tables(data, cos_t, dot_t, q_rows: np.ndarray) -> CosineDotReport:
    """:func:`cosine_vs_dot` from the queries' exact cosine and dot k-NN tables (same k)."""
    k = cos_t.k
    norms = data.norms().astype(np.float64)  # non-zero: the cosine search refuses zero rows

    jac, rho = _agreement(cos_t.indices, cos_t.similarities, dot_t.indices, dot_t.similarities,
                          norms, np.asarray(q_rows, dtype=np.int64))

    weights = data.weights
    return CosineDotReport(
        k=k, sample_size=len(q_rows), jaccard_mean=float(jac.mean()), jaccard_median=float(np.median(jac)),
        spearman_median=float(np.nanmedian(rho)) if np.isfinite(rho).any() else math.nan,
        norm_cv=float(norms.std() / norms.mean()),
        norm_frequency_spearman=None if weights is None else float(
            spearman(norms, np.asarray(weights, dtype=np.float64))),
        jaccard=jac, query_indices=q_rows,
    )
