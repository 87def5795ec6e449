"""The intrinsic-dimension report: TwoNN, MLE, local ID, PCA dimension and their scale dependence, from
one neighbour table (see :mod:`.dimension_estimators` for the estimators and how duplicates are
treated: every estimator, curve included, runs on the distinct points; :mod:`.scale` for the curves)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import (
    EmbeddingInputError,
    Result,
    check_confidence,
    check_distance_metric,
    check_n_boot,
    check_random_state,
    metric as _field,
    pca_dimension,
)
from ..embeddings import as_embedding_set
from ..neighbors import copy_groups, distinct_neighbors, local_intrinsic_dimension_from_distances
from .dimension_estimators import (
    FACCO,
    LEVINA_BICKEL,
    _check_distinct,
    _check_mle_k,
    _mle_from_distances,
    _n_groups,
    _neighbors,
    _per_row,
    _readonly,
    _sample_groups,
    _twonn_from_distances,
)
from .scale import decimation_curve, gride_curve, scale_warning

_GRIDE = "Denti, Doimo, Laio & Mira, Sci. Rep. 2022"


@dataclass(frozen=True, repr=False)
class IntrinsicDimensionReport(Result):
    """Intrinsic dimension of an embedding set by several estimators, with their reliability."""

    _title = "intrinsic dimension"
    metric: str = _field("Distance used: chord between unit vectors (cosine) or euclidean.")
    n: int = _field("Rows in the set (copies included).")
    sample_size: int = _field("Distinct query points used by the per-point estimators (every distinct point "
                              "when no sample).")
    k: int = _field("Neighbours per point for the MLE and the local ID.")
    twonn: float = _field("TwoNN maximum-likelihood estimate.", FACCO)
    twonn_ci: np.ndarray = _field("Bootstrap percentile interval (low, high) of the TwoNN estimate.", "Efron, 1979")
    twonn_linefit: float = _field("TwoNN by the line fit of the paper, top 10 % of ratios discarded.", FACCO)
    mle: float = _field("Levina-Bickel MLE, global value = inverse of the mean inverse.", LEVINA_BICKEL)
    mle_ci: np.ndarray = _field("Bootstrap percentile interval (low, high) of the MLE.", "Efron, 1979")
    pca_90: int = _field("Principal components needed to explain 90 % of the variance.")
    pca_95: int = _field("Principal components needed to explain 95 % of the variance.")
    pca_99: int = _field("Principal components needed to explain 99 % of the variance.")
    lid_median: float = _field("Median local intrinsic dimension over the distinct query points.", LEVINA_BICKEL)
    lid: np.ndarray = _field("Local ID per row (per query point with a sample; Levina-Bickel m_k(x)); a copy gets "
                             "that of the point it copies.", LEVINA_BICKEL, summary=False)
    lid_form: str = _field("Which local estimator: 'mle' (k - 1 normalisation) or 'hill' (k).")
    n_duplicates: int = _field("Rows that are a copy of another row (distance 0); one copy of each was used.")
    scale_n: np.ndarray = _field("Points per subsample of the decimation curve (n, n/2, n/4, ...).", FACCO)
    scale_twonn: np.ndarray = _field("TwoNN estimate at each subsample size (pooled over disjoint blocks).", FACCO)
    scale_twonn_std: np.ndarray = _field("Spread (std) of the per-block TwoNN estimates; NaN for one block.")
    scale_distance: np.ndarray = _field("Median second-neighbour distance at each subsample size.")
    gride_n1: np.ndarray = _field("Neighbour ranks n1 of the GRIDE curve (n2 = 2 n1).", _GRIDE)
    gride_dimension: np.ndarray = _field("GRIDE estimate at each rank pair (n1, 2 n1).", _GRIDE)
    gride_distance: np.ndarray = _field("Median distance to the (2 n1)-th neighbour at each rank.")
    warnings: tuple = _field("Reasons to doubt the numbers.", default=())
    sample_indices: np.ndarray | None = _field("Rows used as queries when sample= was given (each the first row "
                                               "of its group of copies).", default=None, summary=False)


# --------------------------------------------------------------------------------------------- report


class _DistinctPoints:
    """The distinct points of a set as the decimation curve reads them (``n``, ``dim``, ``vectors[rows]``):
    ``vectors[rows]`` reads only those representatives' rows, never a copy of the whole set."""

    def __init__(self, es, reps: np.ndarray):
        self.n, self.dim, self._vectors, self._reps = len(reps), es.dim, es.vectors, reps

    @property
    def vectors(self):
        return self

    def __getitem__(self, rows):
        return np.asarray(self._vectors[self._reps[rows]])


