"""Exact k-NN one pair of row blocks at a time, and the merge of the partial lists: the pieces an engine
that never holds the whole corpus in one process (the Dask engine) builds a self-join from.

:func:`block_pair_knn` scores block A against block B with the exact engine's tiles and folds
(:mod:`._backend`): each tile serves A's rows and B's rows, so the pair costs one product (the
symmetric half of the self-join, as :func:`.exact.exact_knn` computes it in one process). Its lists
are the partial top-k of A among B and of B among A; :func:`merge_knn` combines the partial lists
of one block from every pair (in any grouping: a tree reduction merges them pairwise). Distances
are read off the float32 scores (see :func:`scores_to_distances`); within a set, the same pairs get
the same distances whichever tile they came from, so the merge is exact and order-free.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from .._core import as_float32_matrix, check_metric, prepare_rows
from ._backend import Ops, fold_tile, host_folds, numba_thread_pool, resolve_backend
from .exact import SampleLists
from .table import Neighbors, finish_table, near_pairs, nearest_first, refine_distances

#: Side of the square score tiles a block pair is multiplied in (4096^2 float32 = 64 MB).
TILE_ROWS = 4_096


def block_pair_knn(a, b, k: int, *, metric: str = "cosine", same: bool = False, floor_a=None, floor_b=None,
                   backend: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The k nearest rows of ``b`` for each row of ``a``, and of ``a`` for each row of ``b``.

    Parameters
    ----------
    a, b : array-like of shape (n_a, d) and (n_b, d)
        Two blocks of one set's rows (raw vectors: cosine normalises them here).
    k : int
        Neighbours kept per row (fewer exist when the other block is smaller: the rest of the row is
        id -1 and distance inf).
    metric : {"cosine", "dot", "euclidean"}
    same : bool
        ``a`` and ``b`` are the same block: each row's own cell is excluded and only A's lists are
        returned (B's are the same).
    floor_a, floor_b : array-like of shape (n_a,) and (n_b,), optional
        Per-row tile scores that no cell at or below can be among the row's k nearest overall: the
        row's k-th best score within its own block (:func:`kth_scores` of the diagonal pair), lowered
        by one float32 step so that ties still enter. The lists start at these thresholds instead of
        empty, so the first tiles of a pair admit only cells that can matter (an unseeded pair admits
        most cells of its first tiles). A row returns only the cells above its floor, the rest of its
        list id -1 and distance inf: merged with the row's other pairs, the k nearest are the same.
    backend : str
        As for :func:`.exact.exact_knn`.

    Returns
    -------
    (ids_a, dist_a, ids_b, dist_b)
        int64 row numbers *within the other block* and float32 distances, nearest first (ties by id);
        ``ids_b`` and ``dist_b`` are None when ``same``.
    """
    metric = check_metric(metric)
    ops = Ops(resolve_backend(backend))
    pa = ops.put(prepare_rows(as_float32_matrix(a, name="block"), metric))
    pb = pa if same else ops.put(prepare_rows(as_float32_matrix(b, name="block"), metric))
    na, nb = pa.shape[0], pb.shape[0]
    sq_a = ops.sqnorm(pa) if metric == "euclidean" else None
    sq_b = sq_a if same else (ops.sqnorm(pb) if metric == "euclidean" else None)
    best = {side: _start_lists(ops, m, k, floor) for side, m, floor in (("a", na, floor_a), ("b", nb, floor_b))}
    with numba_thread_pool(ops) if host_folds(ops) else contextlib.nullcontext():
        for i0 in range(0, na, TILE_ROWS):
            for j0 in range(i0 if same else 0, nb, TILE_ROWS):
                s = ops.matmul_t(pa[i0:i0 + TILE_ROWS], pb[j0:j0 + TILE_ROWS])
                if metric == "euclidean":  # -(|x|^2 + |y|^2 - 2<x, y>), symmetric in x and y
                    s *= 2
                    s -= sq_a[i0:i0 + TILE_ROWS][:, None]
                    s -= sq_b[j0:j0 + TILE_ROWS][None, :]
                if same and i0 == j0:
                    diag = ops.arange(0, s.shape[0])
                    s[diag, diag] = -np.inf
                fold_tile(ops, *best["a"], s, 1, i0, j0, k)
                # the tile's columns: B's rows, or (same block) A's rows of the tile above the diagonal
                if same and i0 != j0:
                    fold_tile(ops, *best["a"], s, 0, j0, i0, k)
                elif not same:
                    fold_tile(ops, *best["b"], s, 0, j0, i0, k)
    out = []
    for side in ("a",) if same else ("a", "b"):
        scores, ids = ops.get(best[side][0]), ops.get(best[side][1]).astype(np.int64)
        dist = scores_to_distances(scores, metric)
        dist[ids < 0] = np.inf  # slots still holding a floor (or empty) are missing entries
        out += list(nearest_first(ids, dist))
    return (*out, None, None) if same else tuple(out)


