"""The intrinsic-dimension estimators one at a time: TwoNN, the Levina-Bickel MLE and local ID.

Every distance-based estimator here reads the k-nearest-neighbour table of the shared engine
(:meth:`EmbeddingSet.neighbors`, or :func:`exact_knn` with ``query_indices`` for a query sample), through
:func:`~embgeo.analysis.neighbors.distinct_neighbors`, which skips copies (below). Under
``metric="cosine"`` the distance is the chord ``||u_i - u_j||`` between unit vectors (``1 - cos`` is a
squared distance and would halve every estimate); ``metric="dot"`` is refused because an inner
product is not a distance.

Duplicates. A copy of a point is not a second point: every estimator here runs on the distinct points
of the set. Rows are copies when they are identical float32 rows, or when a neighbour list puts them
at distance 0 under the metric (to within ``1e-6`` times the median distance to the second distinct
neighbour, which absorbs the float32 rounding of normalised vectors: under cosine ``x`` and ``3 x`` are
one point); near-duplicates farther apart stay points (:mod:`embgeo.analysis.neighbors.copies`).
Each group of copies is represented by its lowest row, each point's neighbour list skips its own
copies and lists every distinct neighbour once (searched again among the representatives where the
copies filled the shared table), so the estimates equal, to float rounding, those on the
deduplicated rows; a query sample is drawn among the distinct points. ``n_duplicates`` counts the
rows that copy another, a warning says so, and a copy gets the local ID of the point it copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import (
    EmbeddingInputError,
    Result,
    bootstrap as _bootstrap,
    check_confidence,
    check_distance_metric,
    check_k,
    check_n_boot,
    check_random_state,
    metric as _field,
    percentile_interval,
    sample_rows,
)
from ..embeddings import EmbeddingSet, as_embedding_set
from ..neighbors import (
    DistinctNeighbors,
    copy_groups,
    distinct_neighbors,
    levina_bickel_inverse,
    local_intrinsic_dimension_from_distances,
)
from ._estimators import twonn_mle

FACCO = "Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 2017"
LEVINA_BICKEL = "Levina & Bickel, NIPS 2005; MacKay & Ghahramani, 2005"


@dataclass(frozen=True, repr=False)
class TwoNNResult(Result):
    """TwoNN intrinsic dimension of one set of points."""

    _title = "TwoNN intrinsic dimension"
    dimension: float = _field("Maximum-likelihood TwoNN estimate (n - 1) / sum log(r2 / r1).", FACCO)
    dimension_linefit: float = _field(
        "Slope through the origin of -log(1 - F(mu)) against log mu, largest ratios discarded.", FACCO)
    ci: np.ndarray = _field("Bootstrap percentile interval (low, high); NaN when bootstrap=0.", "Efron, 1979")
    n_used: int = _field("Distinct points whose ratio entered the estimate (one copy of each).")
    n_duplicates: int = _field("Rows that are a copy of another row (distance 0); one copy of each was used.")
    discard_fraction: float = _field("Share of the largest ratios left out of the line fit.")
    warnings: tuple = _field("Reasons to doubt the number.", default=())


@dataclass(frozen=True, repr=False)
class MLEResult(Result):
    """Levina-Bickel maximum-likelihood intrinsic dimension, averaged over points."""

    _title = "Levina-Bickel MLE intrinsic dimension"
    dimension: float = _field("Inverse of the mean inverse of the per-point estimates m_k(x).", LEVINA_BICKEL)
    ci: np.ndarray = _field("Bootstrap percentile interval (low, high); NaN when bootstrap=0.", "Efron, 1979")
    k: int = _field("Neighbours per point.")
    n_used: int = _field("Distinct points entering the average (one copy of each).")
    n_duplicates: int = _field("Rows that are a copy of another row (distance 0); one copy of each was used.")
    warnings: tuple = _field("Reasons to doubt the number.", default=())


# --------------------------------------------------------------------------------------------- helpers


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _n_groups(labels: np.ndarray) -> int:
    return int(np.count_nonzero(labels == np.arange(len(labels))))


def _check_distinct(need: int, labels: np.ndarray, what: str) -> None:
    """Refuse a set with fewer than ``need`` distinct points, counting distinct points and copies."""
    n_d, n = _n_groups(labels), len(labels)
    if n_d < need:
        raise EmbeddingInputError(
            f"only {n_d} distinct point{'' if n_d == 1 else 's'} among {n} rows ({n - n_d} are duplicates of another "
            f"row); {what} needs at least {need} distinct points: add points, or check why the rows repeat")


def _sample_groups(labels: np.ndarray, sample, rng) -> np.ndarray | None:
    """``sample`` random distinct points (their representative rows, sorted), or None for all of them:
    the rows a deduplicated set would draw with the same generator."""
    reps = np.flatnonzero(labels == np.arange(len(labels)))
    pick = sample_rows(len(reps), sample, rng, minimum=2)
    return None if pick is None else reps[pick]


def _neighbors(es: EmbeddingSet, k: int, metric: str, labels: np.ndarray, rows) -> DistinctNeighbors:
    """The k nearest distinct points of every distinct point (``rows`` None: read off the set's shared
    table, searched again only where copies filled a list) or of the representative ``rows``."""
    table = es.neighbors(k, metric=metric) if rows is None else None
    return distinct_neighbors(es.vectors, k, metric, rows=rows, table=table, labels=labels)


def _per_row(values: np.ndarray, dn: DistinctNeighbors, rows: np.ndarray) -> np.ndarray:
    """A per-point value of ``dn.rows`` for each of ``rows``: a copy gets its representative's."""
    return values[np.searchsorted(dn.rows, dn.labels[rows])]