def _given_sample(sample_neighbors, n: int, k_table: int, metric: str):
    """The caller's ``(rows, Neighbors)``: exact neighbours of ``rows`` in the whole set, checked."""
    try:
        rows, table = sample_neighbors
    except (TypeError, ValueError):
        raise EmbeddingInputError("sample_neighbors must be a pair (rows, Neighbors)") from None
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or len(rows) != table.n_queries or len(rows) < 2 or rows.min() < 0 or rows.max() >= n:
        raise EmbeddingInputError(f"sample_neighbors: {len(rows)} rows in [0, {n}) for a table of "
                                  f"{table.n_queries} queries; need one row per query, at least 2")
    if table.metric != metric or not table.exact or table.k < k_table:
        raise EmbeddingInputError(f"sample_neighbors must be an exact {metric} table with at least {k_table} "
                                  f"columns; got {'exact' if table.exact else 'approximate'} {table.metric}, "
                                  f"{table.k} columns")
    return rows, table


def intrinsic_dimension(
    data,
    *,
    metric: str = "cosine",
    k: int = 10,
    bootstrap: int = 200,
    confidence: float = 0.95,
    random_state=0,
    sample: int | None = None,
    lid_form: str = "mle",
    scale_levels: int = 6,
    gride_max_rank: int = 32,
    sample_neighbors: tuple | None = None,
) -> IntrinsicDimensionReport:
    """Intrinsic dimension of an embedding set by TwoNN, MLE, PCA, local ID and across scales.

    One neighbour table with ``max(k, gride_max_rank)`` columns is searched (or taken from the set's
    cache) and every distance-based estimator reads it: TwoNN (first two columns, Facco et al., 2017),
    the Levina-Bickel MLE and the per-point local ID (first k columns), and GRIDE at rank pairs
    (n1, 2 n1) (Denti et al., 2022). The decimation curve repeats TwoNN on disjoint subsamples of
    n / 2, n / 4, ... points. PCA dimensions come from the covariance spectrum (of the unit vectors
    under cosine). Confidence intervals are bootstrap percentile intervals over the per-point
    quantities (``log mu`` for TwoNN, ``1 / m_k(x)`` for the MLE).

    Duplicates: every distance-based estimator and curve runs on the distinct points (one copy of each
    group of copies, see :mod:`.dimension_estimators`), so the numbers are those of the deduplicated
    rows; a copy's local ID is that of the point it copies. The PCA dimensions keep every row (the
    covariance weighs a point by its multiplicity, which is well defined).

    Warnings flag duplicates, an estimate above ``2 log10(n)`` (too few points to resolve it, after
    Eckmann & Ruelle, 1992), and an estimate that changes by more than 25 % across scales.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        The points. An EmbeddingSet's cached k-NN table is reused (and filled).
    metric : {"cosine", "euclidean"}
        ``"cosine"`` uses chord distances between unit vectors; ``"dot"`` is refused.
    k : int
        Neighbours per point for the MLE and local ID (at least 2).
    bootstrap : int
        Resamples for the confidence intervals; 0 skips them.
    confidence : float
        Coverage of the intervals.
    random_state : int, Generator or None
        Seeds the query sample, the decimation blocks and the bootstrap.
    sample : int, optional
        Use this many random distinct points as queries for the per-point estimators; their
        neighbours are searched in the full set (``exact_knn`` with ``query_indices``), so the cost is
        ``sample x n`` instead of ``n x n``; all points when ``sample`` is at least the number of
        distinct points. The intervals then include the sampling error.
    lid_form : {"mle", "hill"}
        Local ID normalisation, see :func:`local_intrinsic_dimension`.
    scale_levels : int
        Subsample sizes n, n / 2, ... of the decimation curve (stopped below 64 points).
    gride_max_rank : int
        Largest neighbour rank of the GRIDE curve (n2 = 2 n1 <= this).
    sample_neighbors : (rows, Neighbors), optional
        Exact neighbours (under ``metric``, at least ``max(k, gride_max_rank)`` columns) of the query
        ``rows`` in the whole set, from a search the caller has already run (the sampled report's one
        query search): used instead of searching ``sample`` queries again. Rows that copy another row
        are dropped from it (so that every distinct point had the same chance to be sampled), and a
        list that copies filled is searched again among the distinct points.

    Returns
    -------
    IntrinsicDimensionReport

    References
    ----------
    Facco, d'Errico, Rodriguez & Laio, Scientific Reports 7, 12140 (2017) (TwoNN, decimation).
    Levina & Bickel, NIPS 17 (2005); MacKay & Ghahramani (2005) (MLE and its global average).
    Amsaleg et al., "Estimating local intrinsic dimensionality", KDD 2015 (Hill form of local ID).
    Denti, Doimo, Laio & Mira, Scientific Reports 12, 20005 (2022) (GRIDE).
    Eckmann & Ruelle, "Fundamental limitations for estimating dimensions and Lyapunov exponents in
    dynamical systems", Physica D 56, 185-187 (1992) (the 2 log10(n) bound).

    Examples
    --------
    >>> import numpy as np
    >>> from embgeo.analysis import intrinsic_dimension
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.normal(size=(2000, 2)) @ np.linalg.qr(rng.normal(size=(32, 2)))[0].T
    >>> report = intrinsic_dimension(plane, metric="euclidean", bootstrap=50)
    >>> round(report.twonn), round(report.mle), report.pca_99
    (2, 2, 2)
    """
    metric = check_distance_metric(metric, "intrinsic dimension")
    n_boot, confidence = check_n_boot(bootstrap), check_confidence(confidence)
    if lid_form not in ("mle", "hill"):
        raise EmbeddingInputError(f"lid_form must be 'mle' or 'hill', got {lid_form!r}")
    for name, value, least in (("scale_levels", scale_levels, 1), ("gride_max_rank", gride_max_rank, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise EmbeddingInputError(f"{name} must be an integer >= {least}, got {value!r}")
    es = as_embedding_set(data)
    k = _check_mle_k(k, es.n)
    rng = check_random_state(random_state)
    labels = copy_groups(es.vectors)
    _check_distinct(k + 1, labels, f"intrinsic dimension with k={k}")
    k_table = max(k, min(gride_max_rank, _n_groups(labels) - 1), 2)
    if sample_neighbors is None:
        rows = _sample_groups(labels, sample, rng)
        dn = _neighbors(es, k_table, metric, labels, rows)  # the one neighbour search; columns sliced below
    else:
        rows, table = _given_sample(sample_neighbors, es.n, k_table, metric)
        keep = np.flatnonzero(labels[rows] == rows)  # a sampled copy is dropped: its point has its own chance
        if len(keep) < 3:
            raise EmbeddingInputError(f"sample_neighbors: only {len(keep)} of its {len(rows)} rows are distinct "
                                      "points (the rest copy another row); TwoNN needs at least 3")
        dn = distinct_neighbors(es.vectors, k_table, metric, rows=rows[keep], table=table.rows(keep), labels=labels)
    dist = dn.distances.astype(np.float64)
    n_d, n_copies = dn.n_distinct, dn.n_copies

    two = _twonn_from_distances(dist[:, :2], metric, n_d, 0.1, n_boot, confidence, rng, n_copies)
    mle = _mle_from_distances(dist[:, :k], metric, n_d, n_boot, confidence, rng, n_copies)
    lid = local_intrinsic_dimension_from_distances(dist[:, :k], form=lid_form)
    lid_median = float(np.nanmedian(lid)) if np.isfinite(lid).any() else math.nan  # over the distinct points
    # the spectrum of the rows (unit vectors under cosine), from the set's cached moments
    # (Moments.eigenvalues: from the n x n side when n < d, so wide data never builds a d x d matrix)
    eig = np.clip(es.moments(normalize=metric == "cosine").eigenvalues(), 0.0, None)
    points, queries = es, (None if rows is None else dn.rows)
    if n_copies:  # the curves on the distinct points too: the rows a deduplicated set would have
        reps = np.flatnonzero(dn.labels == np.arange(es.n))
        points, queries = _DistinctPoints(es, reps), (None if rows is None else np.searchsorted(reps, dn.rows))
    scale_n, scale_d, scale_sd, scale_r = decimation_curve(points, metric, dist, queries, scale_levels, rng)
    g_n1, g_d, g_r = gride_curve(dist, gride_max_rank)
    if rows is None:
        lid = _per_row(lid, dn, np.arange(es.n))  # every row, a copy with its point's value

    notes = list(two.warnings)  # duplicates and the sample-size bound, said once
    notes += [w for w in mle.warnings if w.startswith("MLE")]
    notes += scale_warning(scale_d, "TwoNN decimation") + scale_warning(g_d, "GRIDE")
    return IntrinsicDimensionReport(
        metric=metric, n=es.n, sample_size=int(len(dn.rows)), k=k,
        twonn=two.dimension, twonn_ci=two.ci, twonn_linefit=two.dimension_linefit,
        mle=mle.dimension, mle_ci=mle.ci,
        pca_90=pca_dimension(eig, 0.90), pca_95=pca_dimension(eig, 0.95), pca_99=pca_dimension(eig, 0.99),
        lid_median=lid_median, lid=_readonly(lid), lid_form=lid_form, n_duplicates=two.n_duplicates,
        scale_n=_readonly(scale_n), scale_twonn=_readonly(scale_d), scale_twonn_std=_readonly(scale_sd),
        scale_distance=_readonly(scale_r),
        gride_n1=_readonly(g_n1), gride_dimension=_readonly(g_d), gride_distance=_readonly(g_r),
        warnings=tuple(notes), sample_indices=None if rows is None else _readonly(dn.rows.copy()),
    )
