"""Folding a score tile into running top-k lists on the host, in one pass over the tile (numba).

The exact self-join (:func:`embgeo.analysis._knn.exact_knn`) computes each tile S = B_i B_j^T once
and uses its rows as candidates for block i and its columns for block j. What follows the matrix
product decides how close the search gets to the BLAS floor. Array libraries need a pass to
compare, a pass to select and a strided pass for the columns (a dense column top-k cost more than
the product itself). Here each list keeps its current k-th best score as a threshold, as faiss's
heaps do: a cell is read once, compared once, and only the rare cell that beats the threshold
touches the list (replace the minimum, find the new one). Scores only tighten the thresholds, so
after a few blocks almost nothing gets past.

Lists are unsorted arrays of k (score, id) pairs whose minimum is ``kth``; empty slots hold -inf.
Ties at the threshold are not admitted (strict ``>``), which only matters for exactly equal scores.
"""

from __future__ import annotations

import numba
import numpy as np

#: Fewest columns one worker owns in the column fold. Walking a column chunk down the rows touches a
#: new page per row (rows are 16 KB apart at 4,096 columns), so chunks are made as wide as the
#: workers allow: 64 columns ran the fold at 42 ms a 4,096^2 tile, one chunk per worker at 30.
MIN_COLUMN_CHUNK = 64


@numba.njit(inline="always", cache=True)
def _admit(scores, ids, t, value, cand, kth):
    """Put (value, cand) in place of list t's minimum and return the list's new minimum."""
    k = scores.shape[1]
    pos = 0
    low = scores[t, 0]
    for q in range(1, k):
        if scores[t, q] < low:
            low = scores[t, q]
            pos = q
    scores[t, pos] = value
    ids[t, pos] = cand
    low = scores[t, 0]
    for q in range(1, k):
        if scores[t, q] < low:
            low = scores[t, q]
    kth[t] = low
    return low


@numba.njit(parallel=True, cache=True)
def fold_rows(tile, scores, ids, kth, target0, cand0):
    """Row r of ``tile`` offers candidates ``cand0 + j`` to list ``target0 + r``."""
    n_rows, n_cols = tile.shape
    for r in numba.prange(n_rows):
        t = target0 + r
        threshold = kth[t]
        for j in range(n_cols):
            v = tile[r, j]
            if v > threshold:
                threshold = _admit(scores, ids, t, v, cand0 + j, kth)


@numba.njit(parallel=True, cache=True)
def fold_columns(tile, scores, ids, kth, target0, cand0, chunk_cols):
    """Column c of ``tile`` offers candidates ``cand0 + i`` to list ``target0 + c``.

    Each worker owns a chunk of ``chunk_cols`` columns (so no two write one list) and walks the
    rows in order, reading each row's slice of its chunk contiguously.
    """
    n_rows, n_cols = tile.shape
    n_chunks = (n_cols + chunk_cols - 1) // chunk_cols
    for chunk in numba.prange(n_chunks):
        c0 = chunk * chunk_cols
        c1 = min(n_cols, c0 + chunk_cols)
        # a private copy of the chunk's thresholds: kth is written by _admit, and reading it in the
        # inner loop made the fold 30 ms a 4,096^2 tile on 2 cores, 26 with the copy (rows: 8 ms)
        threshold = kth[target0 + c0:target0 + c1].copy()
        for i in range(n_rows):
            for c in range(c0, c1):
                v = tile[i, c]
                if v > threshold[c - c0]:
                    threshold[c - c0] = _admit(scores, ids, target0 + c, v, cand0 + i, kth)