def _twonn_linefit(log_mu: np.ndarray, discard_fraction: float) -> float:
    """Facco et al.'s fit: -log(1 - F(mu)) = d log mu through the origin, largest ratios left out.

    F is the empirical distribution over all N ratios, F(mu_(i)) = i / N, and only the
    ``N (1 - discard_fraction)`` smallest ratios enter the least-squares fit (which keeps
    F < 1, where the log is finite).
    """
    n_all = len(log_mu)
    n_keep = int(n_all * (1.0 - discard_fraction))
    n_keep = min(n_keep, n_all - 1)  # F = 1 at the largest ratio: -log(0) is infinite
    if n_keep < 2:
        return math.nan
    x = np.sort(log_mu)[:n_keep]
    y = -np.log1p(-np.arange(1, n_keep + 1) / n_all)
    denom = float(x @ x)
    return float(x @ y) / denom if denom > 0 else math.inf






def _no_ci() -> np.ndarray:
    return _readonly(np.full(2, np.nan))




def _twonn_ci(log_mu, n_boot, confidence, rng) -> np.ndarray:
    if n_boot == 0 or len(log_mu) < 2:
        return _no_ci()
    sums = _bootstrap(log_mu, lambda r: r.sum(axis=1), n_boot, rng)
    with np.errstate(divide="ignore"):
        return percentile_interval((len(log_mu) - 1) / sums, confidence)


def _mle_ci(inverses, n_boot, confidence, rng) -> np.ndarray:
    if n_boot == 0 or len(inverses) < 2:
        return _no_ci()
    sums = _bootstrap(inverses, lambda r: r.sum(axis=1), n_boot, rng)
    with np.errstate(divide="ignore"):
        return percentile_interval(len(inverses) / sums, confidence)


def _duplicate_warning(n_copies: int, n_rows: int, metric: str) -> list[str]:
    if n_copies == 0:
        return []
    return [
        f"{n_copies} of {n_rows} rows ({100 * n_copies / n_rows:.2g} %) are duplicates (a copy of another row, "
        f"{metric} distance 0): TwoNN, MLE and local ID used one copy of each, {n_rows - n_copies} distinct "
        "points, and give a copy the local ID of the point it copies. Check why the data repeat (e.g. "
        "duplicated texts)"
    ]


