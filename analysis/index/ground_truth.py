"""Exact ground truth of a query set, and the two recall rules every index is scored by.

Recall rules (methods sheet, "Index statistics")
------------------------------------------------
* **Set overlap** (:func:`~embgeo.analysis.neighbors.recall_per_query`): the share of a query's true k
  nearest neighbours that are among the k returned, averaged over queries.
* **ann-benchmarks distance rule** (:func:`recall_distance_rule`; Aumueller, Bernhardsson, Faithfull,
  Information Systems 2020): a returned item counts when its distance to the query is at most the k-th
  true distance plus 1e-3, which forgives ties. Distances are in ann-benchmarks units: ``1 - cos``
  for cosine ("angular"), ``||x - y||`` for euclidean, ``-<x, y>`` for dot.

Everything is measured against exact search from the shared engine (:func:`exact_knn`), never
against a brute-force n x n matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import EmbeddingInputError, Result, check_k, hidden, metric as _field
from ..neighbors import exact_knn, recall_per_query, refine_distances
from .queries import QuerySplit, split_queries

#: ann-benchmarks' tie tolerance for the distance rule.
ANN_BENCHMARKS_EPSILON = 1e-3


def ann_units(distances: np.ndarray, metric: str) -> np.ndarray:
    """embgeo distances in ann-benchmarks units: chord -> ``1 - cos``; euclidean and dot unchanged."""
    d = np.asarray(distances, dtype=np.float64)
    return 0.5 * d * d if metric == "cosine" else d


def recall_distance_rule(found_distances: np.ndarray, true_kth_distance: np.ndarray, *,
                         epsilon: float = ANN_BENCHMARKS_EPSILON) -> np.ndarray:
    """Per-query recall by the ann-benchmarks rule: returned items within the k-th true distance + eps.

    Parameters
    ----------
    found_distances : array of shape (m, k)
        Distances of the returned items (NaN for missing ones), in ann-benchmarks units.
    true_kth_distance : array of shape (m,)
        Distance of each query's k-th true neighbour, same units.
    epsilon : float
        Tie tolerance; ann-benchmarks uses 1e-3.

    References
    ----------
    Aumueller, Bernhardsson, Faithfull, "ANN-Benchmarks: a benchmarking tool for approximate nearest
    neighbor algorithms", Information Systems 87, 2020.
    """
    fd = np.asarray(found_distances, dtype=np.float64)
    thr = np.asarray(true_kth_distance, dtype=np.float64)[:, None] + epsilon
    return (fd <= thr).sum(axis=1) / fd.shape[1]


def found_distances(corpus_prepared: np.ndarray, queries_prepared: np.ndarray, ids: np.ndarray, metric: str):
    """Distances (embgeo units) from each query to its returned items, NaN where nothing came back."""
    safe = np.where(ids >= 0, ids, 0)
    # Vectors are already prepared (unit for cosine), so chord/L2/-dot come out directly.
    d = refine_distances(corpus_prepared, queries_prepared, safe, "euclidean" if metric == "cosine" else metric)
    d = d.astype(np.float64)
    d[ids < 0] = np.nan
    return d


@dataclass(frozen=True, repr=False)
class GroundTruth(Result):
    """Exact nearest neighbours of a query set in a corpus: the reference every index is scored on."""

    _title = "exact ground truth"
    k: int = _field("Neighbours per query scored by recall@k.")
    n_queries: int = _field("Queries.")
    n_corpus: int = _field("Corpus vectors searched.")
    metric: str = _field("Similarity (cosine = inner product of unit vectors).")
    source: str = _field("Where the queries came from: array, benchmark (the file's test set) or holdout(m).")
    seconds: float = _field("Wall time of the exact search (2k neighbours and mean distances).")
    backend: str = _field("Where the exact products ran.")
    agreement_with_file: float | None = _field(
        "Set-overlap recall@k of this exact search against the neighbours stored in the ann-benchmarks "
        "file (1 = the same ground truth).", "Aumueller et al., 2020", default=None)
    indices: np.ndarray = hidden()
    distances: np.ndarray = hidden()
    mean_distance: np.ndarray | None = hidden()
    corpus_rows: np.ndarray = hidden()
    query_rows: np.ndarray | None = hidden()
    file_neighbors: np.ndarray | None = hidden()
    file_distances: np.ndarray | None = hidden()

    @property
    def truth(self) -> np.ndarray:
        """Corpus positions of the true k nearest neighbours, shape (m, k)."""
        return self.indices[:, :self.k]

    def kth_distance_ann_units(self) -> np.ndarray:
        return ann_units(self.distances[:, self.k - 1], self.metric)


def ground_truth(data, *, queries=None, k: int = 10, metric: str | None = None, holdout=None,
                 random_state=0, backend: str = "auto", progress=False,
                 _split: QuerySplit | None = None) -> GroundTruth:
    """Exact k nearest neighbours of a query set (array, ann-benchmarks test set or held-out rows).

    Computes 2k neighbours (for the expansion statistic) and each query's mean distance to the
    corpus (for relative contrast) in the same blocked pass. With ann-benchmarks queries, the file's
    own ``neighbors`` are kept so every recall can also be reported against them.

    Parameters
    ----------
    data : EmbeddingSet or array of shape (n, d)
        The corpus (all of it, or all but the held-out rows).
    queries : array of shape (m, d), "benchmark", or None
    k : int
        Neighbours per query.
    metric : {"cosine", "dot", "euclidean"}, optional
        Defaults to the benchmark's metric, else cosine.
    holdout : int or float, optional
        Held-out query rows (count or fraction), removed from the corpus.
    progress : None, bool or callable
        Progress of the exact search, tile by tile (see :func:`~embgeo.analysis.exact_knn`).

    Returns
    -------
    GroundTruth

    References
    ----------
    Aumueller, Bernhardsson, Faithfull, ANN-Benchmarks, Information Systems 2020.

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 16)).astype("float32")
    >>> ground_truth(x, k=5, holdout=50).truth.shape
    (50, 5)
    """
    split = _split or split_queries(data, queries, holdout=holdout, metric=metric, random_state=random_state)
    n = split.corpus.shape[0]
    check_k(k, n, context="corpus points")
    depth = min(2 * k, n)
    nb = exact_knn(split.corpus, split.queries, k=depth, metric=split.metric, backend=backend,
                   mean_distance=split.metric != "dot", progress=progress)
    file_nb = file_d = agreement = None
    bench = split.benchmark
    if bench is not None and bench.neighbors is not None:
        file_nb = np.asarray(bench.neighbors)
        if file_nb.ndim != 2 or file_nb.shape[0] != split.queries.shape[0] or file_nb.shape[1] < k:
            raise EmbeddingInputError(
                f"benchmark neighbors have shape {file_nb.shape}; need {split.queries.shape[0]} rows "
                f"and at least k={k} columns")
        file_nb = file_nb[:, :k]
        file_d = None if bench.distances is None else np.asarray(bench.distances, dtype=np.float64)[:, :k]
        agreement = float(recall_per_query(nb.indices[:, :k], file_nb).mean())
    return GroundTruth(
        k=int(k), n_queries=int(split.queries.shape[0]), n_corpus=int(n), metric=split.metric,
        source=split.source, seconds=float(nb.seconds), backend=nb.backend, agreement_with_file=agreement,
        indices=nb.indices, distances=nb.distances, mean_distance=nb.mean_distance,
        corpus_rows=split.corpus_rows, query_rows=split.query_rows, file_neighbors=file_nb,
        file_distances=file_d,
    )
