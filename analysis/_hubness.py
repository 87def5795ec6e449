"""Hubness and distance concentration: how cosine neighbourhoods degrade in high dimension.

Two reports, both built on the shared neighbour engine:

* :func:`hubness_report` reads the k-occurrence distribution N_k off the set's cached k-NN table
  (:meth:`EmbeddingSet.neighbors`): its skewness (Radovanovic et al., 2010), the Robin Hood index
  (Feldbauer et al., 2018), the antihub rate and the share of neighbour slots the top 1 % hold.
* :func:`concentration_report` measures, for a random sample of queries, the relative contrast
  (He et al., 2012) and the expansion (Aumueller & Ceccarello, 2019) that make a query easy or hard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._embedding_set import EmbeddingSet, as_embedding_set
from ._knn import Neighbors, exact_knn
from ._results import Result, metric as _field
from ._validation import EmbeddingInputError, check_k, check_metric, check_random_state

#: Share of points counted as "the hubs" by hub occupancy (the top 1 %).
HUB_SHARE = 0.01
#: Bootstrap resamples for the confidence intervals of medians.
N_BOOTSTRAP = 1000


# --------------------------------------------------------------------------------------------- hubness


def k_occurrence(neighbors, n: int) -> np.ndarray:
    """k-occurrence N_k: how many neighbour lists each of ``n`` points appears in.

    Parameters
    ----------
    neighbors : Neighbors or array-like of int, shape (n_queries, k)
        A k-NN table (self excluded), or its ``indices``.
    n : int
        Number of corpus points (length of the result).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        ``N_k[i]`` = number of rows of the table that contain ``i``. For a self-join table the values
        sum to ``n * k`` and average exactly ``k``.

    References
    ----------
    Radovanovic, Nanopoulos, Ivanovic, "Hubs in space: popular nearest neighbors in high-dimensional
    data", JMLR 11, 2010.

    Examples
    --------
    >>> k_occurrence([[1], [0], [0]], 3).tolist()
    [2, 1, 0]
    """
    ids = neighbors.indices if isinstance(neighbors, Neighbors) else np.asarray(neighbors)
    if ids.ndim != 2:
        raise EmbeddingInputError(f"neighbour indices must be 2-D (n_queries, k); got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise EmbeddingInputError(f"neighbour indices must be integers; got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise EmbeddingInputError(
            f"neighbour indices must lie in [0, {n}); found values from {ids.min()} to {ids.max()}"
        )
    return np.bincount(ids.ravel(), minlength=n).astype(np.int64)


def _skewness(x: np.ndarray) -> float:
    """Population (moment) skewness E[(x - mean)^3] / std^3; 0 for a constant sample."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean()
    var = np.mean(centred ** 2)
    if var <= 1e-24 * max(1.0, x.mean() ** 2):  # every value equal: no asymmetry to measure
        return 0.0
    return float(np.mean(centred ** 3) / var ** 1.5)


def robin_hood_index(n_k: np.ndarray, k: int) -> float:
    """Robin Hood index sum |N_k - k| / (2 n k): the share of neighbour slots to move for N_k = k."""
    n_k = np.asarray(n_k, dtype=np.float64)
    return float(np.abs(n_k - k).sum() / (2 * len(n_k) * k))


def _label_table(data: EmbeddingSet, rows: np.ndarray, n_k: np.ndarray):
    import pandas as pd

    return pd.DataFrame({
        "index": rows.astype(np.int64),
        "k_occurrence": n_k[rows].astype(np.int64),
        "label": [data.label(int(i)) for i in rows],
    })


@dataclass(frozen=True, repr=False)
class HubnessReport(Result):
    """Hubness of a k-NN graph, read off its k-occurrence distribution."""

    _title = "hubness of the k-nearest-neighbour graph"
    k: int = _field("Neighbours per point.")
    metric: str = _field("Similarity used to find neighbours.")
    n: int = _field("Points in the set.")
    skewness: float = _field(
        "Skewness of N_k; 0 when every point is equally popular, above ~1 is strong hubness.",
        "Radovanovic et al., JMLR 2010")
    robin_hood: float = _field(
        "Share of the n*k neighbour slots that would have to move for every N_k to equal k (0 = fair, 1 = all "
        "slots on one point).", "Feldbauer et al., 2018")
    antihub_rate: float = _field("Share of points that are nobody's neighbour (N_k = 0).",
                                 "Radovanovic et al., JMLR 2010")
    hub_occupancy: float = _field(
        "Share of the n*k neighbour slots held by the top 1 % of points by N_k (0.01 when fair).")
    max_k_occurrence: int = _field("Largest N_k: the biggest hub's number of in-links.")
    top_hubs: object = _field("Points with the largest N_k (index, k_occurrence, label).")
    antihub_examples: object = _field("A random sample of antihubs (index, k_occurrence, label).")
    k_occurrence: np.ndarray = _field("N_k of every point.", "Radovanovic et al., JMLR 2010")
    exact: bool = _field("True when the neighbours were exact.", default=True)
    recall: float | None = _field("Measured recall@k of approximate neighbours.", default=None)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.pop("k_occurrence")  # one number per point: too large for a JSON summary
        return out