def fold_tile(tile: np.ndarray, scores: np.ndarray, ids: np.ndarray, kth: np.ndarray, axis: int,
              target0: int, cand0: int) -> None:
    """Fold ``tile`` (float32, C-contiguous) into the lists: by rows (``axis=1``) or by columns (0)."""
    if axis == 1:
        fold_rows(tile, scores, ids, kth, target0, cand0)
    else:
        workers = numba.get_num_threads()
        chunk = max(MIN_COLUMN_CHUNK, -(-tile.shape[1] // workers))
        fold_columns(tile, scores, ids, kth, target0, cand0, chunk)


@numba.njit(parallel=True, cache=True)
def tile_product(a, b, out, workers):
    """``out = a @ b.T``, each worker multiplying its share of the rows with a single-threaded sgemm.

    Called under a one-thread BLAS limit, this keeps every thread of a tiled search in numba's pool:
    an OpenBLAS pool spins for a while after each product, and the numba folds that run next then
    compete with it for the same cores (measured on 2 cores: a 4,096 x 316 tile and its fold took
    9.2 ms alternating with NumPy's sgemm against 5.1 ms for the two apart).
    """
    rows = a.shape[0]
    step = -(-rows // workers)
    for w in numba.prange(workers):
        r0 = w * step
        r1 = min(rows, r0 + step)
        if r1 > r0:
            np.dot(a[r0:r1], b.T, out[r0:r1])


@numba.njit(parallel=True, cache=True)
def fold_cosine_and_dot(tile, q_norm, c_norm, cos_s, cos_i, cos_kth, dot_s, dot_i, dot_kth, dist_sum, target0, cand0):
    """One read of a tile of unit-vector scores serves three tables of queries ``target0 + r``.

    Cell (r, j) holds cos(q_r, c_j); it is offered to the cosine list, offered as the inner
    product ``cos * |q_r| * |c_j|`` to the dot list, and its chord distance ``sqrt(2 - 2 cos)`` is
    added to the row's sum (for the mean distance; -inf cells, the query itself, add 0).
    """
    n_rows, n_cols = tile.shape
    for r in numba.prange(n_rows):
        t = target0 + r
        cos_threshold = cos_kth[t]
        dot_threshold = dot_kth[t]
        acc = 0.0
        for j in range(n_cols):
            v = tile[r, j]
            if v == -np.inf:
                continue
            acc += np.sqrt(max(0.0, 2.0 - 2.0 * min(np.float64(v), 1.0)))
            if v > cos_threshold:
                cos_threshold = _admit(cos_s, cos_i, t, v, cand0 + j, cos_kth)
            d = v * q_norm[r] * c_norm[j]
            if d > dot_threshold:
                dot_threshold = _admit(dot_s, dot_i, t, d, cand0 + j, dot_kth)
        dist_sum[t] += acc


def warm_up() -> None:
    """Compile (or load from numba's cache) both kernels on a tiny tile, ahead of a first real search."""
    tile = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    for axis in (1, 0):
        scores = np.full((8, 2), -np.inf, dtype=np.float32)
        fold_tile(tile, scores, np.full((8, 2), -1, dtype=np.int64), np.full(8, -np.inf, dtype=np.float32),
                  axis, 0, 0)


# --------------------------------------------------------------------------------------------- buffers
# The approximate join (:mod:`._ann`) keeps more candidates per point (4k, e.g. 128) and feeds each
# point from many tiles whose rows are scattered points. A point admits several hundred candidates
# over the join (about c (1 + ln(offers / c)) in random order; 720 a point on 100,000 x 384), so an
# admission must be cheap: each point owns a buffer of 2c slots that admissions append to, and only
# a full buffer is compacted to its c best (one selection), which also raises the point's threshold
# to its c-th best score. An admission then costs O(1) plus a share of one selection per c of them,
# where a heap costs a sift-down of log2(c) levels each time (measured here: the join of 100,000 x
# 384 admits 72 M candidates in all, and one selection of 256 takes about 3.5 us).


@numba.njit(inline="always", cache=True)
def _kth_largest_key(keys, n, kth):
    """The ``kth`` largest of ``keys[:n]`` (int32), by bisection on the value: each step counts the
    keys at or above a midpoint in a branch-free pass, at most 32 steps. On 256 random scores the
    whole selection takes 3.5 us here, against 5 us for a quickselect on the (score, id) pairs,
    whose data-dependent branches mispredict."""
    lo = np.int64(keys[0])
    hi = np.int64(keys[0])
    for q in range(1, n):
        lo = min(lo, np.int64(keys[q]))
        hi = max(hi, np.int64(keys[q]))
    while lo < hi:  # invariant: at least kth keys are >= lo, fewer than kth are > hi
        mid = np.int32(lo + (hi - lo + 1) // 2)  # int32 compares: 8 a vector instruction
        at_least = np.int32(0)
        for q in range(n):
            at_least += keys[q] >= mid
        if at_least >= kth:
            lo = mid
        else:
            hi = mid - 1
    return lo


@numba.njit(inline="always", cache=True)
def _select_largest(scores, ids, t, filled, keep, scratch):
    """Move the ``keep`` largest of row t's first ``filled`` (score, id) pairs to its front, in their
    order; return the smallest kept score.

    Scores are mapped to int32 keys that sort as the floats do (sign-magnitude to two's complement)
    in ``scratch`` (the caller's int32 buffer: nothing is allocated per selection), the cut-off key
    is found by bisection, and one forward pass keeps what beats it, plus ties at it until ``keep``
    are kept.
    """
    bits = scores[t, :filled].view(np.int32)
    for q in range(filled):
        b = bits[q]
        scratch[q] = b ^ ((b >> 31) & 0x7FFFFFFF)
    cut = _kth_largest_key(scratch, filled, keep)
    above = 0
    for q in range(filled):
        above += scratch[q] > cut
    ties = keep - above
    w = 0
    kth = scores[t, 0]
    for q in range(filled):  # w <= q: each slot is read before it can be overwritten
        key = scratch[q]
        if key > cut or (key == cut and ties > 0):
            if key == cut:
                ties -= 1
                kth = scores[t, q]
            scores[t, w] = scores[t, q]
            ids[t, w] = ids[t, q]
            w += 1
    return kth


@numba.njit(inline="always", cache=True)
def _compact(buf_s, buf_i, count, thr, t, keep, scratch):
    """Keep the ``keep`` best of point t's buffered candidates; its threshold becomes the worst kept."""
    if count[t] > keep:
        thr[t] = _select_largest(buf_s, buf_i, t, count[t], keep, scratch)
        count[t] = keep


@numba.njit(inline="always", cache=True)
def _admit_buffered(buf_s, buf_i, count, thr, t, value, cand, scratch):
    """Append (value, cand) to point t's buffer, compacting it when full; return t's threshold."""
    pos = count[t]
    buf_s[t, pos] = value
    buf_i[t, pos] = cand
    count[t] = pos + 1
    if pos + 1 == buf_s.shape[1]:
        _compact(buf_s, buf_i, count, thr, t, buf_s.shape[1] // 2, scratch)
    return thr[t]


def probe_bitmap(probes: np.ndarray, n_lists: int) -> np.ndarray:
    """One bit per (point, list): set where the point probes the list (``probes``: lists per row).

    The join asks "does member b probe list L?" for every column cell above b's threshold (35 M
    times on 100,000 x 384); one bit test answers it where a scan of b's probed lists took ~30 ns.
    """
    n = probes.shape[0]
    bits = np.zeros((n, -(-n_lists // 64)), dtype=np.uint64)
    row = np.arange(n)
    for q in range(probes.shape[1]):  # a point's probed lists are distinct: no two writes collide
        lst = probes[:, q].astype(np.int64)
        bits[row, lst >> 6] |= np.left_shift(np.uint64(1), (lst & 63).astype(np.uint64))
    return bits


@numba.njit(inline="always", cache=True)
def _probes_list(bits, t, lst):
    return (bits[t, lst >> 6] >> np.uint64(lst & 63)) & np.uint64(1) != 0


@numba.njit(parallel=True, cache=True)
def join_tile(pts, sq, rows, b0, b1, own, pos_list, probe_bits, buf_s, buf_i, count, thr, scratch_q, scratch_t,
               col_s, col_i, col_count, col_thr, step_rows, workers):
    """Score ``rows`` (positions) against the members ``b0:b1`` of one list and fold every cell.

    Each worker takes a share of the rows, ``step_rows`` at a time: it gathers them, multiplies
    them by the members with a single-threaded sgemm (``np.dot`` inside numba: one thread pool, no
    BLAS threads spinning against the folds) into a tile small enough to stay in its cache, and
    reads that tile once. Each row offers its cells to its own buffer; each column offers its cell
    to the member, through a buffer private to the worker (``col_*``, started at the member's
    threshold), so no two workers write one list. The private buffers are merged into the members'
    after the rows. ``own``: the rows are the members themselves; the square is symmetric and its
    rows alone serve every pair (diagonal skipped). A column cell is skipped when the member
    probes the row's list (its bit in ``probe_bits``): that pair reaches the member as a row of the
    other list's tile, and must not enter its buffer twice.
    """
    n_rows = rows.shape[0]
    m = b1 - b0
    dim = pts.shape[1]
    members = pts[b0:b1]
    euclid = sq.shape[0] > 0
    max_m = scratch_t.shape[0] // (workers * step_rows)
    share = -(-n_rows // workers)
    for w in numba.prange(workers):
        own_s, own_i, own_count, own_thr = col_s[w], col_i[w], col_count[w], col_thr[w]
        sel = np.empty(buf_s.shape[1], dtype=np.int32)  # selection scratch, one per worker and call
        for c in range(m):
            own_count[c] = 0
            own_thr[c] = thr[b0 + c]
        for r0 in range(w * share, min(n_rows, (w + 1) * share), step_rows):
            r1 = min(n_rows, (w + 1) * share, r0 + step_rows)
            qb = scratch_q[w * step_rows * dim:(w * step_rows + r1 - r0) * dim].reshape((r1 - r0, dim))
            for i in range(r1 - r0):
                qb[i] = pts[rows[r0 + i]]
            base = w * step_rows * max_m
            tile = scratch_t[base:base + (r1 - r0) * m].reshape((r1 - r0, m))
            np.dot(qb, members.T, tile)
            for i in range(r1 - r0):
                t = rows[r0 + i]
                if euclid:  # -(|a|^2 + |b|^2 - 2<a, b>): symmetric in a and b
                    for j in range(m):
                        tile[i, j] = 2 * tile[i, j] - sq[t] - sq[b0 + j]
                threshold = thr[t]
                if own:
                    tile[i, r0 + i] = -np.inf
                    for j in range(m):
                        v = tile[i, j]
                        if v > threshold:
                            threshold = _admit_buffered(buf_s, buf_i, count, thr, t, v, b0 + j, sel)
                    continue
                lst = pos_list[t]
                for j0 in range(0, m, 32):
                    j1 = min(m, j0 + 32)
                    hit = False  # a branch-free pass first: it vectorises, and most blocks miss
                    for j in range(j0, j1):
                        hit |= (tile[i, j] > threshold) | (tile[i, j] > own_thr[j])
                    if not hit:
                        continue
                    for j in range(j0, j1):
                        v = tile[i, j]
                        if v > threshold:
                            threshold = _admit_buffered(buf_s, buf_i, count, thr, t, v, b0 + j, sel)
                        if v > own_thr[j] and not _probes_list(probe_bits, b0 + j, lst):
                            _admit_buffered(own_s, own_i, own_count, own_thr, j, v, t, sel)
    if own:
        return
    chunk = -(-m // workers)
    for w in numba.prange(workers):
        sel = np.empty(buf_s.shape[1], dtype=np.int32)
        for c in range(w * chunk, min(m, (w + 1) * chunk)):
            t = b0 + c
            for src in range(workers):
                for q in range(col_count[src, c]):
                    v = col_s[src, c, q]
                    if v > thr[t]:
                        _admit_buffered(buf_s, buf_i, count, thr, t, v, col_i[src, c, q], sel)


@numba.njit(parallel=True, cache=True)
def compact_all(buf_s, buf_i, count, thr, keep, n_chunks):
    """Cut every buffer to its ``keep`` best (the end of the join)."""
    n = buf_s.shape[0]
    step = -(-n // n_chunks)
    for chunk in numba.prange(n_chunks):
        sel = np.empty(buf_s.shape[1], dtype=np.int32)
        for t in range(chunk * step, min(n, (chunk + 1) * step)):
            _compact(buf_s, buf_i, count, thr, t, keep, sel)


@numba.njit(cache=True)
def group_queries(probes, pos_list, n_lists):
    """Outside queries of every list, bucketed by the rank at which they probe it.

    ``probes[t]`` are position t's lists, nearest first (its own list ``pos_list[t]`` normally at
    rank 0). A probe of list L at rank r by a point outside L goes to bucket ``g * n_lists + L``
    with ``g = floor(log2 max(r, 1))`` (ranks 0-1, 2-3, 4-7, ...), positions ascending within a
    bucket. Returns the bucket starts (``n_groups * n_lists + 1``) and the positions, from one
    counting sort (NumPy's repeat / mask / argsort chain took 0.3 s on 100,000 points x 25 probes).
    """
    n, p = probes.shape
    n_groups = _floor_log2(max(p - 1, 1)) + 1
    starts = np.zeros(n_groups * n_lists + 1, dtype=np.int64)
    for t in range(n):
        for r in range(p):
            lst = probes[t, r]
            if lst != pos_list[t]:
                g = _floor_log2(max(r, 1))
                starts[g * n_lists + lst + 1] += 1
    for b in range(n_groups * n_lists):
        starts[b + 1] += starts[b]
    fill = starts[:-1].copy()
    out = np.empty(starts[-1], dtype=np.int64)
    for t in range(n):
        for r in range(p):
            lst = probes[t, r]
            if lst != pos_list[t]:
                b = _floor_log2(max(r, 1)) * n_lists + lst
                out[fill[b]] = t
                fill[b] += 1
    return starts, out


@numba.njit(inline="always", cache=True)
def _floor_log2(r):
    """floor(log2 r) of a positive integer."""
    g = 0
    while (r >> (g + 1)) > 0:
        g += 1
    return g


@numba.njit(parallel=True, cache=True)
def gather_candidates(buf_i, count, order, keep):
    """The join's buffers as a candidate table in the caller's row order: row ``order[t]`` gets
    ``order[buf_i[t, j]]`` for its first ``count[t]`` slots (at most ``keep``) and -1 after them."""
    n = buf_i.shape[0]
    cand = np.empty((n, keep), dtype=np.int32)
    for t in numba.prange(n):
        row = order[t]
        filled = min(keep, count[t])
        for j in range(filled):
            cand[row, j] = order[buf_i[t, j]]
        for j in range(filled, keep):
            cand[row, j] = -1
    return cand


@numba.njit(inline="always", cache=True)
def _sift_in(best_s, best_i, filled, value, cand):
    """Insert (value, cand) into the descending list best_s[:filled] (keeping its length if full)."""
    k = best_s.shape[0]
    pos = filled if filled < k else k - 1
    if filled == k and value <= best_s[k - 1]:
        return
    while pos > 0 and best_s[pos - 1] < value:
        if pos < k:
            best_s[pos] = best_s[pos - 1]
            best_i[pos] = best_i[pos - 1]
        pos -= 1
    best_s[pos] = value
    best_i[pos] = cand


@numba.njit(parallel=True, cache=True)
def top_columns(scores, p):
    """Columns of each row's ``p`` largest scores, largest first (int32)."""
    n, m = scores.shape
    out = np.empty((n, p), dtype=np.int32)
    for r in numba.prange(n):
        best_s = np.empty(p, dtype=scores.dtype)
        best_i = np.empty(p, dtype=np.int64)
        filled = 0
        for j in range(m):
            _sift_in(best_s, best_i, filled, scores[r, j], j)
            filled = min(p, filled + 1)
        for j in range(p):
            out[r, j] = best_i[j]
    return out


@numba.njit(parallel=True, cache=True, fastmath=True)
def rerank_candidates(data, cand, k, sq_norms, visit, n_chunks):
    """The ``k`` best of each row's candidates by exact score (-1 where fewer than k exist).

    Scores are ``<a, b>`` or, when ``sq_norms`` is non-empty (euclidean), ``2<a, b> - |b|^2``. Rows
    are visited in the order ``visit`` (the join's list order: neighbouring rows share candidates,
    which then stay in cache), in ``n_chunks`` chunks, each with its own small scratch lists.
    Candidates are scored eight at a time: one pass over row a feeds eight independent streams of
    candidate rows, so their cache misses overlap (1.56 -> 1.10 s for 100,000 x 128 candidates x
    384 here, against one candidate at a time).
    """
    n, c = cand.shape
    d = data.shape[1]
    out = np.full((n, k), -1, dtype=np.int64)
    euclid = sq_norms.shape[0] > 0
    step = -(-n // n_chunks)
    for chunk in numba.prange(n_chunks):
        best_s = np.empty(k, dtype=np.float32)
        best_i = np.empty(k, dtype=np.int64)
        ids = np.empty(c + 8, dtype=np.int64)
        scores = np.empty(c + 8, dtype=np.float32)
        for ii in range(chunk * step, min(n, (chunk + 1) * step)):
            a = visit[ii]
            m = 0
            for j in range(c):
                if cand[a, j] >= 0:
                    ids[m] = cand[a, j]
                    m += 1
            for j in range(m, -(-m // 8) * 8):  # pad the last group of eight with row a itself
                ids[j] = a
            for j in range(0, m, 8):
                b0, b1, b2, b3 = ids[j], ids[j + 1], ids[j + 2], ids[j + 3]
                b4, b5, b6, b7 = ids[j + 4], ids[j + 5], ids[j + 6], ids[j + 7]
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0.0)
                for q in range(d):
                    x = data[a, q]
                    s0 += x * data[b0, q]
                    s1 += x * data[b1, q]
                    s2 += x * data[b2, q]
                    s3 += x * data[b3, q]
                    s4 += x * data[b4, q]
                    s5 += x * data[b5, q]
                    s6 += x * data[b6, q]
                    s7 += x * data[b7, q]
                scores[j], scores[j + 1], scores[j + 2], scores[j + 3] = s0, s1, s2, s3
                scores[j + 4], scores[j + 5], scores[j + 6], scores[j + 7] = s4, s5, s6, s7
            filled = 0
            for j in range(m):
                score = 2 * scores[j] - sq_norms[ids[j]] if euclid else scores[j]
                _sift_in(best_s, best_i, filled, score, ids[j])
                filled = min(k, filled + 1)
            for j in range(filled):
                out[a, j] = best_i[j]
    return out


@numba.njit(parallel=True, cache=True)
def row_norms(x):
    """L2 norm of each row (at least the smallest normal float32), summed in index order."""
    out = np.empty(x.shape[0], dtype=np.float32)
    tiny = np.float32(np.finfo(np.float32).tiny)
    for i in numba.prange(x.shape[0]):
        acc = np.float32(0.0)
        for t in range(x.shape[1]):
            acc += x[i, t] * x[i, t]
        out[i] = max(np.sqrt(acc), tiny)
    return out


# Reassociation lets the sums vectorise; no fused multiply-adds ("contract"), which would round one
# side of ``c / |c| - q / |q|`` and not the other, so identical rows would not come out at 0.
@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "nsz", "arcp"})
def pair_distances(corpus, queries, ids, c_norms, q_norms, mode, visit):
    """Distance of each query row to each of its listed corpus rows, from the vector difference.

    ``mode`` 0: chord between the unit vectors (cosine; rows are divided by ``c_norms`` and
    ``q_norms``), 1: euclidean, 2: ``-<q, c>`` (dot). The difference q - c keeps the small
    distances of near neighbours exact, where ``|q|^2 + |c|^2 - 2<q, c>`` cancels. Ids below 0
    give NaN. Query rows are visited in the order ``visit`` when it is non-empty: an order in
    which consecutive rows share neighbours (the approximate join's lists) keeps those rows in cache.
    """
    m, k = ids.shape
    d = corpus.shape[1]
    out = np.empty((m, k), dtype=np.float32)
    ordered = visit.shape[0] > 0
    for ii in numba.prange(m):
        i = np.int64(visit[ii]) if ordered else np.int64(ii)
        q_norm = q_norms[i] if mode == 0 else np.float32(1.0)
        for j in range(k):
            b = ids[i, j]
            if b < 0:
                out[i, j] = np.nan
                continue
            acc = np.float32(0.0)
            if mode == 2:
                for t in range(d):
                    acc += queries[i, t] * corpus[b, t]
                out[i, j] = -acc
                continue
            c_norm = c_norms[b] if mode == 0 else np.float32(1.0)
            for t in range(d):
                diff = corpus[b, t] / c_norm - queries[i, t] / q_norm
                acc += diff * diff
            out[i, j] = np.sqrt(acc)
    return out
