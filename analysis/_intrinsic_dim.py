"""Intrinsic dimension: TwoNN, Levina-Bickel MLE, local ID, PCA dimension and their scale dependence.

Every distance-based estimator here reads the k-nearest-neighbour table of the shared engine
(:meth:`EmbeddingSet.neighbors`, or :func:`exact_knn` with ``query_indices`` for a query sample), so a
full report searches neighbours once. Under ``metric="cosine"`` the distance is the chord
``||u_i - u_j||`` between unit vectors (``1 - cos`` is a squared distance and would halve every
estimate); ``metric="dot"`` is refused because an inner product is not a distance.

Duplicates. A point whose nearest neighbour lies at distance 0 (to within ``1e-6`` times the median
distance to the second neighbour, which absorbs float32 rounding of normalised vectors) has an
undefined ratio ``r2 / r1``. Such points are left out of TwoNN, MLE and local ID (their local ID is
NaN), counted in ``n_duplicates``, and a warning says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ._embedding_set import EmbeddingSet
from ._knn import exact_knn
from ._results import Result, metric as _field
from ._validation import (
    EmbeddingInputError,
    check_k,
    check_metric,
    check_random_state,
)

#: A nearest-neighbour distance at most this times the median second-neighbour distance is a duplicate.
DUPLICATE_RTOL = 1e-6
#: Bootstrap resamples drawn at once are bounded so that (resamples x points) stays near this size.
_BOOTSTRAP_CHUNK_ITEMS = 4_000_000
#: Smallest subsample (points per block) used by the decimation scale curve.
_MIN_SCALE_POINTS = 64
#: A decimation block is copied out of the data (which may be memory-mapped); larger levels are skipped.
_MAX_BLOCK_BYTES = 1 << 30

_FACCO = "Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 2017"
_LB = "Levina & Bickel, NIPS 2005; MacKay & Ghahramani, 2005"
_GRIDE = "Denti, Doimo, Laio & Mira, Sci. Rep. 2022"


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, repr=False)
class TwoNNResult(Result):
    """TwoNN intrinsic dimension of one set of points."""

    _title = "TwoNN intrinsic dimension"
    dimension: float = _field("Maximum-likelihood TwoNN estimate (n - 1) / sum log(r2 / r1).", _FACCO)
    dimension_linefit: float = _field(
        "Slope through the origin of -log(1 - F(mu)) against log mu, largest ratios discarded.", _FACCO)
    ci: np.ndarray = _field("Bootstrap percentile interval (low, high); NaN when bootstrap=0.", "Efron, 1979")
    n_used: int = _field("Points whose ratio entered the estimate (duplicates removed).")
    n_duplicates: int = _field("Points at distance 0 from their nearest neighbour, left out.")
    discard_fraction: float = _field("Share of the largest ratios left out of the line fit.")
    warnings: tuple = _field("Reasons to doubt the number.", default=())


@dataclass(frozen=True, repr=False)
class MLEResult(Result):
    """Levina-Bickel maximum-likelihood intrinsic dimension, averaged over points."""

    _title = "Levina-Bickel MLE intrinsic dimension"
    dimension: float = _field("Inverse of the mean inverse of the per-point estimates m_k(x).", _LB)
    ci: np.ndarray = _field("Bootstrap percentile interval (low, high); NaN when bootstrap=0.", "Efron, 1979")
    k: int = _field("Neighbours per point.")
    n_used: int = _field("Points entering the average (duplicates removed).")
    n_duplicates: int = _field("Points at distance 0 from their nearest neighbour, left out.")
    warnings: tuple = _field("Reasons to doubt the number.", default=())


@dataclass(frozen=True, repr=False)
class IntrinsicDimensionReport(Result):
    """Intrinsic dimension of an embedding set by several estimators, with their reliability."""

    _title = "intrinsic dimension"
    metric: str = _field("Distance used: chord between unit vectors (cosine) or euclidean.")
    n: int = _field("Points in the set.")
    sample_size: int = _field("Query points used by the per-point estimators (n when no sample).")
    k: int = _field("Neighbours per point for the MLE and the local ID.")
    twonn: float = _field("TwoNN maximum-likelihood estimate.", _FACCO)
    twonn_ci: np.ndarray = _field("Bootstrap percentile interval (low, high) of the TwoNN estimate.", "Efron, 1979")
    twonn_linefit: float = _field("TwoNN by the line fit of the paper, top 10 % of ratios discarded.", _FACCO)
    mle: float = _field("Levina-Bickel MLE, global value = inverse of the mean inverse.", _LB)
    mle_ci: np.ndarray = _field("Bootstrap percentile interval (low, high) of the MLE.", "Efron, 1979")
    pca_90: int = _field("Principal components needed to explain 90 % of the variance.")
    pca_95: int = _field("Principal components needed to explain 95 % of the variance.")
    pca_99: int = _field("Principal components needed to explain 99 % of the variance.")
    lid_median: float = _field("Median local intrinsic dimension over the query points.", _LB)
    lid: np.ndarray = _field("Local ID per query point (Levina-Bickel m_k(x)); NaN for duplicates.", _LB)
    lid_form: str = _field("Which local estimator: 'mle' (k - 1 normalisation) or 'hill' (k).")
    n_duplicates: int = _field("Query points at distance 0 from their nearest neighbour, left out.")
    scale_n: np.ndarray = _field("Points per subsample of the decimation curve (n, n/2, n/4, ...).", _FACCO)
    scale_twonn: np.ndarray = _field("TwoNN estimate at each subsample size (pooled over disjoint blocks).", _FACCO)
    scale_twonn_std: np.ndarray = _field("Spread (std) of the per-block TwoNN estimates; NaN for one block.")
    scale_distance: np.ndarray = _field("Median second-neighbour distance at each subsample size.")
    gride_n1: np.ndarray = _field("Neighbour ranks n1 of the GRIDE curve (n2 = 2 n1).", _GRIDE)
    gride_dimension: np.ndarray = _field("GRIDE estimate at each rank pair (n1, 2 n1).", _GRIDE)
    gride_distance: np.ndarray = _field("Median distance to the (2 n1)-th neighbour at each rank.")
    warnings: tuple = _field("Reasons to doubt the numbers.", default=())
    sample_indices: np.ndarray | None = _field("Rows used as queries when sample= was given.", default=None)


# --------------------------------------------------------------------------------------------- helpers


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _as_set(data) -> EmbeddingSet:
    return data if isinstance(data, EmbeddingSet) else EmbeddingSet(data)


def _check_distance_metric(metric: str) -> str:
    metric = check_metric(metric)
    if metric == "dot":
        raise EmbeddingInputError(
            "intrinsic dimension needs a distance, and metric='dot' ranks by inner product, which is "
            "not one; use metric='cosine' (chord distance between unit vectors) or 'euclidean'"
        )
    return metric


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise EmbeddingInputError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def _check_bootstrap(bootstrap) -> int:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise EmbeddingInputError(f"bootstrap must be a non-negative number of resamples, got {bootstrap!r}")
    return int(bootstrap)


def _sample_rows(n: int, sample, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted random rows to use as queries, or None for all rows."""
    if sample is None:
        return None
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 2:
        raise EmbeddingInputError(f"sample must be an integer number of query points >= 2, got {sample!r}")
    if sample >= n:
        return None
    return np.sort(rng.choice(n, size=int(sample), replace=False))


