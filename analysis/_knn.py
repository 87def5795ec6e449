"""The shared neighbour engine: exact k-nearest neighbours by blocked float32 matrix products.

Conventions (the same for every statistic built on neighbours):

* ``metric="cosine"``: vectors are L2-normalised and the *distance* is the chord ``||u - v||``
  (monotone in cosine; ``1 - cos`` is a squared distance and would halve dimension estimates).
* ``metric="euclidean"``: the distance is ``||x - y||``.
* ``metric="dot"``: neighbours maximise the inner product; the stored "distance" is ``-<x, y>``,
  which ranks correctly but is not a metric, so distance-based estimators refuse it.
* When queries are the corpus itself, each point's own row is excluded from its neighbours (by index,
  so exact duplicates of a point still count as its neighbours).

The kernel never forms an n x n matrix. It walks the corpus in blocks (read once, which suits a
memory-mapped file larger than RAM) and, for each block, the queries in blocks; each tile of scores is
reduced to its top k and merged into a running top k. Distances of the selected pairs are then
recomputed directly from the vectors, so near-duplicates get accurate small distances (TwoNN and MLE
depend on the smallest ones) instead of the cancellation error of ``|x|^2 + |y|^2 - 2<x, y>``.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass

import numba
import numpy as np

from ._fold import fold_cosine_and_dot, fold_rows, fold_tile, pair_distances, row_norms, tile_product
from ._results import Result, metric as _field
from ._validation import (
    EmbeddingInputError,
    as_float32_matrix,
    check_finite,
    check_k,
    check_metric,
    check_no_zero_rows,
    check_random_state,
    check_same_dim,
    iter_row_blocks,
)

#: Upper bound on the bytes of one score tile (query block x corpus block, float32).
TILE_BYTES = 256 * 2**20
#: Corpus rows handled per outer step; bounded so a block of a memory map stays well inside RAM.
CORPUS_BLOCK_ROWS = 65_536
#: Side of the square tiles of the symmetric self-join (4096^2 float32 = 64 MB).
SYMMETRIC_BLOCK_ROWS = 4_096
#: Self-joins of data up to this size (prepared float32) use the symmetric kernel.
SYMMETRIC_MAX_BYTES = 8 * 2**30


@dataclass(frozen=True, repr=False)
class Neighbors(Result):
    """k nearest neighbours of a set of queries, sorted from nearest to farthest."""

    _title = "k-nearest-neighbour table"
    indices: np.ndarray = _field("Corpus row of each neighbour, shape (n_queries, k).")
    distances: np.ndarray = _field("Distance to each neighbour (chord for cosine; -dot for dot).")
    metric: str = _field("Similarity used.")
    exact: bool = _field("True for exact search; False for an approximate index.")
    recall: float | None = _field("Measured recall@k of approximate search against exact search.", default=None)
    recall_sample: int = _field("Queries on which that recall was measured.", default=0)
    backend: str = _field("Where the products ran (numpy, torch-cpu, torch-cuda), or the approximate join's "
                          "settings.", default="")
    seconds: float = _field("Wall time of the search.", default=float("nan"))
    mean_distance: np.ndarray | None = _field(
        "Mean distance from each query to the whole corpus (self excluded), when asked for.", default=None
    )

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
        return Neighbors(
            indices=self.indices[:, :k], distances=self.distances[:, :k], metric=self.metric,
            exact=self.exact, recall=self.recall, recall_sample=self.recall_sample,
            backend=self.backend, seconds=self.seconds, mean_distance=self.mean_distance,
        )

    def rows(self, queries: np.ndarray) -> "Neighbors":
        """The table restricted to the given query rows (mean distances too, where present)."""
        queries = np.asarray(queries)
        return Neighbors(
            indices=self.indices[queries], distances=self.distances[queries], metric=self.metric,
            exact=self.exact, recall=self.recall, recall_sample=self.recall_sample, backend=self.backend,
            seconds=self.seconds, mean_distance=None if self.mean_distance is None else self.mean_distance[queries],
        )

    def to_dict(self) -> dict:  # the arrays can be large; keep the JSON summary small
        return {
            "k": self.k, "n_queries": self.n_queries, "metric": self.metric, "exact": self.exact,
            "recall": self.recall, "recall_sample": self.recall_sample, "backend": self.backend,
            "seconds": self.seconds,
        }


# --------------------------------------------------------------------------------------------- helpers


def _normalise_rows(block: np.ndarray) -> np.ndarray:
    # einsum forms the row norms without the n x d temporary of np.linalg.norm (3x faster)
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
    return block / np.maximum(norms, np.finfo(np.float32).tiny)


def resolve_backend(backend: str = "auto") -> str:
    """Map ``"auto"`` to ``"torch-cuda"`` when a GPU is visible, else ``"torch-cpu"``."""
    if backend in ("numpy", "torch-cpu", "torch-cuda"):
        if backend == "torch-cuda":
            import torch

            if not torch.cuda.is_available():
                raise EmbeddingInputError("backend='torch-cuda' was asked for but torch sees no CUDA device")
        return backend
    if backend == "torch":
        backend = "auto"
    if backend != "auto":
        raise EmbeddingInputError(f"unknown backend {backend!r}; choose auto, numpy, torch-cpu or torch-cuda")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "numpy"
    return "torch-cuda" if torch.cuda.is_available() else "torch-cpu"


class _Ops:
    """The few array operations the tiled kernel needs, for NumPy or for torch on one device."""

    def __init__(self, backend: str):
        self.backend = backend
        self._scratch = None  # host memory reused by every score tile (see matmul_t)
        self.numba_products = False  # host products by numba's workers (see numba_thread_pool)
        if backend.startswith("torch"):
            import torch

            self.torch = torch
            self.device = torch.device("cuda" if backend == "torch-cuda" else "cpu")

    def put(self, a: np.ndarray):
        if self.backend == "numpy":
            return np.ascontiguousarray(a, dtype=np.float32)
        with warnings.catch_warnings():  # read-only views are fine: the kernel never writes to inputs
            warnings.simplefilter("ignore", UserWarning)
            t = self.torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        return t.to(self.device, non_blocking=True)

    def put_ids(self, a: np.ndarray):
        a = np.ascontiguousarray(a, dtype=np.int64)
        return a if self.backend == "numpy" else self.torch.from_numpy(a).to(self.device)

    def get(self, t) -> np.ndarray:
        return t if self.backend == "numpy" else t.cpu().numpy()

    def matmul_t(self, a, b):
        """``a @ b.T``; on the host, into one reused buffer with NumPy's BLAS.

        Two measured reasons (2-core EPYC, 4096 x 4096 x 384 tiles): OpenBLAS sgemm runs at ~200
        GFLOP/s against ~150 for torch's CPU matmul, and writing into memory already mapped avoids
        the page faults of a fresh 64-256 MB tile per step. torch tensors on the CPU share memory
        with NumPy, so the torch ops that follow (top-k) read the same buffer without a copy. The
        returned tile is only valid until the next call.
        """
        if self.backend == "torch-cuda":
            return a @ b.T
        rows, cols = a.shape[0], b.shape[0]
        if self._scratch is None or self._scratch.size < rows * cols:
            self._scratch = None  # let the old buffer go before taking the larger one
            self._scratch = np.empty(rows * cols, dtype=np.float32)
        out = self._scratch[:rows * cols].reshape(rows, cols)
        a_np, b_np = (a, b) if self.backend == "numpy" else (a.numpy(), b.numpy())
        if self.numba_products:
            tile_product(a_np, b_np, out, numba.get_num_threads())
        else:
            np.matmul(a_np, b_np.T, out=out)
        return out if self.backend == "numpy" else self.torch.from_numpy(out)

    def scores(self, q, c, c_sqnorm, metric):
        """Higher is nearer: <u, v> (cosine, dot) or 2<x, y> - |y|^2 (euclidean)."""
        s = self.matmul_t(q, c)
        if metric == "euclidean":
            s *= 2
            s -= c_sqnorm[None, :]
        return s

    def sqnorm(self, c):
        return (c * c).sum(1)

    def topk(self, s, k):
        """Top k columns of each row (values, positions), unsorted."""
        if self.backend == "numpy":
            if k >= s.shape[1]:
                pos = np.broadcast_to(np.arange(s.shape[1]), s.shape).copy()
            else:
                pos = np.argpartition(-s, k - 1, axis=1)[:, :k]
            return np.take_along_axis(s, pos, axis=1), pos
        k = min(k, s.shape[1])
        vals, pos = self.torch.topk(s, k, dim=1, sorted=False)
        return vals, pos

    def cat(self, a, b):
        return np.concatenate([a, b], axis=1) if self.backend == "numpy" else self.torch.cat([a, b], dim=1)

    def take(self, a, pos):
        return np.take_along_axis(a, pos, axis=1) if self.backend == "numpy" else self.torch.gather(a, 1, pos)

    def full(self, shape, value, dtype):
        if self.backend == "numpy":
            return np.full(shape, value, dtype=dtype)
        tdtype = {np.float32: self.torch.float32, np.int64: self.torch.int64}[dtype]
        return self.torch.full(shape, value, dtype=tdtype, device=self.device)

    def arange(self, start, stop):
        if self.backend == "numpy":
            return np.arange(start, stop, dtype=np.int64)
        return self.torch.arange(start, stop, dtype=self.torch.int64, device=self.device)

    def mask_self(self, s, q_ids, c_start):
        """Set the score of each query against its own corpus row to -inf; return those cells."""
        c_stop = c_start + s.shape[1]
        if self.backend == "numpy":
            rows = np.flatnonzero((q_ids >= c_start) & (q_ids < c_stop))
        else:
            rows = ((q_ids >= c_start) & (q_ids < c_stop)).nonzero().squeeze(1)
        cols = q_ids[rows] - c_start
        s[rows, cols] = -np.inf
        return rows, cols

    def sum_axis(self, d, axis):
        """Sums along ``axis`` as float64. torch sums float32 tiles by cascade (pairwise) summation,
        accurate to ~1e-6 relative and 20-50x faster than summing with dtype=float64."""
        if self.backend == "numpy":
            return d.sum(axis, dtype=np.float64)
        return d.sum(axis).double()

    def to_distances_(self, s, metric, q_sqnorm=None):
        """Overwrite a score tile with the distances it implies, in place; return the tile.

        Runs after the tile's top-k has been taken, so no second n_q x n_c buffer is allocated
        (at 1,000 x 50,000 the allocations and masks cost three times the matrix product).
        Scores are <u, v> of unit vectors (cosine: distance sqrt(2 - 2s)), 2<q, c> - |c|^2 with
        ``q_sqnorm`` given (euclidean: sqrt(|q|^2 - s)), or -|x - y|^2 with ``q_sqnorm`` None
        (the symmetric euclidean tile). Rounding can push the squared distance below zero; it is
        clamped. Callers set masked (self) cells to a score meaning distance zero beforehand.
        """
        if self.backend == "numpy":
            if metric == "cosine":
                np.minimum(s, 1.0, out=s)
                s *= -2.0
                s += 2.0
            else:
                np.negative(s, out=s)
                if q_sqnorm is not None:
                    s += q_sqnorm[:, None]
                np.maximum(s, 0.0, out=s)
            return np.sqrt(s, out=s)
        if metric == "cosine":
            return s.clamp_(max=1.0).mul_(-2.0).add_(2.0).sqrt_()
        s.neg_()
        if q_sqnorm is not None:
            s.add_(q_sqnorm[:, None])
        return s.clamp_(min=0.0).sqrt_()


def _prepare(block: np.ndarray, metric: str) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    return _normalise_rows(block) if metric == "cosine" else block


def _refine_distances(corpus, queries, ids, metric, visit=None):
    """Distances for the selected pairs, computed from the vector difference (no cancellation).

    The score tiles give a distance as sqrt(2 - 2s) or sqrt(|q|^2 + |c|^2 - 2<q, c>), which loses
    all precision for near neighbours; the difference q - c does not. Float32 suffices: the inputs
    are float32 unit vectors (for cosine), so their own rounding (~6e-8) bounds what float64 could
    recover. One numba pass reads each listed corpus row in place, with no gathered copies (the
    NumPy version that gathered (rows, k, d) blocks took 8 s on 100,000 x 32 neighbours x 384).
    ``visit``: an order of the query rows to compute them in (see :func:`._fold.pair_distances`).
    """
    mode = {"cosine": 0, "euclidean": 1, "dot": 2}[metric]
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    corpus = np.asarray(corpus, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    # Under cosine each row is divided by its norm, summed in one fixed order whatever the row's
    # place in memory (SIMD sums are not), so identical rows give identical unit vectors and a
    # distance of exactly 0.
    if mode == 0:
        c_norms = np.concatenate([row_norms(b) for _, b in iter_row_blocks(corpus)])
        q_norms = c_norms if queries is corpus else row_norms(queries)
    else:
        c_norms = q_norms = np.empty(0, dtype=np.float32)
    visit = np.empty(0, dtype=np.int64) if visit is None else np.ascontiguousarray(visit, dtype=np.int64)
    return pair_distances(corpus, queries, ids, c_norms, q_norms, mode, visit)


# --------------------------------------------------------------------------------------------- exact


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
    progress : bool, optional
        Show a progress bar; by default only for searches with more than ~1e10 multiply-adds.
    validate : bool
        Check for NaN/inf rows and, under cosine, zero rows (one blocked pass over the data).

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
    check_k(k, n - 1 if q_ids is not None else n, context="neighbours in the corpus (self excluded)" if q_ids is not None else "corpus points")
    if mean_distance and metric == "dot":
        raise EmbeddingInputError("mean_distance needs a distance; it is undefined for metric='dot'")
    if validate:
        check_finite(corpus, "corpus")
        check_no_zero_rows(corpus, metric, "corpus")
        if not self_join or query_indices is not None:
            if q_ids is None:
                check_finite(queries_arr, "queries")
                check_no_zero_rows(queries_arr, metric, "queries")

    backend = resolve_backend(backend)
    ops = _Ops(backend)
    if self_join and query_indices is None and n * d * 4 <= SYMMETRIC_MAX_BYTES:
        ids, mean_d = _symmetric_self_join(corpus, k, metric, ops, mean_distance, progress)
        return _finish(corpus, corpus, ids, metric, backend, t0, mean_d)
    c_rows = min(n, CORPUS_BLOCK_ROWS)
    q_rows = max(64, min(m, TILE_BYTES // (4 * c_rows)))
    n_tiles = -(-n // c_rows) * -(-m // q_rows)
    if progress is None:
        progress = float(n) * m * d > 1e10
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tiles, desc=f"exact {k}-NN ({metric}, {backend})", unit="tile", leave=False)

    # Queries are resident as prepared blocks when they fit comfortably; else prepared per visit.
    q_blocks_resident = m * d * 4 <= 2 * 2**30
    q_cache: dict[int, tuple] = {}

    def query_block(start):
        if start in q_cache:
            return q_cache[start]
        raw = queries_arr[start:start + q_rows]
        qb = ops.put(_prepare(raw, metric))
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
    host_fold = ops.backend != "torch-cuda" and HOST_FOLD == "numba"
    kth = ops.full((m,), -np.inf, np.float32) if host_fold else None
    with numba_thread_pool(ops) if host_fold else contextlib.nullcontext():
        for c_start in range(0, n, c_rows):
            cb = ops.put(_prepare(corpus[c_start:c_start + c_rows], metric))
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
                    _merge_topk(ops, best_s, best_i, slice(q_start, q_start + s.shape[0]), vals, c_ids[pos], k)
                if mean_distance:  # the tile is spent; reuse it for the distances
                    if masked is not None:  # a point's distance to itself is zero
                        rows, cols = masked
                        s[rows, cols] = 1.0 if metric == "cosine" else q_sq[rows]
                    d = ops.to_distances_(s, metric, q_sq)
                    dist_sum[q_start:q_start + s.shape[0]] += ops.get(ops.sum_axis(d, 1))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()

    mean_d = None
    if mean_distance:
        mean_d = (dist_sum / (n - 1 if q_ids is not None else n)).astype(np.float64)
    return _finish(corpus, queries_arr, ops.get(best_i).astype(np.int64), metric, backend, t0, mean_d)


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
    n, m = corpus.shape[0], len(rows)
    check_k(max(k_cos, k_dot), n - 1, context="neighbours in the corpus (self excluded)")
    queries = corpus[rows]
    q_norm = row_norms(queries)
    q_unit = queries / q_norm[:, None]
    ops = _Ops("numpy")
    c_rows = min(n, CORPUS_BLOCK_ROWS)
    q_rows = max(64, min(m, TILE_BYTES // (4 * c_rows)))
    cos_s, cos_i = np.full((m, k_cos), -np.inf, np.float32), np.full((m, k_cos), -1)
    dot_s, dot_i = np.full((m, k_dot), -np.inf, np.float32), np.full((m, k_dot), -1)
    cos_kth, dot_kth = np.full(m, -np.inf, np.float32), np.full(m, -np.inf, np.float32)
    dist_sum = np.zeros(m)
    with numba_thread_pool(ops):
        for c_start in range(0, n, c_rows):
            block = corpus[c_start:c_start + c_rows]
            c_norm = row_norms(block)
            cb = block / c_norm[:, None]
            for q_start in range(0, m, q_rows):
                s = ops.matmul_t(q_unit[q_start:q_start + q_rows], cb)
                ops.mask_self(s, rows[q_start:q_start + q_rows], c_start)
                fold_cosine_and_dot(s, q_norm[q_start:q_start + q_rows], c_norm, cos_s, cos_i, cos_kth,
                                    dot_s, dot_i, dot_kth, dist_sum, q_start, c_start)
    cos_t = _finish(corpus, queries, cos_i, "cosine", "numpy", t0, dist_sum / (n - 1))
    dot_t = _finish(corpus, queries, dot_i, "dot", "numpy", t0, None)
    return cos_t, dot_t


def _nearest_first(ids: np.ndarray, dist: np.ndarray):
    """Each row's neighbours sorted by distance; equal distances by row id, so every kernel agrees."""
    order = np.lexsort((ids, dist), axis=1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(dist, order, axis=1)


def _finish(corpus, queries, ids, metric, backend, t0, mean_d) -> Neighbors:
    """Exact distances for the chosen ids, sorted nearest first, wrapped as Neighbors."""
    ids, dist = _nearest_first(ids, _refine_distances(corpus, queries, ids, metric))
    return Neighbors(indices=ids, distances=dist, metric=metric, exact=True, backend=backend,
                     seconds=time.perf_counter() - t0, mean_distance=mean_d)


def _merge_topk(ops, best_s, best_i, rows: slice, vals, cand_i, k):
    """Fold a block's candidates into the running top k of ``rows``."""
    top_s, top_pos = ops.topk(ops.cat(best_s[rows], vals), k)
    best_i[rows] = ops.take(ops.cat(best_i[rows], cand_i), top_pos)
    best_s[rows] = top_s


#: How host tiles are folded: "numba" (one thresholded pass, :mod:`._fold`) or "array" (the torch
#: comparison/nonzero or dense top-k below, which the GPU always uses; tests run both on the CPU).
HOST_FOLD = "numba"

#: Above this share of a tile's cells clearing their row's threshold, a dense top-k is cheaper.
SPARSE_FOLD_MAX_SHARE = 1 / 16


def _fold_tile(ops, best_s, best_i, kth, s, axis: int, tgt0: int, cand0: int, k: int) -> None:
    """Fold symmetric tile ``s`` into the running top k of the points it serves as candidates for.

    ``axis=1``: the targets are the tile's rows (points ``tgt0 + i``) and the candidates its columns
    (``cand0 + j``); ``axis=0``: the other way round. ``kth`` holds each target's current k-th best
    score: only cells above it can enter the list. After a target has met a few blocks that is a few
    per cent of the tile. On the host a numba kernel reads the tile once and admits those cells
    directly (:mod:`._fold`). On the GPU (and on the host with ``HOST_FOLD = "array"``) they are
    picked by one comparison and merged sparsely, where a dense top-k costs 2x the comparison along
    rows and 4x along columns (a strided reduction); cold lists (the first blocks) take the dense
    top-k, as does the NumPy backend there.
    """
    if ops.backend != "torch-cuda" and HOST_FOLD == "numba":  # one pass on the host, see _fold
        fold_tile(ops.get(s), ops.get(best_s), ops.get(best_i), ops.get(kth), axis, tgt0, cand0)
        return
    view = s if axis == 1 else s.T
    tgt = slice(tgt0, tgt0 + view.shape[0])
    if ops.backend != "numpy":
        torch = ops.torch
        thr = kth[tgt]
        mask = s > (thr[:, None] if axis == 1 else thr[None, :])
        n_hits = int(torch.count_nonzero(mask))  # (a bool .sum() is 40x slower)
        if n_hits == 0:
            return
        if n_hits <= SPARSE_FOLD_MAX_SHARE * s.numel():
            i, j = mask.nonzero(as_tuple=True)
            scores = s[i, j]
            t_local, c_local = (i, j) if axis == 1 else (j, i)
            order = torch.argsort(t_local)
            t_local, cand, scores = t_local[order], c_local[order] + cand0, scores[order]
            rows, counts = torch.unique_consecutive(t_local, return_counts=True)
            # Lay each target's candidates out in one padded row, then top-k against its list.
            first = torch.cumsum(counts, 0) - counts
            slot = torch.arange(len(t_local), device=s.device) - torch.repeat_interleave(first, counts)
            which = torch.repeat_interleave(torch.arange(len(rows), device=s.device), counts)
            width = int(counts.max())
            pad_s = torch.full((len(rows), width), -float("inf"), dtype=s.dtype, device=s.device)
            pad_i = torch.full((len(rows), width), -1, dtype=torch.int64, device=s.device)
            pad_s[which, slot] = scores
            pad_i[which, slot] = cand
            rows = rows + tgt0
            all_s = torch.cat([best_s[rows], pad_s], 1)
            top_s, top_pos = torch.topk(all_s, k, dim=1, sorted=False)
            best_i[rows] = torch.gather(torch.cat([best_i[rows], pad_i], 1), 1, top_pos)
            best_s[rows] = top_s
            kth[rows] = top_s.min(1).values
            return
    vals, pos = ops.topk(view, k)
    _merge_topk(ops, best_s, best_i, tgt, vals, ops.arange(cand0, cand0 + view.shape[1])[pos], k)
    if ops.backend != "numpy":
        kth[tgt] = best_s[tgt].min(1).values


@contextlib.contextmanager
def numba_thread_pool(ops=None):
    """Run host products in numba's workers (those of ``ops``, if given), each with one BLAS thread.

    A search that alternates NumPy's multi-threaded sgemm with numba's parallel folds keeps two
    thread pools on the same cores, and OpenBLAS's workers spin for a while after every product,
    taking cores from the fold that follows. With BLAS limited to one thread and each numba worker
    multiplying its share of the rows (:func:`._fold.tile_product`), one pool does everything.
    """
    import scipy.linalg.cython_blas  # noqa: F401  the BLAS numba calls: loaded before the limit
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        if ops is not None:
            ops.numba_products = True
        try:
            yield
        finally:
            if ops is not None:
                ops.numba_products = False


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
        blk = ops.put(_prepare(corpus[start:start + b], metric))
        blocks.append(blk)
        sqnorms.append(ops.sqnorm(blk) if metric == "euclidean" else None)
    best_s = ops.full((n, k), -np.inf, np.float32)
    best_i = ops.full((n, k), -1, np.int64)
    kth = ops.full((n,), -np.inf, np.float32)  # each point's current k-th best score (see _fold_tile)
    dist_sum = np.zeros(n, dtype=np.float64) if mean_distance else None
    bar = None
    if progress is None:
        progress = float(n) * n * corpus.shape[1] > 2e10
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(starts) * (len(starts) + 1) // 2, desc=f"exact {k}-NN self-join ({metric})",
                   unit="tile", leave=False)
    # The host folds run in numba's thread pool; so do the products then (see numba_thread_pool).
    pooled = ops.backend != "torch-cuda" and HOST_FOLD == "numba"
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
                _fold_tile(ops, best_s, best_i, kth, s, 1, i0, j0, k)
                if bi != bj:
                    _fold_tile(ops, best_s, best_i, kth, s, 0, j0, i0, k)
                if mean_distance:  # the tile is spent; reuse it for the distances
                    if bi == bj:  # a point's distance to itself is zero
                        s[diag, diag] = 1.0 if metric == "cosine" else 0.0
                    d = ops.to_distances_(s, metric)
                    dist_sum[rows_i] += ops.get(ops.sum_axis(d, 1))
                    if bi != bj:
                        dist_sum[rows_j] += ops.get(ops.sum_axis(d, 0))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    mean_d = None if dist_sum is None else dist_sum / (n - 1)
    return ops.get(best_i).astype(np.int64), mean_d