def _sample_size_warning(dimension: float, n: int, name: str) -> list[str]:
    """Eckmann & Ruelle (1992): with n points, dimensions above about 2 log10(n) cannot be resolved."""
    bound = 2.0 * math.log10(n)
    if not math.isfinite(dimension) or dimension <= bound:
        return []
    return [
        f"{name} = {dimension:.3g} exceeds 2 log10(n) = {bound:.3g}: {n} points are too few to resolve a "
        f"dimension this high (needs n >~ 10^(d/2) = {10 ** (dimension / 2):.3g}; Eckmann & Ruelle, 1992), "
        "so read it as a lower bound"
    ]


# --------------------------------------------------------------------------------------------- TwoNN


def _twonn_from_distances(dist, metric, n_corpus, discard_fraction, n_boot, confidence, rng,
                          n_copies: int = 0) -> TwoNNResult:
    """TwoNN from the distances of distinct query points to their 2 nearest distinct points;
    ``n_corpus`` distinct points in the set, ``n_copies`` rows that copied one of them."""
    log_mu = np.log(dist[:, 1] / dist[:, 0])
    if len(log_mu) < 3:
        raise EmbeddingInputError(f"only {len(log_mu)} distinct query points; TwoNN needs at least 3 (sample more "
                                  "points)")
    d = twonn_mle(log_mu)
    notes = _duplicate_warning(n_copies, n_corpus + n_copies, metric) + _sample_size_warning(d, n_corpus, "TwoNN")
    return TwoNNResult(
        dimension=float(d),
        dimension_linefit=_twonn_linefit(log_mu, discard_fraction),
        ci=_twonn_ci(log_mu, n_boot, confidence, rng),
        n_used=int(len(log_mu)),
        n_duplicates=int(n_copies),
        discard_fraction=float(discard_fraction),
        warnings=tuple(notes),
    )


def twonn(
    data,
    *,
    metric: str = "cosine",
    discard_fraction: float = 0.1,
    bootstrap: int = 200,
    confidence: float = 0.95,
    random_state=0,
    sample: int | None = None,
) -> TwoNNResult:
    """TwoNN intrinsic dimension from the ratio of second to first nearest-neighbour distances.

    For each point, ``mu = r2 / r1``. If the density is locally uniform on a d-dimensional manifold,
    mu follows a Pareto law with ``P(mu > x) = x^(-d)``, so ``log mu`` is exponential with rate d.
    ``dimension`` is the unbiased maximum-likelihood estimate ``(N - 1) / sum log mu``;
    ``dimension_linefit`` is the estimator of the paper: a least-squares line through the origin of
    ``-log(1 - F(mu))`` against ``log mu`` after discarding the largest ``discard_fraction`` of ratios
    (F is the empirical distribution over all N ratios, ``F(mu_(i)) = i / N``).

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        The points. An EmbeddingSet's cached k-NN table is reused (and filled).
    metric : {"cosine", "euclidean"}
        ``"cosine"`` uses chord distances between unit vectors; ``"dot"`` is refused.
    discard_fraction : float
        Share of the largest ratios left out of the line fit (0.1 as in the paper).
    bootstrap : int
        Resamples of the per-point ``log mu`` for the percentile interval; 0 skips it.
    confidence : float
        Coverage of the interval.
    random_state : int, Generator or None
        Seeds the bootstrap and the query sample.
    sample : int, optional
        Use this many random distinct points as queries (their neighbours searched among all distinct
        points); all points when ``sample`` is at least the number of distinct points.

    Returns
    -------
    TwoNNResult
        ``dimension``, ``dimension_linefit``, ``ci``, ``n_used``, ``n_duplicates`` and ``warnings``.

    References
    ----------
    Facco, d'Errico, Rodriguez & Laio, "Estimating the intrinsic dimension of datasets by a minimal
    neighborhood information", Scientific Reports 7, 12140 (2017).
    Denti, Doimo, Laio & Mira, "The generalized ratios intrinsic dimension estimator", Scientific
    Reports 12, 20005 (2022) (the (N - 1) unbiased form of the maximum-likelihood estimate).

    Examples
    --------
    >>> import numpy as np
    >>> from embgeo.analysis import twonn
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.normal(size=(2000, 2)) @ np.linalg.qr(rng.normal(size=(32, 2)))[0].T
    >>> round(twonn(plane, metric="euclidean", bootstrap=0).dimension)
    2
    """
    metric = check_distance_metric(metric, "intrinsic dimension")
    if not 0 <= discard_fraction < 1:
        raise EmbeddingInputError(f"discard_fraction must lie in [0, 1), got {discard_fraction!r}")
    n_boot, confidence = check_n_boot(bootstrap), check_confidence(confidence)
    es = as_embedding_set(data)
    rng = check_random_state(random_state)
    check_k(2, es.n - 1, context="neighbours (self excluded); TwoNN needs at least 3 points")
    labels = copy_groups(es.vectors)
    _check_distinct(3, labels, "TwoNN")
    dn = _neighbors(es, 2, metric, labels, _sample_groups(labels, sample, rng))
    return _twonn_from_distances(dn.distances.astype(np.float64), metric, dn.n_distinct, discard_fraction, n_boot,
                                 confidence, rng, dn.n_copies)