def _distances(es: EmbeddingSet, k: int, metric: str, rows: np.ndarray | None) -> np.ndarray:
    """float64 distances to the k nearest neighbours of every point (or of ``rows``)."""
    if rows is None:
        return es.neighbors(k, metric=metric).distances.astype(np.float64)
    check_k(k, es.n - 1, context="neighbours (self excluded)")
    nb = exact_knn(es.vectors, k=k, metric=metric, query_indices=rows, progress=False)
    return nb.distances.astype(np.float64)


def _duplicate_mask(dist: np.ndarray) -> np.ndarray:
    """True where the nearest neighbour is (numerically) at distance 0; needs >= 2 columns."""
    tol = DUPLICATE_RTOL * float(np.median(dist[:, 1]))
    return dist[:, 0] <= tol


def _twonn_mle(log_mu: np.ndarray) -> float:
    """(N - 1) / sum log mu: the unbiased maximum-likelihood rate of the Pareto(1, d) law of mu."""
    total = float(np.sum(log_mu))
    return (len(log_mu) - 1) / total if total > 0 else math.inf


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


def _levina_bickel_inverse(dist: np.ndarray) -> np.ndarray:
    """Per point, 1 / m_k(x) = (1 / (k - 1)) sum_{j<k} log(T_k / T_j)  (Levina & Bickel, 2005)."""
    k = dist.shape[1]
    logs = np.log(dist[:, -1:] / dist[:, :-1])
    return logs.sum(axis=1) / (k - 1)