def _start_lists(ops, m: int, k: int, floor):
    """Empty running lists of ``m`` rows (scores, ids, k-th scores), each at its floor (-inf: none)."""
    if floor is None:
        low = np.full(m, -np.inf, np.float32)
    else:
        low = np.asarray(floor, dtype=np.float32).reshape(-1)
        if low.shape != (m,):
            raise ValueError(f"a floor has {low.size} values for a block of {m} rows")
    return (ops.put(np.repeat(low[:, None], k, axis=1)), ops.full((m, k), -1, np.int64), ops.put(low.copy()))


def kth_scores(dist: np.ndarray, metric: str) -> np.ndarray:
    """Floors for :func:`block_pair_knn` from a block's own (diagonal pair's) lists ``dist``, shape (m, k).

    The k-th distance of each row as the tiles' score (cosine ``1 - d^2 / 2``, euclidean ``-d^2``, dot
    ``-d``), lowered past the float32 rounding of that round trip (a few units in the last place), so
    the floor never exceeds the score a tile computes for a cell that ties with it. Rows with fewer
    than k neighbours in their block get no floor (-inf).
    """
    d = np.asarray(dist, dtype=np.float64)[:, -1]
    score = {"cosine": 1.0 - d * d / 2.0, "euclidean": -d * d, "dot": -d}[metric]
    slack = 4 * np.finfo(np.float32).eps * (np.abs(score) + (1.0 if metric == "cosine" else 0.0))
    floor = np.where(np.isfinite(score), score - slack, -np.inf)
    return np.nextafter(floor.astype(np.float32), np.float32(-np.inf))


def scores_to_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    """Distances of the engine's symmetric float32 tile scores: ``sqrt(2 - 2 cos)`` (cosine, unit rows),
    ``sqrt(|x - y|^2)`` from ``-|x - y|^2`` (euclidean), as the exact engine's tiles convert them
    (``Ops.to_distances_``), and ``-<x, y>`` (dot); -inf scores (missing entries) give inf.

    Read off float32 scores, a distance d errs by about 6e-8 / d (cosine): 1e-6 at d = 0.06, more for
    near-duplicate pairs, whose order is still right (the scores are).
    """
    s = np.array(scores, dtype=np.float32)  # a copy: converted in place
    return -s if metric == "dot" else Ops("numpy").to_distances_(s, metric)


