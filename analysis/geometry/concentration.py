"""Distance concentration: relative contrast (He et al., 2012) and expansion (Aumueller & Ceccarello,
2019) of a random sample of queries, the statistics that make a query easy or hard to search."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import (
    Result,
    check_distance_metric,
    check_k,
    check_random_state,
    median_ci,
    metric as _field,
    sample_rows,
)
from ..embeddings import as_embedding_set
from ..neighbors import Neighbors, exact_knn, expansion, relative_contrast, zero_kth_distance


@dataclass(frozen=True, repr=False)
class ConcentrationReport(Result):
    """How far the near neighbours of a query stand out from the rest of the corpus."""

    _title = "distance concentration on a sample of queries"
    k: int = _field("Rank of the neighbour compared with the corpus (RC) and with rank 2k (expansion).")
    metric: str = _field("Distance used (chord for cosine).")
    sample_size: int = _field("Queries measured (a random sample of the set).")
    relative_contrast_median: float = _field(
        "Median over queries of RC_k = mean distance to the corpus / distance to the k-th neighbour; near 1 "
        "means neighbours barely stand out (a hard query).", "He, Kumar, Chang, ICML 2012")
    relative_contrast_ci: tuple = _field("95 % percentile-bootstrap interval of that median.")
    expansion_median: float = _field(
        "Median over queries of E_2k = D_2k / D_k; near 1 means doubling k barely widens the ball (hard).",
        "Aumueller & Ceccarello, SISAP 2019 / Inf. Syst. 2021")
    expansion_ci: tuple = _field("95 % percentile-bootstrap interval of that median.")
    n_zero_distance: int = _field(
        "Sampled queries whose k-th neighbour is at distance 0 (duplicates); their ratios are undefined "
        "and left out of the medians.", default=0)
    query_indices: np.ndarray = _field("Rows used as queries.", default=None, summary=False)
    relative_contrast: np.ndarray = _field("RC_k of each query (NaN where undefined).", default=None, summary=False)
    expansion: np.ndarray = _field("E_2k of each query (NaN where undefined).", default=None, summary=False)


def concentration_report(data, *, k: int = 10, metric: str = "cosine", sample: int | None = 2000,
                         random_state=0, backend: str = "auto") -> ConcentrationReport:
    """Relative contrast and expansion of a random sample of queries.

    For each sampled query q (a row of the set, itself excluded):
    ``RC_k(q) = mean_x d(q, x) / d(q, x_(k))`` and ``E_2k(q) = d(q, x_(2k)) / d(q, x_(k))``,
    where x_(j) is q's j-th nearest neighbour and the mean runs over the whole corpus. Both approach
    1 as distances concentrate (high intrinsic dimension), which makes the query hard for any index.
    Medians carry 95 % percentile-bootstrap intervals over the sampled queries.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    k : int
        Neighbour rank; the search retrieves 2k neighbours (so 2k <= n - 1).
    metric : {"cosine", "euclidean"}
        Chord distance between unit vectors for cosine. ``"dot"`` is refused: -<x, y> is not a
        distance, so neither ratio has a meaning.
    sample : int or None
        Number of random queries; None (or a number >= n) uses every point.
    random_state : int, Generator or None
        Seed for the query sample and the bootstrap.
    backend : str
        Passed to :func:`exact_knn`.

    Returns
    -------
    ConcentrationReport
        Queries whose k-th neighbour distance is 0 (exact duplicates) have undefined ratios: they
        are NaN in the per-query arrays, left out of the medians and counted in ``n_zero_distance``.

    References
    ----------
    He, Kumar, Chang, "On the difficulty of nearest neighbor search", ICML 2012 (relative contrast).
    Aumueller, Ceccarello, "The role of local intrinsic dimensionality in benchmarking nearest neighbor
    search", SISAP 2019; "The role of local dimensionality measures in benchmarking nearest neighbor
    search", Information Systems 101, 2021 (per-query RC and expansion).
    Beyer, Goldstein, Ramakrishnan, Shaft, "When is 'nearest neighbor' meaningful?", ICDT 1999.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rep = concentration_report(rng.normal(size=(400, 100)), k=5, sample=100)
    >>> 1.0 < rep.relative_contrast_median < 1.5
    True
    """
    data = as_embedding_set(data)
    metric = check_distance_metric(metric, "concentration_report (relative contrast and expansion)")
    k = check_k(k, data.n - 1, context="neighbours (self excluded)")
    check_k(2 * k, data.n - 1, what="2k", context="neighbours (self excluded) for the expansion D_2k/D_k")
    rng = check_random_state(random_state)
    queries = sample_rows(data.n, sample, rng)
    queries = np.arange(data.n, dtype=np.int64) if queries is None else queries

    table = exact_knn(data.vectors, k=2 * k, metric=metric, query_indices=queries, mean_distance=True,
                      backend=backend, progress=False)
    return concentration_from_table(table, k, metric, queries, rng)


def concentration_from_table(table: Neighbors, k: int, metric: str, queries: np.ndarray, rng) -> ConcentrationReport:
    """:func:`concentration_report` from an exact table of the queries' 2k neighbours with mean distances."""
    rc, ex = relative_contrast(table, k), expansion(table, k)
    zero = zero_kth_distance(table, k)  # the rule rc and ex are NaN by
    rc_ok, ex_ok = rc[np.isfinite(rc)], ex[np.isfinite(ex)]
    return ConcentrationReport(
        k=k, metric=metric, sample_size=len(queries),
        relative_contrast_median=float(np.median(rc_ok)) if len(rc_ok) else math.nan,
        relative_contrast_ci=median_ci(rc_ok, random_state=rng),
        expansion_median=float(np.median(ex_ok)) if len(ex_ok) else math.nan,
        expansion_ci=median_ci(ex_ok, random_state=rng),
        n_zero_distance=int(zero.sum()),
        query_indices=queries, relative_contrast=rc, expansion=ex,
    )
