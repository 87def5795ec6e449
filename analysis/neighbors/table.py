"""The neighbour table every statistic reads, and the finishing steps every search shares.

Conventions (the same for every statistic built on neighbours):

* ``metric="cosine"``: vectors are L2-normalised and the *distance* is the chord ``||u - v||``
  (monotone in cosine; ``1 - cos`` is a squared distance and would halve dimension estimates).
* ``metric="euclidean"``: the distance is ``||x - y||``.
* ``metric="dot"``: neighbours maximise the inner product; the stored "distance" is ``-<x, y>``,
  which ranks correctly but is not a metric, so distance-based estimators refuse it.
* Rows are sorted nearest first; equal distances by row id, so every engine agrees.

Distances are never read off the score tiles: :func:`refine_distances` recomputes them from the
vector difference of the selected pairs, so near-duplicates get accurate small distances (TwoNN and
MLE depend on the smallest ones) instead of the cancellation error of ``|x|^2 + |y|^2 - 2<x, y>``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from .._core import Result, blocked_row_norms, check_k, metric as _field
from ._distance_kernels import pair_distances


@dataclass(frozen=True, repr=False)
class Neighbors(Result):
    """k nearest neighbours of a set of queries, sorted from nearest to farthest."""

    _title = "k-nearest-neighbour table"
    indices: np.ndarray = _field("Corpus row of each neighbour, shape (n_queries, k); int32 below 2^31 rows.",
                                 summary=False)
    distances: np.ndarray = _field("Distance to each neighbour (chord for cosine; -dot for dot).", summary=False)
    metric: str = _field("Similarity used.")
    exact: bool = _field("True for exact search; False for an approximate index.")
    recall: float | None = _field("Measured recall@k of approximate search against exact search.", default=None)
    recall_sample: int = _field("Queries on which that recall was measured.", default=0)
    backend: str = _field("Where the products ran (numpy, torch-cpu, torch-cuda), or the approximate join's "
                          "settings.", default="")
    seconds: float = _field("Wall time of the search.", default=float("nan"))
    mean_distance: np.ndarray | None = _field(
        "Mean distance from each query to the whole corpus (self excluded), when asked for.", default=None,
        summary=False)

    def __post_init__(self):
        # int32 ids while the corpus has fewer than 2^31 rows: half the memory of the widest array a
        # report keeps (1.3 GB at 10,000,000 x 32), and every statistic reads them as they are
        ids = self.indices
        if ids.dtype.kind in "iu" and ids.dtype.itemsize > 4 and (ids.size == 0 or int(ids.max()) < 2**31 - 1):
            object.__setattr__(self, "indices", ids.astype(np.int32))

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    @property
    def n_queries(self) -> int:
        return int(self.indices.shape[0])

    @property
    def similarities(self) -> np.ndarray:
        """Cosine similarity (cosine), inner product (dot) or negative distance (euclidean)."""
        if self.metric == "cosine":
            return 1.0 - 0.5 * self.distances.astype(np.float64) ** 2
        return -self.distances.astype(np.float64)

    def head(self, k: int) -> "Neighbors":
        """The same table cut to its first ``k`` neighbours."""
        check_k(k, self.k, context="cached neighbours")
        return dataclasses.replace(self, indices=self.indices[:, :k], distances=self.distances[:, :k])

    def rows(self, queries: np.ndarray) -> "Neighbors":
        """The table restricted to the given query rows (mean distances too, where present)."""
        queries = np.asarray(queries)
        return dataclasses.replace(self, indices=self.indices[queries], distances=self.distances[queries],
                          mean_distance=None if self.mean_distance is None else self.mean_distance[queries])

    def to_dict(self) -> dict:
        """The table's settings and shape (the arrays themselves are left out: one row per query)."""
        return {"k": self.k, "n_queries": self.n_queries, **super().to_dict()}



