"""Kernels of the approximate IVF self-join (:mod:`.approximate`): candidate buffers, the join tiles
(symmetric, :func:`join_tile`, and rows only, :func:`join_rows`), the probe bookkeeping and the exact
re-ranking (numba).

The approximate join (:mod:`.approximate`) keeps more candidates per point (4k, e.g. 128) and feeds each
point from many tiles whose rows are scattered points. A point admits several hundred candidates
over the join (about c (1 + ln(offers / c)) in random order; 720 a point on 100,000 x 384), so an
admission must be cheap: each point owns a buffer of 2c slots that admissions append to, and only
a full buffer is compacted to its c best (one selection), which also raises the point's threshold
to its c-th best score. An admission then costs O(1) plus a share of one selection per c of them,
where a heap costs a sift-down of log2(c) levels each time (measured here: the join of 100,000 x
384 admits 72 M candidates in all, and one selection of 256 takes about 3.5 us).
"""

from __future__ import annotations

import numba
import numpy as np


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


@numba.njit(inline="always", cache=True)
def _score_rows(pts, sq, rows, r0, r1, b0, members, scratch_q, scratch_t, w, step_rows, max_m):
    """Worker w's tile of scores: rows ``rows[r0:r1]`` gathered into its scratch and multiplied by the
    list's members with a single-threaded sgemm (``np.dot`` inside numba), into a tile small enough
    to stay in its cache; under euclidean (``sq`` non-empty) ``-(|a|^2 + |b|^2 - 2<a, b>)``, which is
    symmetric in a and b like the inner product."""
    dim = pts.shape[1]
    m = members.shape[0]
    qb = scratch_q[w * step_rows * dim:(w * step_rows + r1 - r0) * dim].reshape((r1 - r0, dim))
    for i in range(r1 - r0):
        qb[i] = pts[rows[r0 + i]]
    base = w * step_rows * max_m
    tile = scratch_t[base:base + (r1 - r0) * m].reshape((r1 - r0, m))
    np.dot(qb, members.T, tile)
    if sq.shape[0] > 0:
        for i in range(r1 - r0):
            t = rows[r0 + i]
            for j in range(m):
                tile[i, j] = 2 * tile[i, j] - sq[t] - sq[b0 + j]
    return tile


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
    members = pts[b0:b1]
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
            tile = _score_rows(pts, sq, rows, r0, r1, b0, members, scratch_q, scratch_t, w, step_rows, max_m)
            for i in range(r1 - r0):
                t = rows[r0 + i]
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
def join_rows(pts, sq, rows, b0, b1, offset, buf_s, buf_i, count, thr, scratch_q, scratch_t, step_rows, workers):
    """Score ``rows`` (positions) against the members ``b0:b1`` of one list and offer every cell to its
    row only: the blocked join's tile (:func:`.approximate._blocked_join`), where only the rows'
    buffers are held (row position t owns buffer ``t - offset``). A row's own cell is skipped.

    The same worker layout as :func:`join_tile` (a share of the rows each, ``step_rows`` at a time,
    a single-threaded sgemm into a cache-sized tile), without its column side, so the rows of one call
    must be distinct (no two workers write one buffer).
    """
    n_rows = rows.shape[0]
    m = b1 - b0
    members = pts[b0:b1]
    max_m = scratch_t.shape[0] // (workers * step_rows)
    share = -(-n_rows // workers)
    for w in numba.prange(workers):
        sel = np.empty(buf_s.shape[1], dtype=np.int32)  # selection scratch, one per worker and call
        for r0 in range(w * share, min(n_rows, (w + 1) * share), step_rows):
            r1 = min(n_rows, (w + 1) * share, r0 + step_rows)
            tile = _score_rows(pts, sq, rows, r0, r1, b0, members, scratch_q, scratch_t, w, step_rows, max_m)
            for i in range(r1 - r0):
                t = rows[r0 + i]
                u = t - offset
                if b0 <= t < b1:
                    tile[i, t - b0] = -np.inf
                threshold = thr[u]
                for j0 in range(0, m, 32):
                    j1 = min(m, j0 + 32)
                    hit = False  # a branch-free pass first: it vectorises, and most blocks miss
                    for j in range(j0, j1):
                        hit |= tile[i, j] > threshold
                    if not hit:
                        continue
                    for j in range(j0, j1):
                        v = tile[i, j]
                        if v > threshold:
                            threshold = _admit_buffered(buf_s, buf_i, count, thr, u, v, b0 + j, sel)


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
    rank 0; ``pos_list[t] = -1`` keeps all of t's probes, as the blocked join, which has no
    symmetric own-list tile, needs). A probe of list L at rank r by a point outside L goes to bucket ``g * n_lists + L``
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
    out = np.empty(starts[-1], dtype=np.int32)  # positions < 2^31 (int64 took 504 MB at 1,000,000 x 63 probes)
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


