"""The two IVF self-joins of :func:`.approximate.approximate_knn`, what each holds in memory, and the
exact re-ranking of their candidates into the result.

* :func:`symmetric_join` holds a candidate buffer for every point and scores each list against its
  members and every point that probes it, a pair feeding both of its points;
* :func:`blocked_join` takes a block of points (consecutive in list order) at a time, scores them
  against the lists they probe, a pair feeding its query only, and re-ranks the block before the
  next, so only the projection and the result grow with n.

:func:`join_bytes` counts what each holds; :mod:`.approximate` chooses between them by the memory
limit and tunes the probes for the one it runs (see its module docstring for the method).
"""

from __future__ import annotations

import numba
import numpy as np

from .._core import Progress
from ._backend import numba_thread_pool
from ._join_kernels import (
    compact_all,
    group_queries,
    join_rows,
    join_tile,
    permute_rows,
    probe_bitmap,
    rerank_candidates,
    top_columns,
)
from .ivf import centroid_scores, sq_norms
from .table import distances_from_scores, nearest_first

#: Rows of one call of the join kernel, and rows each worker multiplies and folds at a time (a
#: tile of 256 x list size float32 stays in the worker's cache while its rows and columns are read).
JOIN_TILE_ROWS = 4_096
JOIN_STEP_ROWS = 256
#: Points re-ranked at a time after the symmetric join, and points of one block of the blocked join
#: (fewer, down to MIN_BLOCK_ROWS, where the memory limit needs it): a block's points share most
#: of their probed lists, so its tiles are tall, and one block's buffers take about 270 MB at 128
#: candidates and 130 probes.
RERANK_ROWS = 65_536
BLOCK_ROWS = 65_536
MIN_BLOCK_ROWS = 4_096
#: Points whose centroid scores a join holds at a time while it picks their probed lists.
PROBE_SLICE_ROWS = 4_096