def _bootstrap_sums(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Sums of ``n_boot`` resamples (with replacement) of ``values``, drawn in bounded chunks."""
    n = len(values)
    out = np.empty(n_boot, dtype=np.float64)
    per_chunk = max(1, _BOOTSTRAP_CHUNK_ITEMS // max(n, 1))
    for start in range(0, n_boot, per_chunk):
        stop = min(n_boot, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].sum(axis=1)
    return out


def _no_ci() -> np.ndarray:
    return _readonly(np.full(2, np.nan))


def _percentile_ci(estimates: np.ndarray, confidence: float) -> np.ndarray:
    """(low, high) percentile interval as a read-only array of shape (2,)."""
    alpha = (1.0 - confidence) / 2.0
    return _readonly(np.quantile(estimates, [alpha, 1.0 - alpha]).astype(np.float64))


def _twonn_ci(log_mu, n_boot, confidence, rng) -> np.ndarray:
    if n_boot == 0 or len(log_mu) < 2:
        return _no_ci()
    sums = _bootstrap_sums(log_mu, n_boot, rng)
    with np.errstate(divide="ignore"):
        return _percentile_ci((len(log_mu) - 1) / sums, confidence)


def _mle_ci(inverses, n_boot, confidence, rng) -> np.ndarray:
    if n_boot == 0 or len(inverses) < 2:
        return _no_ci()
    sums = _bootstrap_sums(inverses, n_boot, rng)
    with np.errstate(divide="ignore"):
        return _percentile_ci(len(inverses) / sums, confidence)


def _duplicate_warning(n_dup: int, n_queries: int, metric: str) -> list[str]:
    if n_dup == 0:
        return []
    return [
        f"{n_dup} of {n_queries} points ({100 * n_dup / n_queries:.2g} %) have a duplicate (nearest "
        f"neighbour at {metric} distance 0); they were left out of TwoNN, MLE and local ID. Deduplicate "
        "the data to see the geometry of the rest"
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


def _twonn_from_distances(dist, metric, n_corpus, discard_fraction, n_boot, confidence, rng) -> TwoNNResult:
    dup = _duplicate_mask(dist)
    kept = dist[~dup]
    log_mu = np.log(kept[:, 1] / kept[:, 0])
    if len(log_mu) < 3:
        raise EmbeddingInputError(
            f"only {len(log_mu)} points are left after removing {int(dup.sum())} duplicates; TwoNN "
            "needs at least 3 distinct points"
        )
    d = _twonn_mle(log_mu)
    notes = _duplicate_warning(int(dup.sum()), len(dist), metric) + _sample_size_warning(d, n_corpus, "TwoNN")
    return TwoNNResult(
        dimension=float(d),
        dimension_linefit=_twonn_linefit(log_mu, discard_fraction),
        ci=_twonn_ci(log_mu, n_boot, confidence, rng),
        n_used=int(len(log_mu)),
        n_duplicates=int(dup.sum()),
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
        Use this many random points as queries (their neighbours searched in the full set); all
        points when ``sample >= n``.

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
    >>> from embgeo.analysis._intrinsic_dim import twonn
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.normal(size=(2000, 2)) @ np.linalg.qr(rng.normal(size=(32, 2)))[0].T
    >>> round(twonn(plane, metric="euclidean", bootstrap=0).dimension)
    2
    """
    metric = _check_distance_metric(metric)
    if not 0 <= discard_fraction < 1:
        raise EmbeddingInputError(f"discard_fraction must lie in [0, 1), got {discard_fraction!r}")
    n_boot, confidence = _check_bootstrap(bootstrap), _check_confidence(confidence)
    es = _as_set(data)
    rng = check_random_state(random_state)
    check_k(2, es.n - 1, context="neighbours (self excluded); TwoNN needs at least 3 points")
    rows = _sample_rows(es.n, sample, rng)
    dist = _distances(es, 2, metric, rows)
    return _twonn_from_distances(dist, metric, es.n, discard_fraction, n_boot, confidence, rng)


# --------------------------------------------------------------------------------------------- MLE


def _check_mle_k(k, n: int) -> int:
    k = check_k(k, n - 1, context="neighbours (self excluded)")
    if k < 2:
        raise EmbeddingInputError(f"the Levina-Bickel MLE needs k >= 2 neighbours, got k={k}")
    return k


def _mle_from_distances(dist, metric, n_corpus, n_boot, confidence, rng) -> MLEResult:
    dup = _duplicate_mask(dist)
    inv = _levina_bickel_inverse(dist[~dup])
    if len(inv) < 2:
        raise EmbeddingInputError(
            f"only {len(inv)} points are left after removing {int(dup.sum())} duplicates; the MLE needs "
            "at least 2 distinct points"
        )
    mean_inv = float(inv.mean())
    d = 1.0 / mean_inv if mean_inv > 0 else math.inf
    notes = _duplicate_warning(int(dup.sum()), len(dist), metric) + _sample_size_warning(d, n_corpus, "MLE")
    return MLEResult(
        dimension=float(d), ci=_mle_ci(inv, n_boot, confidence, rng), k=int(dist.shape[1]),
        n_used=int(len(inv)), n_duplicates=int(dup.sum()), warnings=tuple(notes),
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
        Use this many random points as queries (their neighbours searched in the full set); all
        points when ``sample >= n``.

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
    >>> from embgeo.analysis._intrinsic_dim import mle_dimension
    >>> rng = np.random.default_rng(0)
    >>> cube = rng.uniform(size=(2000, 3)) @ np.linalg.qr(rng.normal(size=(32, 3)))[0].T
    >>> round(mle_dimension(cube, metric="euclidean", bootstrap=0).dimension)
    3
    """
    metric = _check_distance_metric(metric)
    n_boot, confidence = _check_bootstrap(bootstrap), _check_confidence(confidence)
    es = _as_set(data)
    k = _check_mle_k(k, es.n)
    rng = check_random_state(random_state)
    rows = _sample_rows(es.n, sample, rng)
    dist = _distances(es, k, metric, rows)
    return _mle_from_distances(dist, metric, es.n, n_boot, confidence, rng)


# --------------------------------------------------------------------------------------------- local ID


def _lid_from_distances(dist: np.ndarray, form: str) -> np.ndarray:
    k = dist.shape[1]
    dup = _duplicate_mask(dist)
    lid = np.full(len(dist), np.nan)
    with np.errstate(divide="ignore"):
        lid[~dup] = 1.0 / _levina_bickel_inverse(dist[~dup])
    if form == "hill":
        lid *= k / (k - 1)
    return lid


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
    Points at distance 0 from their nearest neighbour (duplicates) get NaN.

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
        float64 local ID, NaN for duplicates.

    References
    ----------
    Levina & Bickel, "Maximum likelihood estimation of intrinsic dimension", NIPS 17 (2005).
    Amsaleg, Chelly, Furon, Girard, Houle, Kawarabayashi & Nett, "Estimating local intrinsic
    dimensionality", KDD 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from embgeo.analysis._intrinsic_dim import local_intrinsic_dimension
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.normal(size=(2000, 2)) @ np.linalg.qr(rng.normal(size=(32, 2)))[0].T
    >>> lid = local_intrinsic_dimension(plane, metric="euclidean", k=20)
    >>> round(float(np.median(lid)))
    2
    """
    metric = _check_distance_metric(metric)
    if form not in ("mle", "hill"):
        raise EmbeddingInputError(f"form must be 'mle' (Levina-Bickel) or 'hill' (Amsaleg et al.), got {form!r}")
    es = _as_set(data)
    k = _check_mle_k(k, es.n)
    rows = None
    if query_indices is not None:
        rows = np.asarray(query_indices).ravel()
        if rows.dtype.kind not in "iu" or rows.size == 0 or rows.min() < 0 or rows.max() >= es.n:
            raise EmbeddingInputError(
                f"query_indices must be a non-empty array of row numbers in [0, {es.n}); got "
                f"dtype {rows.dtype}, {rows.size} entries"
            )
    return _lid_from_distances(_distances(es, k, metric, rows), form)


# --------------------------------------------------------------------------------------------- PCA


def _pca_dimension(eigenvalues: np.ndarray, share: float) -> int:
    """Smallest number of leading components explaining at least ``share`` of the variance."""
    total = eigenvalues.sum()
    if total <= 0:
        return 0
    explained = np.cumsum(eigenvalues) / total
    return int(np.searchsorted(explained, share - 1e-12) + 1)


# --------------------------------------------------------------------------------------------- scale


def _gride(log_mu: np.ndarray, n1: int, n2: int) -> float:
    """GRIDE maximum-likelihood ID from ``log(r_n2 / r_n1)`` (Denti et al., 2022).

    The density of mu = r_n2 / r_n1 is d (mu^d - 1)^(n2-n1-1) / (B(n2-n1, n1) mu^((n2-1) d + 1)). The
    score (with (N - 1) in place of N, so that n1 = 1, n2 = 2 gives the unbiased TwoNN MLE) decreases
    monotonically in d, from +inf to -n1 sum log mu, so its single root is found by bracketing.
    """
    log_mu = log_mu[log_mu > 0]  # ties (mu = 1) carry no information and make the score 0/0
    n = len(log_mu)
    if n < 2:
        return math.nan
    s = float(log_mu.sum())

    def score(d):
        return (n - 1) / d + (n2 - n1 - 1) * np.sum(log_mu / -np.expm1(-d * log_mu)) - (n2 - 1) * s

    hi = 1.0
    while score(hi) > 0:
        if hi > 1e6:  # ratios indistinguishable from 1: no finite dimension fits
            return math.inf
        hi *= 2.0
    return float(brentq(score, 1e-9, hi, xtol=1e-10, rtol=1e-10))


def _gride_curve(dist: np.ndarray, max_rank: int):
    """GRIDE at (n1, 2 n1) for n1 = 1, 2, 4, ... while 2 n1 fits in the table and in ``max_rank``."""
    kept = dist[~_duplicate_mask(dist)]
    n1s, dims, scale = [], [], []
    n1 = 1
    while 2 * n1 <= min(max_rank, dist.shape[1]):
        n2 = 2 * n1
        with np.errstate(divide="ignore", invalid="ignore"):
            log_mu = np.log(kept[:, n2 - 1] / kept[:, n1 - 1])
        n1s.append(n1)
        dims.append(_gride(log_mu[np.isfinite(log_mu)], n1, n2))
        scale.append(float(np.median(kept[:, n2 - 1])))
        n1 *= 2
    return np.array(n1s, dtype=np.int64), np.array(dims), np.array(scale)


def _decimation_curve(es, metric, dist0, rows, levels, rng):
    """TwoNN on disjoint random blocks of n / 2^j points (Facco et al., 2017, decimation).

    Level 0 is the estimate from the main table. At level j the data are split into 2^j disjoint
    random blocks; each block's queries (all its points, or those in the query sample) get their two
    nearest neighbours within the block, the log-ratios are pooled for the estimate, and the per-block
    estimates give its spread. Blocks per level are capped at 16, which bounds the work, and a level
    whose block would exceed 1 GiB of float32 copied out of the data is skipped.
    """
    n = es.n
    in_sample = None
    if rows is not None:
        in_sample = np.zeros(n, dtype=bool)
        in_sample[rows] = True
    perm = rng.permutation(n)
    sizes, dims, spread, scale = [], [], [], []
    for j in range(levels):
        size = n >> j
        if size < _MIN_SCALE_POINTS and j > 0:
            break
        if j == 0:
            blocks_r = [dist0[~_duplicate_mask(dist0)][:, :2]]
        elif size * es.dim * 4 > _MAX_BLOCK_BYTES:
            continue
        else:
            blocks_r = []
            for b in range(min(2 ** j, 16)):
                members = np.sort(perm[b * size:(b + 1) * size])
                q = np.arange(size) if in_sample is None else np.flatnonzero(in_sample[members])
                if len(q) < 2:
                    continue
                nb = exact_knn(es.vectors[members], k=2, metric=metric, query_indices=q,
                               progress=False, validate=False)
                r = nb.distances.astype(np.float64)
                blocks_r.append(r[~_duplicate_mask(r)])
        log_mus = [np.log(r[:, 1] / r[:, 0]) for r in blocks_r]
        pooled = np.concatenate(log_mus) if log_mus else np.empty(0)
        if len(pooled) < 10:
            break
        per_block = [_twonn_mle(lm) for lm in log_mus if len(lm) >= 3]
        sizes.append(size)
        dims.append(_twonn_mle(pooled))
        spread.append(float(np.std(per_block, ddof=1)) if len(per_block) > 1 else math.nan)
        scale.append(float(np.median(np.concatenate([r[:, 1] for r in blocks_r]))))
    return np.array(sizes, dtype=np.int64), np.array(dims), np.array(spread), np.array(scale)


def _scale_warning(values: np.ndarray, what: str) -> list[str]:
    finite = values[np.isfinite(values) & (values > 0)]
    if len(finite) < 2 or finite.max() <= 1.25 * finite.min():
        return []
    return [
        f"the {what} estimate ranges from {finite.min():.3g} to {finite.max():.3g} across scales: the "
        "dimension depends on the neighbourhood size, so no single number describes it (see the scale curves)"
    ]


# --------------------------------------------------------------------------------------------- report


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
) -> IntrinsicDimensionReport:
    """Intrinsic dimension of an embedding set by TwoNN, MLE, PCA, local ID and across scales.

    One neighbour table with ``max(k, gride_max_rank)`` columns is searched (or taken from the set's
    cache) and every distance-based estimator reads it: TwoNN (first two columns, Facco et al., 2017),
    the Levina-Bickel MLE and the per-point local ID (first k columns), and GRIDE at rank pairs
    (n1, 2 n1) (Denti et al., 2022). The decimation curve repeats TwoNN on disjoint subsamples of
    n / 2, n / 4, ... points. PCA dimensions come from the covariance spectrum (of the unit vectors
    under cosine). Confidence intervals are bootstrap percentile intervals over the per-point
    quantities (``log mu`` for TwoNN, ``1 / m_k(x)`` for the MLE).

    Warnings flag duplicates (left out), an estimate above ``2 log10(n)`` (too few points to resolve it,
    after Eckmann & Ruelle, 1992), and an estimate that changes by more than 25 % across scales.

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
        Use this many random points as queries for the per-point estimators; their neighbours are
        searched in the full set (``exact_knn`` with ``query_indices``), so the cost is
        ``sample x n`` instead of ``n x n``; all points when ``sample >= n``. The intervals then
        include the sampling error.
    lid_form : {"mle", "hill"}
        Local ID normalisation, see :func:`local_intrinsic_dimension`.
    scale_levels : int
        Subsample sizes n, n / 2, ... of the decimation curve (stopped below 64 points).
    gride_max_rank : int
        Largest neighbour rank of the GRIDE curve (n2 = 2 n1 <= this).

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
    >>> from embgeo.analysis._intrinsic_dim import intrinsic_dimension
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.normal(size=(2000, 2)) @ np.linalg.qr(rng.normal(size=(32, 2)))[0].T
    >>> report = intrinsic_dimension(plane, metric="euclidean", bootstrap=50)
    >>> round(report.twonn), round(report.mle), report.pca_99
    (2, 2, 2)
    """
    metric = _check_distance_metric(metric)
    n_boot, confidence = _check_bootstrap(bootstrap), _check_confidence(confidence)
    if lid_form not in ("mle", "hill"):
        raise EmbeddingInputError(f"lid_form must be 'mle' or 'hill', got {lid_form!r}")
    for name, value, least in (("scale_levels", scale_levels, 1), ("gride_max_rank", gride_max_rank, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise EmbeddingInputError(f"{name} must be an integer >= {least}, got {value!r}")
    es = _as_set(data)
    k = _check_mle_k(k, es.n)
    rng = check_random_state(random_state)
    rows = _sample_rows(es.n, sample, rng)
    k_table = max(k, min(gride_max_rank, es.n - 1), 2)
    dist = _distances(es, k_table, metric, rows)  # the one neighbour search; columns sliced below

    two = _twonn_from_distances(dist[:, :2], metric, es.n, 0.1, n_boot, confidence, rng)
    mle = _mle_from_distances(dist[:, :k], metric, es.n, n_boot, confidence, rng)
    lid = _readonly(_lid_from_distances(dist[:, :k], lid_form))
    # the spectrum of the rows (unit vectors under cosine), from the set's cached moments
    eig = np.clip(np.linalg.eigvalsh(es.moments(normalize=metric == "cosine").covariance())[::-1], 0.0, None)
    scale_n, scale_d, scale_sd, scale_r = _decimation_curve(es, metric, dist, rows, scale_levels, rng)
    g_n1, g_d, g_r = _gride_curve(dist, gride_max_rank)

    notes = list(two.warnings)  # duplicates and the sample-size bound, said once
    notes += [w for w in mle.warnings if w.startswith("MLE")]
    notes += _scale_warning(scale_d, "TwoNN decimation") + _scale_warning(g_d, "GRIDE")
    return IntrinsicDimensionReport(
        metric=metric, n=es.n, sample_size=int(len(dist)), k=k,
        twonn=two.dimension, twonn_ci=two.ci, twonn_linefit=two.dimension_linefit,
        mle=mle.dimension, mle_ci=mle.ci,
        pca_90=_pca_dimension(eig, 0.90), pca_95=_pca_dimension(eig, 0.95), pca_99=_pca_dimension(eig, 0.99),
        lid_median=float(np.nanmedian(lid)) if np.isfinite(lid).any() else math.nan,
        lid=lid, lid_form=lid_form, n_duplicates=two.n_duplicates,
        scale_n=_readonly(scale_n), scale_twonn=_readonly(scale_d), scale_twonn_std=_readonly(scale_sd),
        scale_distance=_readonly(scale_r),
        gride_n1=_readonly(g_n1), gride_dimension=_readonly(g_d), gride_distance=_readonly(g_r),
        warnings=tuple(notes), sample_indices=None if rows is None else _readonly(rows),
    )