# --------------------------------------------------------------------------------------------- MLE


def _check_mle_k(k, n: int) -> int:
    k = check_k(k, n - 1, context="neighbours (self excluded)")
    if k < 2:
        raise EmbeddingInputError(f"the Levina-Bickel MLE needs k >= 2 neighbours, got k={k}")
    return k


def _mle_from_distances(dist, metric, n_corpus, n_boot, confidence, rng, n_copies: int = 0) -> MLEResult:
    """The MLE from the distances of distinct query points to their k nearest distinct points."""
    inv = levina_bickel_inverse(dist)
    if len(inv) < 2:
        raise EmbeddingInputError(f"only {len(inv)} distinct query points; the MLE needs at least 2 (sample more "
                                  "points)")
    mean_inv = float(inv.mean())
    d = 1.0 / mean_inv if mean_inv > 0 else math.inf
    notes = _duplicate_warning(n_copies, n_corpus + n_copies, metric) + _sample_size_warning(d, n_corpus, "MLE")
    return MLEResult(
        dimension=float(d), ci=_mle_ci(inv, n_boot, confidence, rng), k=int(dist.shape[1]),
        n_used=int(len(inv)), n_duplicates=int(n_copies), warnings=tuple(notes),
    )


def mle_dimension(
    data,
    *,
    metric: str = "cosine",
    k: int = 10,
    bootstrap: int = 200,
    confidence: float = 0.95,
    random_state=0,
    sample: int | None = None,
) -> MLEResult:
    """Levina-Bickel maximum-likelihood intrinsic dimension, averaged as MacKay and Ghahramani advise.

    At each point x with neighbour distances ``T_1 <= ... <= T_k``,
    ``m_k(x) = [ (1 / (k - 1)) sum_{j=1}^{k-1} log(T_k / T_j) ]^(-1)``. The global estimate averages
    the inverses ``1 / m_k(x)`` over points and inverts the mean (MacKay & Ghahramani, 2005), which is
    the maximum-likelihood combination; averaging the ``m_k`` themselves is biased upwards.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        The points. An EmbeddingSet's cached k-NN table is reused (and filled).
    metric : {"cosine", "euclidean"}
        ``"cosine"`` uses chord distances between unit vectors; ``"dot"`` is refused.
    k : int
        Neighbours per point (at least 2).
    bootstrap : int
        Resamples of the per-point inverses for the percentile interval; 0 skips it.
    confidence : float
        Coverage of the interval.
    random_state : int, Generator or None
        Seeds the bootstrap and the query sample.
    sample : int, optional
        Use this many random distinct points as queries (their neighbours searched among all distinct
        points); all points when ``sample`` is at least the number of distinct points.

    Returns
    -------
    MLEResult
        ``dimension``, ``ci``, ``k``, ``n_used``, ``n_duplicates`` and ``warnings``.

    References
    ----------
    Levina & Bickel, "Maximum likelihood estimation of intrinsic dimension", NIPS 17 (2005).
    MacKay & Ghahramani, "Comments on 'Maximum likelihood estimation of intrinsic dimension' by
    E. Levina and P. Bickel" (2005).

    Examples
    --------
    >>> import numpy as np
    >>> from embgeo.analysis import mle_dimension
    >>> rng = np.random.default_rng(0)
    >>> cube = rng.uniform(size=(2000, 3)) @ np.linalg.qr(rng.normal(size=(32, 3)))[0].T
    >>> round(mle_dimension(cube, metric="euclidean", bootstrap=0).dimension)
    3
    """
    metric = check_distance_metric(metric, "intrinsic dimension")
    n_boot, confidence = check_n_boot(bootstrap), check_confidence(confidence)
    es = as_embedding_set(data)
    k = _check_mle_k(k, es.n)
    rng = check_random_state(random_state)
    labels = copy_groups(es.vectors)
    _check_distinct(k + 1, labels, f"the MLE with k={k}")
    dn = _neighbors(es, k, metric, labels, _sample_groups(labels, sample, rng))
    return _mle_from_distances(dn.distances.astype(np.float64), metric, dn.n_distinct, n_boot, confidence, rng,
                               dn.n_copies)


