"""Exact k-nearest neighbours by blocked float32 matrix products: the shared engine's exact path.

See :mod:`.table` for the conventions every table follows (distances per metric, sorting). When
queries are the corpus itself, each point's own row is excluded from its neighbours (by index, so
exact duplicates of a point still count as its neighbours).

The kernel never forms an n x n matrix. It walks the corpus in blocks (read once, which suits a
memory-mapped file larger than RAM) and, for each block, the queries in blocks; each tile of scores is
folded into a running top k (:mod:`._backend`). A self-join computes only the tiles i <= j of the
symmetric score matrix, each serving its rows and its columns. Distances of the selected pairs are
then recomputed from the vectors (:func:`.table.refine_distances`).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from .._core import (
    EmbeddingInputError,
    Progress,
    as_float32_matrix,
    blocked_row_norms,
    check_finite,
    check_distance_metric,
    check_k,
    check_metric,
    check_no_zero_rows,
    check_same_dim,
    prepare_rows,
    resolve_memory_limit,
)
from ._backend import Ops, fold_tile, host_folds, merge_topk, numba_thread_pool, resolve_backend
from ._fold_kernels import fold_cosine_and_dot, fold_rows
from .table import Neighbors, finish_table

#: Upper bound on the bytes of one score tile (query block x corpus block, float32).
TILE_BYTES = 256 * 2**20
#: Corpus rows handled per outer step; bounded so a block of a memory map stays well inside RAM.
CORPUS_BLOCK_ROWS = 65_536
#: Side of the square tiles of the symmetric self-join (4096^2 float32 = 64 MB).
SYMMETRIC_BLOCK_ROWS = 4_096
#: Self-joins of data up to this size (prepared float32) use the symmetric kernel.
SYMMETRIC_MAX_BYTES = 8 * 2**30


def exact_knn(
    corpus,
    queries=None,
    k: int = 10,
    *,
    metric: str = "cosine",
    query_indices=None,
    backend: str = "auto",
    mean_distance: bool = False,
    progress: bool | None = None,
    validate: bool = True,
    memory_limit: int | None = None,
) -> Neighbors:
    """Exact k nearest neighbours by blocked matrix products.

    Parameters
    ----------
    corpus : array-like of shape (n, d)
        The vectors searched. A read-only memory map is read block by block, once.
    queries : array-like of shape (m, d), optional
        Query vectors. If omitted, the corpus is its own query set and each point's own row is
        excluded from its neighbours.
    k : int
        Number of neighbours per query.
    metric : {"cosine", "dot", "euclidean"}
        See the module docstring for the distance each metric stores.
    query_indices : array-like of int, optional
        Corpus rows to use as queries (a query sample); their own rows are excluded. Exclusive with
        ``queries``.
    backend : {"auto", "numpy", "torch-cpu", "torch-cuda"}
        ``"auto"`` uses torch on the GPU when one is visible, else torch on the CPU.
    mean_distance : bool
        Also return each query's mean distance to the whole corpus (self excluded), computed in the
        same pass (used by relative contrast). Not defined for ``metric="dot"``.
    progress : None, bool or callable
        A progress bar (None: only for searches with more than ~1e10 multiply-adds), or a callback
        ``progress(tiles_done, tiles_total, description)`` called after every tile; an exception it
        raises (:class:`~embgeo.analysis.Cancelled`) stops the search.
    validate : bool
        Check for NaN/inf rows and, under cosine, zero rows (one blocked pass over the data).
    memory_limit : int, optional
        Bytes the search may hold besides the input (default: half the available memory). The
        symmetric self-join keeps the prepared corpus resident (n x d float32) and is used only when
        that fits; otherwise the corpus is streamed block by block, twice the products.

    Returns
    -------
    Neighbors
        ``indices`` and ``distances`` of shape (m, k), nearest first.
    """
    t0 = time.perf_counter()
    metric = check_metric(metric)
    corpus = as_float32_matrix(corpus, name="corpus")
    self_join = queries is None
    if query_indices is not None:
        if not self_join:
            raise EmbeddingInputError("pass either queries or query_indices, not both")
        query_indices = np.asarray(query_indices, dtype=np.int64).ravel()
        if len(query_indices) == 0 or query_indices.min() < 0 or query_indices.max() >= corpus.shape[0]:
            raise EmbeddingInputError("query_indices must be non-empty corpus row numbers")
        queries_arr = corpus[query_indices]
        q_ids = query_indices
    elif self_join:
        queries_arr, q_ids = corpus, np.arange(corpus.shape[0], dtype=np.int64)
    else:
        queries_arr = as_float32_matrix(queries, name="queries")
        check_same_dim(corpus, queries_arr)
        q_ids = None
    n, d = corpus.shape
    m = queries_arr.shape[0]
    if q_ids is not None:
        check_k(k, n - 1, context="neighbours in the corpus (self excluded)")
    else:
        check_k(k, n, context="corpus points")
    if mean_distance:
        check_distance_metric(metric, "mean_distance")
    if validate:
        check_finite(corpus, "corpus")
        check_no_zero_rows(corpus, metric, "corpus")
        if not self_join or query_indices is not None:
            if q_ids is None:
                check_finite(queries_arr, "queries")
                check_no_zero_rows(queries_arr, metric, "queries")

    backend = resolve_backend(backend)
    ops = Ops(backend)
    resident = n * d * 4  # the symmetric join keeps every prepared block
    fits = resident <= min(SYMMETRIC_MAX_BYTES, resolve_memory_limit(memory_limit))
    if self_join and query_indices is None and fits:
        ids, mean_d = _symmetric_self_join(corpus, k, metric, ops, mean_distance, progress)
        return finish_table(corpus, corpus, ids, metric, backend, t0, mean_d)
    c_rows = min(n, CORPUS_BLOCK_ROWS)
    q_rows = max(64, min(m, TILE_BYTES // (4 * c_rows)))
    n_tiles = -(-n // c_rows) * -(-m // q_rows)
    bar = Progress(progress, n_tiles, f"exact {k}-NN ({metric}, {backend})", unit="tile",
                   auto=float(n) * m * d > 1e10)

    # Queries are resident as prepared blocks when they fit comfortably; else prepared per visit.
    q_blocks_resident = m * d * 4 <= 2 * 2**30
    q_cache: dict[int, tuple] = {}

    def query_block(start):
        if start in q_cache:
            return q_cache[start]
        raw = queries_arr[start:start + q_rows]
        qb = ops.put(prepare_rows(raw, metric))
        qsq = ops.sqnorm(qb) if metric == "euclidean" else None
        ids = None if q_ids is None else ops.put_ids(q_ids[start:start + q_rows])
        item = (qb, qsq, ids)
        if q_blocks_resident:
            q_cache[start] = item
        return item

    best_s = ops.full((m, k), -np.inf, np.float32)
    best_i = ops.full((m, k), -1, np.int64)
    dist_sum = np.zeros(m, dtype=np.float64) if mean_distance else None

    # On the host each tile is folded by numba (threshold per query, as in the self-join) and the
    # products run in numba's pool; the GPU (and HOST_FOLD = "array") takes a top-k and a merge.
    host_fold = host_folds(ops)
    kth = ops.full((m,), -np.inf, np.float32) if host_fold else None
    with numba_thread_pool(ops) if host_fold else contextlib.nullcontext():
        for c_start in range(0, n, c_rows):
            cb = ops.put(prepare_rows(corpus[c_start:c_start + c_rows], metric))
            c_sq = ops.sqnorm(cb) if metric == "euclidean" else None
            c_ids = ops.arange(c_start, c_start + cb.shape[0])
            for q_start in range(0, m, q_rows):
                qb, q_sq, ids = query_block(q_start)
                s = ops.scores(qb, cb, c_sq, metric)
                masked = None if ids is None else ops.mask_self(s, ids, c_start)
                if host_fold:
                    fold_rows(ops.get(s), ops.get(best_s), ops.get(best_i), ops.get(kth), q_start, c_start)
                else:
                    vals, pos = ops.topk(s, k)
                    merge_topk(ops, best_s, best_i, slice(q_start, q_start + s.shape[0]), vals, c_ids[pos], k)
                if mean_distance:  # the tile is spent; reuse it for the distances
                    if masked is not None:  # a point's distance to itself is zero
                        rows, cols = masked
                        s[rows, cols] = 1.0 if metric == "cosine" else q_sq[rows]
                    d = ops.to_distances_(s, metric, q_sq)
                    dist_sum[q_start:q_start + s.shape[0]] += ops.get(ops.sum_axis(d, 1))
                bar.update()
    bar.close()

    mean_d = None
    if mean_distance:
        mean_d = (dist_sum / (n - 1 if q_ids is not None else n)).astype(np.float64)
    return finish_table(corpus, queries_arr, ops.get(best_i).astype(np.int64), metric, backend, t0, mean_d)


def cosine_and_dot_sample(corpus, query_indices, k_cos: int, k_dot: int) -> tuple[Neighbors, Neighbors]:
    """Exact cosine and dot-product neighbours of some corpus rows, from one product per tile.

    The cosine table (``k_cos`` neighbours, chord distances, each query's mean chord distance to the
    corpus) and the dot table (``k_dot`` neighbours, distance ``-<q, x>``) of the same queries come
    from one pass over the corpus: the inner product of the raw vectors is the cosine times both
    norms, so the one matrix product of unit vectors serves both rankings. A report's concentration
    and cosine-versus-dot parts, which need exactly these, then cost one search instead of two.
    Queries exclude themselves. The input is assumed valid (no NaN/inf, no zero rows).
    """
    t0 = time.perf_counter()
    corpus = as_float32_matrix(corpus, name="corpus")
    rows = np.asarray(query_indices, dtype=np.int64).ravel()
    n = corpus.shape[0]
    check_k(max(k_cos, k_dot), n - 1, context="neighbours in the corpus (self excluded)")
    queries = corpus[rows]
    lists = SampleLists(queries, rows, k_cos, k_dot)
    lists.fold_all(corpus, 0)
    cos_s, cos_i, dot_s, dot_i, dist_sum = lists.arrays()
    cos_t = finish_table(corpus, queries, cos_i, "cosine", "numpy", t0, dist_sum / (n - 1))
    dot_t = finish_table(corpus, queries, dot_i, "dot", "numpy", t0, None)
    return cos_t, dot_t


class SampleLists:
    """The running cosine and dot lists of some corpus rows (the queries) and their chord-distance sums,
    folded one corpus block at a time (:func:`cosine_and_dot_sample`; the Dask engine folds each chunk
    into lists of its own and merges them, :func:`.blocks.merge_sample_lists`)."""

    def __init__(self, queries, rows, k_cos: int, k_dot: int):
        self.rows = np.asarray(rows, dtype=np.int64)
        m = len(self.rows)
        self.q_norm = blocked_row_norms(queries)
        self.q_unit = np.asarray(queries, dtype=np.float32) / self.q_norm[:, None]
        self.ops = Ops("numpy")
        self.cos_s, self.cos_i = np.full((m, k_cos), -np.inf, np.float32), np.full((m, k_cos), -1)
        self.dot_s, self.dot_i = np.full((m, k_dot), -np.inf, np.float32), np.full((m, k_dot), -1)
        self.cos_kth, self.dot_kth = np.full(m, -np.inf, np.float32), np.full(m, -np.inf, np.float32)
        self.dist_sum = np.zeros(m)

    def fold_all(self, rows, start: int) -> None:
        """Fold the corpus rows ``start : start + len(rows)`` (raw vectors; a memory map is read a block
        at a time) into the lists, :data:`CORPUS_BLOCK_ROWS` at a time."""
        with numba_thread_pool(self.ops):  # the tiles' products are numba's
            for c_start in range(0, len(rows), CORPUS_BLOCK_ROWS):
                self.fold(rows[c_start:c_start + CORPUS_BLOCK_ROWS], start + c_start)

    def fold(self, block, c_start: int) -> None:
        """Fold the corpus rows ``c_start : c_start + len(block)`` (raw vectors) into the lists. Run it
        inside :func:`numba_thread_pool` (the tiles' products are numba's)."""
        m = len(self.rows)
        q_rows = max(64, min(m, TILE_BYTES // (4 * max(1, min(len(block), CORPUS_BLOCK_ROWS)))))
        c_norm = blocked_row_norms(block)
        cb = np.asarray(block, dtype=np.float32) / c_norm[:, None]
        for q_start in range(0, m, q_rows):
            s = self.ops.matmul_t(self.q_unit[q_start:q_start + q_rows], cb)
            self.ops.mask_self(s, self.rows[q_start:q_start + q_rows], c_start)
            fold_cosine_and_dot(s, self.q_norm[q_start:q_start + q_rows], c_norm, self.cos_s, self.cos_i,
                                self.cos_kth, self.dot_s, self.dot_i, self.dot_kth, self.dist_sum, q_start, c_start)

    def arrays(self):
        """``(cos_scores, cos_ids, dot_scores, dot_ids, chord_distance_sums)``."""
        return self.cos_s, self.cos_i, self.dot_s, self.dot_i, self.dist_sum


def _symmetric_self_join(corpus, k, metric, ops, mean_distance, progress):
    """Self-join k-NN computing only the tiles i <= j of the (symmetric) score matrix.

    Each off-diagonal tile S = B_i B_j^T serves twice: its rows are candidates for block i and its
    columns for block j, so the matrix products cost half of a general search. Scores are the inner
    product (cosine on unit vectors, dot) or minus the squared distance (euclidean), all symmetric.
    """
    n = corpus.shape[0]
    b = min(n, SYMMETRIC_BLOCK_ROWS)
    starts = list(range(0, n, b))
    blocks, sqnorms = [], []
    for start in starts:
        blk = ops.put(prepare_rows(corpus[start:start + b], metric))
        blocks.append(blk)
        sqnorms.append(ops.sqnorm(blk) if metric == "euclidean" else None)
    best_s = ops.full((n, k), -np.inf, np.float32)
    best_i = ops.full((n, k), -1, np.int64)
    kth = ops.full((n,), -np.inf, np.float32)  # each point's current k-th best score (see _fold_tile)
    dist_sum = np.zeros(n, dtype=np.float64) if mean_distance else None
    bar = Progress(progress, len(starts) * (len(starts) + 1) // 2, f"exact {k}-NN self-join ({metric})",
                   unit="tile", auto=float(n) * n * corpus.shape[1] > 2e10)
    # The host folds run in numba's thread pool; so do the products then (see numba_thread_pool).
    pooled = host_folds(ops)
    with numba_thread_pool(ops) if pooled else contextlib.nullcontext():
        for bi, i0 in enumerate(starts):
            rows_i = slice(i0, i0 + blocks[bi].shape[0])
            for bj in range(bi, len(starts)):
                j0 = starts[bj]
                rows_j = slice(j0, j0 + blocks[bj].shape[0])
                s = ops.matmul_t(blocks[bi], blocks[bj])
                if metric == "euclidean":  # -(|x|^2 + |y|^2 - 2<x, y>)
                    s *= 2
                    s -= sqnorms[bi][:, None]
                    s -= sqnorms[bj][None, :]
                if bi == bj:
                    diag = ops.arange(0, s.shape[0])
                    s[diag, diag] = -np.inf
                fold_tile(ops, best_s, best_i, kth, s, 1, i0, j0, k)
                if bi != bj:
                    fold_tile(ops, best_s, best_i, kth, s, 0, j0, i0, k)
                if mean_distance:  # the tile is spent; reuse it for the distances
                    if bi == bj:  # a point's distance to itself is zero
                        s[diag, diag] = 1.0 if metric == "cosine" else 0.0
                    d = ops.to_distances_(s, metric)
                    dist_sum[rows_i] += ops.get(ops.sum_axis(d, 1))
                    if bi != bj:
                        dist_sum[rows_j] += ops.get(ops.sum_axis(d, 0))
                bar.update()
    bar.close()
    mean_d = None if dist_sum is None else dist_sum / (n - 1)
    return ops.get(best_i).astype(np.int64), mean_d