def merge_knn(parts, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of several partial lists of the same rows: ``parts`` is a sequence of
    ``(ids, dist)`` pairs of shape (m, k_i) with global ids (-1 / inf for missing entries). Returns
    ``(ids, dist)`` of shape (m, k), nearest first, ties by id: the same whatever the grouping."""
    ids = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts], axis=1)
    dist = np.concatenate([np.asarray(p[1], dtype=np.float32) for p in parts], axis=1)
    ids, dist = nearest_first(ids, dist)  # missing entries are at inf: last
    return ids[:, :k], dist[:, :k]


# ------------------------------------------------------------------ the report's query sample, a block at a time


def sample_block_lists(block, block0: int, queries, rows, k_cos: int, k_dot: int):
    """The cosine and dot lists of the query rows ``rows`` (vectors ``queries``) among one block of the
    corpus (rows ``block0 : block0 + len(block)``), and their chord-distance sums over it: the partial
    result :func:`merge_sample_lists` combines (see :func:`.exact.cosine_and_dot_sample`)."""
    lists = SampleLists(np.asarray(queries, dtype=np.float32), rows, k_cos, k_dot)
    lists.fold_all(block, block0)
    return lists.arrays()


def merge_sample_lists(parts, k_cos: int, k_dot: int):
    """Combine partial :func:`sample_block_lists` results (any grouping): best scores first, ties by id,
    the distance sums added."""
    cos_i, cos_neg = merge_knn([(p[1], -p[0]) for p in parts], k_cos)
    dot_i, dot_neg = merge_knn([(p[3], -p[2]) for p in parts], k_dot)
    return -cos_neg, cos_i, -dot_neg, dot_i, np.sum([p[4] for p in parts], axis=0)


def finish_sample_lists(merged, queries, n: int, neighbour_ids, neighbour_rows) -> tuple[Neighbors, Neighbors]:
    """The cosine and dot tables of merged sample lists, as :func:`.exact.cosine_and_dot_sample` returns
    them: distances recomputed from the vectors (``neighbour_rows``, the corpus rows ``neighbour_ids``:
    every row the lists name), sorted nearest first, the cosine table with each query's mean chord
    distance to the ``n`` corpus rows."""
    t0 = time.perf_counter()
    _, cos_i, _, dot_i, dist_sum = merged
    ids = np.asarray(neighbour_ids, dtype=np.int64)
    local = np.ascontiguousarray(neighbour_rows, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    tables = []
    for lists, metric, mean in ((cos_i, "cosine", dist_sum / (n - 1)), (dot_i, "dot", None)):
        pos = np.searchsorted(ids, lists)  # every listed row is in ids (sorted, unique)
        table = finish_table(local, queries, pos, metric, "dask", t0, mean)
        tables.append(Neighbors(indices=ids[table.indices], distances=table.distances, metric=metric, exact=True,
                                backend="dask", seconds=table.seconds, mean_distance=table.mean_distance))
    return tables[0], tables[1]


def refine_near_rows(ids: np.ndarray, dist: np.ndarray, metric: str, fetch_rows, norms=None,
                     *, block_rows: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Recompute from the vectors the distances of the rows whose nearest neighbour is near (where a
    distance read off a float32 score loses its precision: :func:`.table.near_pairs`, relative to the
    row's norm ``norms`` for euclidean), and re-sort those rows.

    ``fetch_rows(sorted_row_ids) -> vectors`` reads corpus rows (the Dask engine fetches them from the
    cluster): only the near rows and their neighbours are read. Dot distances are scores: unchanged.
    """
    near = np.flatnonzero(near_pairs(dist, metric, norms).any(axis=1))
    ids, dist = ids.copy(), dist.copy()
    for start in range(0, len(near), block_rows):
        rows = near[start:start + block_rows]
        wanted = np.unique(np.concatenate([rows, ids[rows].ravel()]))
        wanted = wanted[wanted >= 0]
        local = np.ascontiguousarray(fetch_rows(wanted), dtype=np.float32)
        pos = np.searchsorted(wanted, ids[rows])
        new = refine_distances(local, local[np.searchsorted(wanted, rows)], np.where(ids[rows] < 0, -1, pos), metric)
        ids[rows], dist[rows] = nearest_first(ids[rows], np.where(ids[rows] < 0, np.inf, new).astype(np.float32))
    return ids, dist