def hubness_report(data, *, k: int = 10, metric: str = "cosine", top: int = 20, exact: bool = True,
                   random_state=0) -> HubnessReport:
    """Hubness statistics of the k-NN graph of a set.

    Neighbours come from :meth:`EmbeddingSet.neighbors`, so the k-NN table is shared (and cached)
    with every other report on the same set.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        The vectors (an array is wrapped in an :class:`EmbeddingSet`).
    k : int
        Neighbours per point (self excluded).
    metric : {"cosine", "dot", "euclidean"}
        Similarity used for the neighbours.
    top : int
        How many top hubs (and antihub examples) to list; at most n.
    exact : bool
        Exact neighbours (default) or an approximate index whose recall is reported.
    random_state : int, Generator or None
        Seed for choosing which antihubs to show.

    Returns
    -------
    HubnessReport
        ``skewness`` is the population moment skewness E[(N_k - k)^3] / sd^3 (defined as 0 when all
        N_k are equal). ``hub_occupancy`` counts the top ceil(1 % of n) points (at least one).

    References
    ----------
    Radovanovic, Nanopoulos, Ivanovic, "Hubs in space: popular nearest neighbors in high-dimensional
    data", JMLR 11, 2010 (k-occurrence, skewness, antihubs).
    Feldbauer, Leodolter, Brandt, Flexer, "Fast approximate hubness reduction for large
    high-dimensional data", IEEE ICBK 2018 (Robin Hood index).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> report = hubness_report(rng.normal(size=(500, 50)), k=10)
    >>> report.skewness > 0
    True
    """
    data = as_embedding_set(data)
    metric = check_metric(metric)
    k = check_k(k, data.n - 1, context="neighbours (self excluded)")
    top = min(check_k(top, 10**9, what="top", context="rows"), data.n)
    table = data.neighbors(k, metric=metric, exact=exact)
    n_k = k_occurrence(table, data.n)

    order = np.argsort(-n_k, kind="stable")
    n_hubs = max(1, math.ceil(HUB_SHARE * data.n))
    antihubs = np.flatnonzero(n_k == 0)
    rng = check_random_state(random_state)
    shown = np.sort(rng.choice(antihubs, size=min(top, len(antihubs)), replace=False))

    return HubnessReport(
        k=k, metric=metric, n=data.n,
        skewness=_skewness(n_k),
        robin_hood=robin_hood_index(n_k, k),
        antihub_rate=float(len(antihubs) / data.n),
        hub_occupancy=float(n_k[order[:n_hubs]].sum() / (data.n * k)),
        max_k_occurrence=int(n_k.max()),
        top_hubs=_label_table(data, order[:top], n_k),
        antihub_examples=_label_table(data, shown, n_k),
        k_occurrence=n_k, exact=table.exact, recall=table.recall,
    )


# --------------------------------------------------------------------------------------------- concentration


def median_ci(values: np.ndarray, *, confidence: float = 0.95, n_boot: int = N_BOOTSTRAP,
              random_state=0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median (Efron & Tibshirani, 1993)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (math.nan, math.nan)
    rng = check_random_state(random_state)
    medians = np.empty(n_boot)
    rows = max(1, (8 * 2**20) // (8 * len(values)))  # resample in blocks of ~8 MB
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, len(values), size=(stop - start, len(values)))
        medians[start:stop] = np.median(values[idx], axis=1)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(medians, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


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
    query_indices: np.ndarray = _field("Rows used as queries.", default=None)
    relative_contrast: np.ndarray = _field("RC_k of each query (NaN where undefined).", default=None)
    expansion: np.ndarray = _field("E_2k of each query (NaN where undefined).", default=None)

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in ("query_indices", "relative_contrast", "expansion"):
            out.pop(name)
        return out


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
    metric = check_metric(metric)
    if metric == "dot":
        raise EmbeddingInputError(
            "concentration_report needs a distance: metric='dot' stores -<x, y>, which is not one, so "
            "relative contrast and expansion are undefined; use metric='cosine' or 'euclidean'"
        )
    k = check_k(k, data.n - 1, context="neighbours (self excluded)")
    check_k(2 * k, data.n - 1, what="2k", context="neighbours (self excluded) for the expansion D_2k/D_k")
    rng = check_random_state(random_state)
    if sample is None or sample >= data.n:
        queries = np.arange(data.n, dtype=np.int64)
    else:
        sample = check_k(sample, data.n, what="sample", context="points to sample")
        queries = np.sort(rng.choice(data.n, size=sample, replace=False))

    table = exact_knn(data.vectors, k=2 * k, metric=metric, query_indices=queries, mean_distance=True,
                      backend=backend, progress=False)
    return concentration_from_table(table, k, metric, queries, rng)


def concentration_from_table(table: Neighbors, k: int, metric: str, queries: np.ndarray, rng) -> ConcentrationReport:
    """:func:`concentration_report` from an exact table of the queries' 2k neighbours with mean distances."""
    d_k = table.distances[:, k - 1].astype(np.float64)
    d_2k = table.distances[:, 2 * k - 1].astype(np.float64)
    zero = d_k <= 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = np.where(zero, np.nan, table.mean_distance / d_k)
        expansion = np.where(zero, np.nan, d_2k / d_k)
    rc_ok, ex_ok = rc[np.isfinite(rc)], expansion[np.isfinite(expansion)]
    return ConcentrationReport(
        k=k, metric=metric, sample_size=len(queries),
        relative_contrast_median=float(np.median(rc_ok)) if len(rc_ok) else math.nan,
        relative_contrast_ci=median_ci(rc_ok, random_state=rng),
        expansion_median=float(np.median(ex_ok)) if len(ex_ok) else math.nan,
        expansion_ci=median_ci(ex_ok, random_state=rng),
        n_zero_distance=int(zero.sum()),
        query_indices=queries, relative_contrast=rc, expansion=expansion,
    )