def refine_distances(corpus, queries, ids, metric: str, visit=None, *, norms=None) -> np.ndarray:
    """Distances of the listed pairs (``ids``: corpus rows per query row), from the vector difference.

    The score tiles give a distance as sqrt(2 - 2s) or sqrt(|q|^2 + |c|^2 - 2<q, c>), which loses
    all precision for near neighbours; the difference q - c does not. Float32 suffices: the inputs
    are float32 unit vectors (for cosine), so their own rounding (~6e-8) bounds what float64 could
    recover. One numba pass reads each listed corpus row in place, with no gathered copies (the
    NumPy version that gathered (rows, k, d) blocks took 8 s on 100,000 x 32 neighbours x 384).
    Ids below 0 give NaN. ``visit``: an order of the query rows to compute them in (see
    :func:`._distance_kernels.pair_distances`). ``norms``: the cosine row norms
    (:func:`blocked_row_norms`) of the corpus and of the queries, ``(c_norms, q_norms)``, when the
    caller has them already.
    """
    mode = {"cosine": 0, "euclidean": 1, "dot": 2}[metric]
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    corpus = np.asarray(corpus, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    # Under cosine each row is divided by its norm summed in one fixed order (row_norms), so
    # identical rows give identical unit vectors and a distance of exactly 0.
    if mode == 0 and norms is not None:
        c_norms, q_norms = (np.asarray(v, dtype=np.float32) for v in norms)
    elif mode == 0:
        c_norms = blocked_row_norms(corpus)
        q_norms = c_norms if queries is corpus else blocked_row_norms(queries)
    else:
        c_norms = q_norms = np.empty(0, dtype=np.float32)
    visit = np.empty(0, dtype=np.int64) if visit is None else np.ascontiguousarray(visit, dtype=np.int64)
    return pair_distances(corpus, queries, ids, c_norms, q_norms, mode, visit)


#: Pairs nearer than this (chord between unit vectors; for euclidean, this share of the query's norm)
#: get their distance from the vector difference; farther ones keep the one from their exact score.
#: With float64 scores and float32 norms the score's distance errs by about 1e-7 / distance, the
#: difference's by about 1e-7: below 0.05 the difference is the more precise.
NEAR_DISTANCE = 0.05


def near_pairs(dist: np.ndarray, metric: str, query_norms=None) -> np.ndarray:
    """Where a distance read off a score has lost its precision: below :data:`NEAR_DISTANCE` (cosine),
    below that share of the query's norm ``query_norms`` (euclidean); never for dot, whose distance
    is the score itself. A boolean array of ``dist``'s shape."""
    if metric == "cosine":
        return dist < NEAR_DISTANCE
    if metric == "euclidean":
        return dist < NEAR_DISTANCE * np.asarray(query_norms, dtype=np.float64)[:, None]
    return np.zeros(np.shape(dist), dtype=bool)


def distances_from_scores(corpus, ids, scores, metric: str, norms, *, rows=None,
                          block_rows: int = 65_536) -> np.ndarray:
    """Distances of each row's listed corpus rows from their exact full-dimensional scores, recomputed
    from the vector difference (:func:`refine_distances`) only where the score loses precision.

    ``scores`` are the re-ranking's float64 scores ``<a, b> / |b|`` (cosine), ``2<a, b> - |b|^2``
    (euclidean) or ``<a, b>`` (dot), for query row a (a self-join: the corpus rows ``rows``, all of
    them by default) and listed row b; ``norms`` the corpus rows' float32 L2 norms
    (:func:`blocked_row_norms`). ``sqrt(2 - 2 cos)`` and
    ``sqrt(|a|^2 - score)`` cancel only for near pairs, so the rows holding a pair nearer than
    :data:`NEAR_DISTANCE` (relative to |a| for euclidean) are recomputed, in row blocks (recomputing
    every pair took 8 s on the 1,000,000-row report). Ids below 0 give NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    norms = np.asarray(norms)
    rows = np.arange(len(ids)) if rows is None else np.asarray(rows)
    norms64 = norms[rows].astype(np.float64)
    if metric == "cosine":
        dist = np.sqrt(np.clip(2.0 - 2.0 * scores / norms64[:, None], 0.0, None))
    elif metric == "euclidean":
        dist = np.sqrt(np.clip(norms64[:, None] ** 2 - scores, 0.0, None))
    else:  # the dot "distance" -<a, b> is the score itself: nothing cancels
        dist = -scores
    near = near_pairs(dist, metric, norms64)
    dist = dist.astype(np.float32)
    dist[ids < 0] = np.nan
    redo = np.flatnonzero(near.any(axis=1))
    for start in range(0, len(redo), block_rows):
        r = redo[start:start + block_rows]
        query_rows = rows[r]
        dist[r] = refine_distances(corpus, np.asarray(corpus[query_rows], dtype=np.float32), ids[r], metric,
                                   norms=(norms, norms[query_rows]))
    return dist


def nearest_first(ids: np.ndarray, dist: np.ndarray):
    """Each row's neighbours sorted by distance; equal distances by row id, so every kernel agrees."""
    order = np.lexsort((ids, dist), axis=1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(dist, order, axis=1)


def finish_table(corpus, queries, ids, metric: str, backend: str, t0: float, mean_distance=None, *,
                 exact: bool = True, visit=None, **fields) -> Neighbors:
    """Exact distances for the chosen ids, sorted nearest first, wrapped as :class:`Neighbors`."""
    ids, dist = nearest_first(ids, refine_distances(corpus, queries, ids, metric, visit))
    return Neighbors(indices=ids, distances=dist, metric=metric, exact=exact, backend=backend,
                     seconds=time.perf_counter() - t0, mean_distance=mean_distance, **fields)
