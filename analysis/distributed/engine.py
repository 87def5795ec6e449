"""The Dask engine's algorithms: the same as on one machine, as Dask graphs.

* Moments: each chunk's :class:`~embgeo.analysis._core.Moments` (``scan_moments``), merged pairwise up
  a tree (``split_every`` at a time): mean, covariance, norms and everything built on them (IsoScore,
  the spectrum, rogue dimensions) follow exactly, as the single pass's merge rules are exact.
* The exact self-join: chunk pairs i <= j, one task each, whose tiles serve both chunks (the symmetric
  half, as :func:`~embgeo.analysis.neighbors.exact_knn` does in one process; no task holds more than
  two chunks and one 4096 x 4096 tile); each chunk's partial lists from its B pairs merged up a tree
  (:func:`~embgeo.analysis.neighbors.merge_knn`). The diagonal pairs run first: their k-th scores
  seed every other pair's lists (:func:`~embgeo.analysis.neighbors.kth_scores`), so an off-diagonal
  pair admits only the cells that can still matter.

Dask runs the graph: a lost worker's tasks are run again from their inputs, so a result never
depends on which worker computed what (the tests kill one mid-run).
"""

from __future__ import annotations

import time

import numpy as np

from .._core import EmbeddingInputError, Moments, check_k, check_metric, scan_moments
from ..neighbors import (
    Neighbors,
    block_pair_knn,
    finish_sample_lists,
    kth_scores,
    merge_knn,
    merge_sample_lists,
    refine_near_rows,
    sample_block_lists,
)
from .arrays import row_chunks
from .cluster import require_dask
from .tracking import compute

#: Partial results merged by one task of a tree reduction.
SPLIT_EVERY = 8