@numba.njit(cache=True)
def permute_rows(a, order):
    """Reorder the rows of ``a`` in place so that row t becomes the old row ``order[t]``.

    Follows each cycle of the permutation with one row of scratch, so the reordered copy the join
    works on costs no second n x dim array (384 MB at 1,000,000 x 96).
    """
    n = a.shape[0]
    done = np.zeros(n, dtype=np.bool_)
    tmp = np.empty(a.shape[1], dtype=a.dtype)
    for start in range(n):
        if done[start]:
            continue
        tmp[:] = a[start]
        t = start
        while True:
            done[t] = True
            src = order[t]
            if src == start:
                a[t] = tmp
                break
            a[t] = a[src]
            t = src


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
def rerank_candidates(data, buf_i, count, rows, order, keep, k, inv_norms, sq_norms, n_chunks):
    """The ``k`` best of each buffer's candidates by exact score, one output row per buffer:
    ``(ids, scores)``, best first (-1 and -inf where fewer than k exist; scores in float64).

    Buffer t belongs to row ``rows[t]``; its candidates are the join positions
    ``buf_i[t, :min(count[t], keep)]``, position p being row ``order[p]``. Callers re-rank a block of
    buffers at a time (the output takes 16 k bytes a row). ``data`` holds the raw rows (a memory map
    is fine: no normalised copy is made). Scores are ``<a, b>``, or ``<a, b> / |b|`` when ``inv_norms``
    is non-empty (cosine: the query's own norm does not change its ranking), or ``2<a, b> - |b|^2``
    when ``sq_norms`` is (euclidean). Buffers are visited in order (in join order, neighbouring rows
    share candidates, which then stay in cache), in ``n_chunks`` chunks with their own scratch lists.
    Candidates are scored eight at a time: one pass over row a feeds eight independent streams of
    candidate rows, so their cache misses overlap (1.56 -> 1.10 s for 100,000 x 128 candidates x
    384 here, against one candidate at a time).
    """
    n = buf_i.shape[0]
    c = keep
    d = data.shape[1]
    out = np.full((n, k), -1, dtype=np.int64)
    out_s = np.full((n, k), -np.inf, dtype=np.float64)
    euclid = sq_norms.shape[0] > 0
    cosine = inv_norms.shape[0] > 0
    step = -(-n // n_chunks)
    for chunk in numba.prange(n_chunks):
        best_s = np.empty(k, dtype=np.float64)
        best_i = np.empty(k, dtype=np.int64)
        ids = np.empty(c + 8, dtype=np.int64)
        scores = np.empty(c + 8, dtype=np.float64)
        for t in range(chunk * step, min(n, (chunk + 1) * step)):
            a = rows[t]
            m = min(c, count[t])
            for j in range(m):
                ids[j] = order[buf_i[t, j]]
            for j in range(m, -(-m // 8) * 8):  # pad the last group of eight with row a itself
                ids[j] = a
            for j in range(0, m, 8):
                b0, b1, b2, b3 = ids[j], ids[j + 1], ids[j + 2], ids[j + 3]
                b4, b5, b6, b7 = ids[j + 4], ids[j + 5], ids[j + 6], ids[j + 7]
                # float64 sums: the products of float32 values are exact in float64, so the score is as
                # precise as the inputs, and a distance read off it (distances_from_scores) needs no
                # recomputation unless the pair is nearly identical; the kernel is bound by its reads
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
                for q in range(d):
                    x = np.float64(data[a, q])
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
                score = scores[j]
                if euclid:
                    score = 2 * score - sq_norms[ids[j]]
                elif cosine:
                    score = score * inv_norms[ids[j]]
                _sift_in(best_s, best_i, filled, score, ids[j])
                filled = min(k, filled + 1)
            for j in range(filled):
                out[t, j] = best_i[j]
                out_s[t, j] = best_s[j]
    return out, out_s
