"""Hubness of a k-NN graph (Radovanovic et al., 2010), read off the set's cached neighbour table.

:func:`hubness_report` reads the k-occurrence distribution N_k (:func:`~..neighbors.k_occurrence`):
its skewness, the Robin Hood index (Feldbauer et al., 2018), the antihub rate and the share of
neighbour slots the top 1 % hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import (
    Result,
    bootstrap as bootstrap_values,
    check_confidence,
    check_k,
    check_metric,
    check_n_boot,
    check_random_state,
    metric as _field,
    percentile_interval,
    row_skewness,
    skewness,
)
from ..embeddings import EmbeddingSet, as_embedding_set
from ..neighbors import k_occurrence

#: Share of points counted as "the hubs" by hub occupancy (the top 1 %).
HUB_SHARE = 0.01


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
    k_occurrence: np.ndarray = _field("N_k of every point.", "Radovanovic et al., JMLR 2010", summary=False)
    exact: bool = _field("True when the neighbours were exact.", default=True)
    recall: float | None = _field("Measured recall@k of approximate neighbours.", default=None)
    skewness_ci: np.ndarray | None = _field(
        "Percentile-bootstrap interval (low, high) of the skewness over the points' N_k (when bootstrap > 0). "
        "It covers the sampling spread at this n only: hubness grows with n, so a subsample's graph "
        "understates the full set's.", "Efron, 1979", default=None)


def hubness_report(data, *, k: int = 10, metric: str = "cosine", top: int = 20, exact: bool = True,
                   random_state=0, bootstrap: int = 0, confidence: float = 0.95) -> HubnessReport:
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
        Seed for choosing which antihubs to show (and for the bootstrap).
    bootstrap : int
        Resamples of the points' N_k for ``skewness_ci``; 0 (default) skips it.
    confidence : float
        Coverage of that interval.

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
    n_boot, confidence = check_n_boot(bootstrap), check_confidence(confidence)
    ci = None if n_boot == 0 else percentile_interval(bootstrap_values(n_k, row_skewness, n_boot, rng), confidence)

    return HubnessReport(
        k=k, metric=metric, n=data.n,
        skewness=skewness(n_k),
        robin_hood=robin_hood_index(n_k, k),
        antihub_rate=float(len(antihubs) / data.n),
        hub_occupancy=float(n_k[order[:n_hubs]].sum() / (data.n * k)),
        max_k_occurrence=int(n_k.max()),
        top_hubs=_label_table(data, order[:top], n_k),
        antihub_examples=_label_table(data, shown, n_k),
        k_occurrence=n_k, exact=table.exact, recall=table.recall, skewness_ci=ci,
    )