# --------------------------------------------------------------------------------------------- local ID




def local_intrinsic_dimension(
    data,
    *,
    metric: str = "cosine",
    k: int = 10,
    form: str = "mle",
    query_indices=None,
) -> np.ndarray:
    """Local intrinsic dimension of each point from the distances to its k nearest neighbours.

    ``form="mle"`` (default) is the Levina-Bickel estimate
    ``m_k(x) = [ (1 / (k - 1)) sum_{j=1}^{k-1} log(T_k / T_j) ]^(-1)``, whose harmonic mean over points
    is :func:`mle_dimension`. ``form="hill"`` is the Hill form of Amsaleg et al. (2015),
    ``-[ (1 / k) sum_{i=1}^{k} log(r_i / r_k) ]^(-1)``, which equals ``k / (k - 1)`` times the first.
    A copy of a point (see the module docstring) gets the local ID of the point it copies.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        The points. An EmbeddingSet's cached k-NN table is reused (and filled).
    metric : {"cosine", "euclidean"}
        ``"cosine"`` uses chord distances between unit vectors; ``"dot"`` is refused.
    k : int
        Neighbours per point (at least 2).
    form : {"mle", "hill"}
        Normalisation by ``k - 1`` (Levina-Bickel) or by ``k`` (Hill / Amsaleg et al.).
    query_indices : array-like of int, optional
        Rows whose local ID is wanted; their neighbours are searched in the full set. Default: all.

    Returns
    -------
    numpy.ndarray of shape (n,) or (len(query_indices),)
        float64 local ID (a copy's is that of the point it copies).

    References
    ----------
    Levina & Bickel, "Maximum likelihood estimation of intrinsic dimension", NIPS 17 (2005).
    Amsaleg, Chelly, Furon, Girard, Houle, Kawarabayashi & Nett, "Estimating local intrinsic
    dimensionality", KDD 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from embgeo.analysis import local_intrinsic_dimension
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.normal(size=(2000, 2)) @ np.linalg.qr(rng.normal(size=(32, 2)))[0].T
    >>> lid = local_intrinsic_dimension(plane, metric="euclidean", k=20)
    >>> round(float(np.median(lid)))
    2
    """
    metric = check_distance_metric(metric, "intrinsic dimension")
    if form not in ("mle", "hill"):
        raise EmbeddingInputError(f"form must be 'mle' (Levina-Bickel) or 'hill' (Amsaleg et al.), got {form!r}")
    es = as_embedding_set(data)
    k = _check_mle_k(k, es.n)
    rows = None
    if query_indices is not None:
        rows = np.asarray(query_indices).ravel()
        if rows.dtype.kind not in "iu" or rows.size == 0 or rows.min() < 0 or rows.max() >= es.n:
            raise EmbeddingInputError(
                f"query_indices must be a non-empty array of row numbers in [0, {es.n}); got "
                f"dtype {rows.dtype}, {rows.size} entries"
            )
    labels = copy_groups(es.vectors)
    _check_distinct(k + 1, labels, f"local ID with k={k}")
    dn = _neighbors(es, k, metric, labels, None if rows is None else np.unique(labels[rows]))
    lid = local_intrinsic_dimension_from_distances(dn.distances.astype(np.float64), form=form)
    return _per_row(lid, dn, np.arange(es.n) if rows is None else rows)