def join_bytes(layout: str, n: int, dim: int, n_lists: int, n_probe: int, k: int, n_cand: int,
               block_rows: int | None = None) -> int:
    """Bytes a join and its re-ranking hold at their peak, besides the input.

    Both hold the projection (reordered by list in place), the row order, lists and norms, and the
    result (an int32 id and a float32 distance a neighbour). Per point that takes part, each holds a
    candidate buffer (a float32 score and an int32 id per slot, twice the candidates), its count and
    threshold, and the inverted index of its probed lists (int32 positions; the lists themselves are
    freed before the buffers are made). The symmetric
    join holds those for every point, and a probe bitmap; the blocked one for ``block_rows`` points,
    with their re-ranked output (an int64 id and a float64 score a neighbour) and the centroid scores
    of a slice of them (``block_rows`` defaults to the smallest block, :data:`MIN_BLOCK_ROWS`). The
    symmetric join re-ranks :data:`RERANK_ROWS` points at a time.
    """
    shared = 4 * dim + 8 + 8 + 4 + 8 * k
    if layout == "symmetric":
        buffered = _buffered_bytes(n_probe, n_cand) + 8 * -(-n_lists // 64) + 4  # + bitmap, list of each position
        return int(n) * (shared + buffered) + min(int(n), RERANK_ROWS) * 16 * k
    block = min(int(n), MIN_BLOCK_ROWS if block_rows is None else int(block_rows))
    return int(n) * shared + block * _block_row_bytes(n_probe, k, n_cand) + min(block, PROBE_SLICE_ROWS) * 4 * n_lists


def _buffered_bytes(n_probe: int, n_cand: int) -> int:
    """Bytes of one point's candidate buffer, count, threshold and the inverted index of its probed
    lists (int32 positions; the probed lists themselves, as many int32, are freed before the buffers
    are made)."""
    return 16 * n_cand + 8 + 4 * n_probe


def _block_row_bytes(n_probe: int, k: int, n_cand: int) -> int:
    """Bytes one point of a block of the blocked join takes: its buffer and its re-ranked output."""
    return _buffered_bytes(n_probe, n_cand) + 16 * k


def candidates_that_fit(limit: int, n: int, dim: int, n_lists: int, n_probe: int, k: int) -> int:
    """The most candidates a point of the symmetric join can keep within ``limit`` (0 when not even
    the rest fits)."""
    rest = join_bytes("symmetric", n, dim, n_lists, n_probe, k, 0)
    return max(0, (limit - rest) // (16 * n))


def block_rows_that_fit(limit: int, n: int, dim: int, n_lists: int, n_probe: int, k: int, n_cand: int) -> int:
    """Points of one block of the blocked join: :data:`BLOCK_ROWS`, fewer where ``limit`` needs it."""
    base = join_bytes("blocked", n, dim, n_lists, n_probe, k, n_cand, 0)
    fit = (limit - base) // _block_row_bytes(n_probe, k, n_cand)
    return int(max(MIN_BLOCK_ROWS, min(BLOCK_ROWS, n, fit)))


def symmetric_join(proj, centroids, lists, n_probe, metric, n_cand, floor, progress) -> tuple[np.ndarray, ...]:
    """Each point's ``n_cand`` best candidates by projected score, as the join left them: ``(buf_i,
    count, order)``, where the point at join position t is row ``order[t]`` and its candidates are the
    positions ``buf_i[t, :count[t]]`` (unordered).

    Points are reordered so that each list's members are contiguous (``proj`` itself is reordered in
    place: the caller must not read it afterwards). For list B one tile scores
    its members against each other (rows only: the square is symmetric) and one tile per block of
    outside queries (points that probe B) scores them against B's members: the rows feed the
    queries' buffers, the columns feed the members' buffers, except where the member itself probes the
    query's list (that pair reaches the member as a row of that list's tile instead).
    """
    n = proj.shape[0]
    n_lists = centroids.shape[0]
    pts, order, starts, sq, scratch_q, scratch_t = _in_list_order(proj, lists, n_lists, metric)
    pos_list = lists[order].astype(np.int32)  # list of each reordered position
    probes = _probed_lists(pts, centroids, n_probe)  # nearest first (the first is its own list)
    # Queries of each list (positions that probe it from outside), grouped by the rank at which they
    # probe it: rank 1, 2-3, 4-7, ... (group_queries). The join visits own lists first, then the groups in that order,
    # so each point meets its likeliest neighbours first, its threshold rises early, and later
    # tiles admit little.
    q_start, q_pos = group_queries(probes, pos_list, n_lists)
    n_groups = (len(q_start) - 1) // n_lists
    bits = probe_bitmap(probes, n_lists)
    del probes  # 4 bytes a probe, freed before the buffers are made (256 MB at 1,000,000 x 64)

    buf_s = np.empty((n, 2 * n_cand), dtype=np.float32)  # slots past count[t] are never read
    buf_i = np.empty((n, 2 * n_cand), dtype=np.int32)
    count = np.zeros(n, dtype=np.int32)
    thr = np.full(n, floor, dtype=np.float32)  # only scores above a point's threshold are admitted
    workers = numba.get_num_threads()
    max_members = max(1, int(np.diff(starts).max()))
    col_s = np.empty((workers, max_members, 2 * n_cand), dtype=np.float32)
    col_i = np.empty((workers, max_members, 2 * n_cand), dtype=np.int32)
    col_count = np.zeros((workers, max_members), dtype=np.int32)
    col_thr = np.empty((workers, max_members), dtype=np.float32)
    args = (pos_list, bits, buf_s, buf_i, count, thr, scratch_q, scratch_t,
            col_s, col_i, col_count, col_thr, JOIN_STEP_ROWS, workers)
    bar = Progress(progress, (1 + n_groups) * n_lists, f"approximate {n_cand}-candidate join ({metric})",
                   unit="list", auto=n > 50_000)
    with numba_thread_pool(), bar:  # the products run in numba's workers, as the folds do
        for lst in range(n_lists):
            b0, b1 = int(starts[lst]), int(starts[lst + 1])
            if b1 > b0:
                join_tile(pts, sq, np.arange(b0, b1, dtype=np.int32), b0, b1, True, *args)
            bar.update()
        for g in range(n_groups):
            for lst in range(n_lists):
                b0, b1 = int(starts[lst]), int(starts[lst + 1])
                queries = q_pos[q_start[g * n_lists + lst]:q_start[g * n_lists + lst + 1]]
                for r0 in range(0, len(queries) if b1 > b0 else 0, JOIN_TILE_ROWS):
                    join_tile(pts, sq, queries[r0:r0 + JOIN_TILE_ROWS], b0, b1, False, *args)
                bar.update()
    # back to the caller's row order and ids
    compact_all(buf_s, buf_i, count, thr, n_cand, 8 * workers)
    return buf_i, count, order


def blocked_join(proj, centroids, lists, n_probe, metric, n_cand, floor, block_rows, progress, finish) -> None:
    """The join a block of points at a time, each block re-ranked (``finish``) before the next.

    Points are reordered by list, as in :func:`symmetric_join` (``proj`` in place), and cut into blocks of
    ``block_rows`` consecutive positions, which share most of their probed lists (:func:`join_block`
    joins one). The block's candidates then go to ``finish(rows, buf_i, count, order)`` and its
    buffers are dropped: only the projection and the caller's result grow with n.
    """
    n = proj.shape[0]
    layout = ListOrder(proj, lists, centroids.shape[0], metric)
    bar = Progress(progress, n * n_probe, f"approximate {n_cand}-candidate join ({metric}, blocked)",
                   unit="probe", auto=n > 50_000)
    with numba_thread_pool(), bar:
        for p0 in range(0, n, block_rows):
            p1 = min(n, p0 + block_rows)
            buf_i, count = join_block(layout, centroids, p0, p1, n_probe, n_cand, floor, bar.update)
            finish(layout.order[p0:p1], buf_i, count, layout.order)


class ListOrder:
    """The points of a join reordered so that each list's members are contiguous (the projection
    itself, in place: ``pts``), ``order`` (position t is row ``order[t]``), each list's first position
    (``starts``, one more than the lists) and the squared norms under euclidean (else empty)."""

    def __init__(self, proj, lists, n_lists: int, metric: str):
        self.order = np.argsort(lists, kind="stable")
        self.starts = np.searchsorted(lists[self.order], np.arange(n_lists + 1)).astype(np.int64)
        permute_rows(proj, self.order)
        self.pts = proj
        self.sq = sq_norms(proj) if metric == "euclidean" else np.empty(0, dtype=np.float32)


def join_block(layout: ListOrder, centroids, p0: int, p1: int, n_probe: int, n_cand: int, floor, update=None):
    """The blocked join of positions ``p0:p1`` of ``layout``: each point picks its ``n_probe`` lists,
    the points are bucketed by list and probe rank (:func:`group_queries`, their own lists first), and
    every bucket is scored against its list's members (:func:`join_rows`), each pair feeding its
    query only. Returns the block's candidates ``(buf_i, count)`` (positions, as :func:`symmetric_join`
    leaves them); ``update(done)`` is told the probes scored as it goes."""
    pts, starts, sq = layout.pts, layout.starts, layout.sq
    n_lists = centroids.shape[0]
    size = p1 - p0
    workers = numba.get_num_threads()
    max_members = max(1, int(np.diff(starts).max()))
    scratch_q = np.empty(workers * JOIN_STEP_ROWS * pts.shape[1], dtype=np.float32)
    scratch_t = np.empty(workers * JOIN_STEP_ROWS * max_members, dtype=np.float32)
    probes = _probed_lists(pts[p0:p1], centroids, n_probe)
    q_start, q_pos = group_queries(probes, np.full(size, -1, dtype=np.int32), n_lists)
    del probes
    q_pos += p0  # block positions to join positions
    buf_s = np.empty((size, 2 * n_cand), dtype=np.float32)  # slots past count[t] are never read
    buf_i = np.empty((size, 2 * n_cand), dtype=np.int32)
    count = np.zeros(size, dtype=np.int32)
    thr = np.full(size, floor, dtype=np.float32)
    pending = 0
    for bucket in np.flatnonzero(np.diff(q_start)):  # (rank group, list) pairs with queries
        lst = bucket % n_lists
        b0, b1 = int(starts[lst]), int(starts[lst + 1])
        queries = q_pos[q_start[bucket]:q_start[bucket + 1]]
        for r0 in range(0, len(queries) if b1 > b0 else 0, JOIN_TILE_ROWS):  # an empty list: nothing
            join_rows(pts, sq, queries[r0:r0 + JOIN_TILE_ROWS], b0, b1, p0, buf_s, buf_i, count, thr,
                      scratch_q, scratch_t, JOIN_STEP_ROWS, workers)
        pending += len(queries)
        if update is not None and pending >= 16 * JOIN_TILE_ROWS:  # a few hundred updates a block, not one a tile
            update(pending)
            pending = 0
    if update is not None:
        update(pending)
    compact_all(buf_s, buf_i, count, thr, n_cand, 8 * workers)
    return buf_i, count


class Reranker:
    """Re-ranks blocks of buffers into the caller's ``ids`` and ``dist`` (the result, by row): exact
    scores (:func:`rerank_candidates`), distances from them (:func:`distances_from_scores`), nearest
    first. One block at a time, so its float64 scores never exist for all n."""

    def __init__(self, x, metric, norms, n_cand, ids, dist):
        self.x, self.metric, self.norms, self.n_cand, self.ids, self.dist = x, metric, norms, n_cand, ids, dist
        empty = np.empty(0, np.float32)
        self.inv_norms = 1.0 / norms if metric == "cosine" else empty
        self.sq_norms = norms * norms if metric == "euclidean" else empty

    def __call__(self, rows, buf_i, count, order) -> None:
        self.ids[rows], self.dist[rows] = self.block(rows, buf_i, count, order, self.ids.shape[1])

    def block(self, rows, buf_i, count, order, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest of each buffer's candidates, ids and distances nearest first (buffer t
        belongs to row ``rows[t]``)."""
        got, scores = rerank_candidates(np.asarray(self.x), buf_i, count, rows, order, self.n_cand, k,
                                        self.inv_norms, self.sq_norms, 8 * numba.get_num_threads())
        dist = distances_from_scores(self.x, got, scores, self.metric, self.norms, rows=rows)
        return nearest_first(got, dist)


def _in_list_order(proj, lists, n_lists: int, metric: str):
    """The symmetric join's start: :class:`ListOrder`'s arrays, and the workers' scratch for the rows
    they gather and the tiles they score."""
    layout = ListOrder(proj, lists, n_lists, metric)
    workers = numba.get_num_threads()
    max_members = max(1, int(np.diff(layout.starts).max()))
    scratch_q = np.empty(workers * JOIN_STEP_ROWS * proj.shape[1], dtype=np.float32)
    scratch_t = np.empty(workers * JOIN_STEP_ROWS * max_members, dtype=np.float32)
    return layout.pts, layout.order, layout.starts, layout.sq, scratch_q, scratch_t


def _probed_lists(points, centroids, n_probe: int) -> np.ndarray:
    """Each point's ``n_probe`` nearest lists, nearest first (int32), from the centroid scores of
    :data:`PROBE_SLICE_ROWS` points at a time."""
    half_sq = 0.5 * sq_norms(centroids)
    probes = np.empty((points.shape[0], n_probe), dtype=np.int32)
    for start in range(0, points.shape[0], PROBE_SLICE_ROWS):
        stop = start + PROBE_SLICE_ROWS
        probes[start:stop] = top_columns(centroid_scores(points[start:stop], centroids, half_sq), n_probe)
    return probes