def _tree(parts: list, combine, split_every: int):
    """A delayed tree reduction of ``parts`` (delayed values) by ``combine(list) -> value``."""
    import dask

    parts = list(parts)
    while len(parts) > 1:
        parts = [dask.delayed(combine)(parts[i:i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]


def _merge_moments(parts: list) -> Moments:
    total = parts[0]
    for part in parts[1:]:
        total = total.merge(part)
    return total


def dask_moments(x, *, normalize: bool | tuple = False, client=None, chunk_rows: int | None = None,
                 split_every: int = SPLIT_EVERY, progress=None):
    """Streamed moments of a (lazy) row-chunked array, computed on the cluster.

    Parameters
    ----------
    x : dask.array.Array or array-like of shape (n, d)
        Chunks of whole rows (others are rechunked; an in-memory array is chunked by ``chunk_rows``).
    normalize : bool or tuple of bool
        Moments of the unit rows (as :func:`~embgeo.analysis._core.scan_moments`); a tuple asks for
        several kinds from one graph, each chunk read once for all of them.
    client : distributed.Client, optional
        Where to run; default: Dask's current scheduler (the active client, if any).
    progress : None, bool or callable
        The share of the graph's tasks done, as a bar or ``progress(done, total, description)``; an
        exception the callback raises (:class:`~embgeo.analysis.Cancelled`) cancels the graph on the
        cluster (:func:`~embgeo.analysis.distributed.tracking.compute`).

    Returns
    -------
    Moments, or a tuple of them (one per entry of ``normalize``)
        Equal to ``scan_moments`` of the whole array up to float64 rounding of the merge order.
    """
    dask, _ = require_dask()
    x = row_chunks(x, chunk_rows=chunk_rows)
    kinds = (normalize,) if isinstance(normalize, bool) else tuple(bool(v) for v in normalize)
    blocks = x.to_delayed().ravel()
    trees = [_tree([dask.delayed(scan_moments)(block, normalize=kind) for block in blocks], _merge_moments,
                   split_every) for kind in kinds]
    out = compute(dask.delayed(tuple)(trees), client, progress=progress, description="moments on the cluster")
    return out[0] if isinstance(normalize, bool) else out


def _diagonal(a, a0: int, k: int, metric: str):
    """A chunk's lists among its own rows (global ids), and the floors they give its other pairs."""
    ids, dist, _, _ = block_pair_knn(a, a, k, metric=metric, same=True)
    return (np.where(ids < 0, -1, ids + a0), dist), kth_scores(dist, metric)


def _pair(a, b, a0: int, b0: int, k: int, metric: str, floor_a, floor_b):
    """One off-diagonal chunk pair's partial lists, with global ids (-1 kept for missing entries),
    each row's list starting at its floor from its own chunk."""
    ids_a, dist_a, ids_b, dist_b = block_pair_knn(a, b, k, metric=metric, floor_a=floor_a, floor_b=floor_b)
    return (np.where(ids_a < 0, -1, ids_a + b0), dist_a), (np.where(ids_b < 0, -1, ids_b + a0), dist_b)


def _merge_lists(k: int):
    def merge(parts):
        return merge_knn(parts, k)
    return merge


def dask_exact_knn(x, k: int = 10, *, metric: str = "cosine", client=None, chunk_rows: int | None = None,
                   split_every: int = SPLIT_EVERY, fetch_rows=None, progress=None) -> Neighbors:
    """The exact k-NN self-join of a (lazy) row-chunked array, computed on the cluster.

    Chunk pairs i <= j are one task each (the symmetric half: each tile serves both chunks' rows);
    each chunk's lists from its pairs are merged by a tree reduction. Each point's own row is
    excluded. Distances are read off the float32 tile scores (:func:`~embgeo.analysis.neighbors.
    scores_to_distances`), within about 1e-6 of the single-machine table's, and recomputed from the
    vectors for the rows with a near neighbour (:func:`~embgeo.analysis.neighbors.refine_near_rows`),
    so the ids agree but for near-ties.

    Parameters
    ----------
    x : dask.array.Array or array-like of shape (n, d)
    k : int
        Neighbours per point.
    metric : {"cosine", "dot", "euclidean"}
    client : distributed.Client, optional
        Where to run; default: Dask's current scheduler.
    chunk_rows : int
        Rows per chunk when ``x`` is in memory (a dask array keeps its row chunks); default
        :func:`~embgeo.analysis.distributed.arrays.default_chunk_rows`.
    fetch_rows : callable, optional
        ``fetch_rows(sorted_ids) -> vectors`` reads a few rows where the client can (a local memory
        map of the same file); default: from the cluster (which reads every chunk once to find them).
    progress : None, bool or callable
        As for :func:`dask_moments`: the share of the chunk pairs and merges done.

    Returns
    -------
    Neighbors
        ``exact=True``; ``backend`` names the engine and the number of chunks.
    """
    dask, _ = require_dask()
    t0 = time.perf_counter()
    metric = check_metric(metric)
    x = row_chunks(x, chunk_rows=chunk_rows)
    n = x.shape[0]
    k = check_k(k, n - 1, context="neighbours in the corpus (self excluded)")
    sizes = x.chunks[0]
    if min(sizes) < 1:
        raise EmbeddingInputError("the array has an empty row chunk; rechunk it")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    blocks = x.to_delayed().ravel()
    # the diagonal pairs first: each chunk's k-th score among its own rows is a floor under its lists
    # in every other pair (no cell below it can be among the k nearest), so no pair starts cold
    diagonal = [dask.delayed(_diagonal, nout=2)(blocks[i], int(starts[i]), k, metric) for i in range(len(blocks))]
    partial = [[lists] for lists, _ in diagonal]
    for i in range(len(blocks)):
        for j in range(i + 1, len(blocks)):
            out_a, out_b = dask.delayed(_pair, nout=2)(blocks[i], blocks[j], int(starts[i]), int(starts[j]), k,
                                                       metric, diagonal[i][1], diagonal[j][1])
            partial[i].append(out_a)
            partial[j].append(out_b)
    merged = [_tree(parts, _merge_lists(k), split_every) for parts in partial]
    lists = compute(dask.delayed(list)(merged), client, progress=progress,
                    description=f"exact {k}-NN self-join ({metric}) on the cluster")
    ids = np.concatenate([p[0] for p in lists])
    dist = np.concatenate([p[1] for p in lists])
    # near pairs' distances from the vectors, as one process computes every distance (few rows: those
    # with a near duplicate; only they and their neighbours are fetched)
    norms = compute((x * x).sum(axis=1) ** 0.5, client) if metric == "euclidean" else None
    fetch = fetch_rows or (lambda wanted: _rows(x, wanted, client))
    ids, dist = refine_near_rows(ids, dist, metric, fetch, norms)
    return Neighbors(indices=ids, distances=dist, metric=metric, exact=True,
                     backend=f"dask(exact self-join, {len(blocks)} chunks, {len(blocks) * (len(blocks) + 1) // 2} pairs)",
                     seconds=time.perf_counter() - t0)


def dask_cosine_and_dot_sample(x, query_rows, k_cos: int, k_dot: int, *, client=None,
                               chunk_rows: int | None = None, split_every: int = SPLIT_EVERY, fetch_rows=None,
                               progress=None):
    """The report's query sample on the cluster: exact cosine and dot neighbours of the rows
    ``query_rows`` of ``x``, and their mean chord distance to all rows, as
    :func:`~embgeo.analysis.neighbors.cosine_and_dot_sample` returns them.

    The queries travel to every chunk (one copy per worker); each chunk's task folds them against its
    rows; the partial lists are merged up a tree; the client then fetches only the rows the lists name
    and recomputes their distances from the vectors (so they equal the single-machine tables').
    ``fetch_rows`` as for :func:`dask_exact_knn`, ``progress`` as for :func:`dask_moments`.
    """
    dask, _ = require_dask()
    x = row_chunks(x, chunk_rows=chunk_rows)
    n = x.shape[0]
    rows = np.asarray(query_rows, dtype=np.int64).ravel()
    check_k(max(k_cos, k_dot), n - 1, context="neighbours in the corpus (self excluded)")
    fetch = fetch_rows or (lambda wanted: _rows(x, wanted, client))
    order = np.argsort(rows, kind="stable")
    queries = np.empty((len(rows), x.shape[1]), dtype=np.float32)
    queries[order] = fetch(rows[order])
    shared_queries = dask.delayed(queries)  # one key: sent to each worker once, not once per task
    starts = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]]).astype(int)
    parts = [dask.delayed(sample_block_lists)(block, int(s), shared_queries, rows, k_cos, k_dot)
             for block, s in zip(x.to_delayed().ravel(), starts)]
    merged = compute(_tree(parts, lambda p: merge_sample_lists(p, k_cos, k_dot), split_every), client,
                     progress=progress, description="query sample's search on the cluster")
    needed = np.unique(np.concatenate([merged[1].ravel(), merged[3].ravel()]))
    return finish_sample_lists(merged, queries, n, needed, fetch(needed))


def _rows(x, rows: np.ndarray, client) -> np.ndarray:
    """Rows of a dask array (``rows`` sorted), computed on the cluster."""
    return np.asarray(compute(x[rows], client), dtype=np.float32)
