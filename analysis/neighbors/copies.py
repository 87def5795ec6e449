"""Copies: the rows of a set that are one point, found once, and neighbour lists that skip them.

A corpus repeats itself (the same text embedded twice is the same row). The distance-based
estimators need, for each *distinct* point, the distances to its nearest *distinct* points: a copy of
the point itself makes ``r1 = 0``, and a neighbour listed once per copy makes ``r1 = r2``.

The rule. Two rows are copies of one point when

* they are identical float32 rows (``-0.0`` equals ``0.0``): found over the whole set by hashing its
  rows in blocks (:func:`copy_groups`; a memory map is read block by block, equal hashes are
  confirmed row against row, so a collision never merges two points), or
* a neighbour list puts them within the duplicate tolerance of each other
  (:func:`.statistics.duplicate_tolerance`, today's ``duplicate_mask`` rule, measured on the
  lists of distinct points): the copies a metric sees that are not bitwise equal, such as ``x`` and
  ``3 x`` under cosine (their unit vectors differ in the last bit).

Near-duplicates farther apart than that tolerance stay points. Each group is represented by its
lowest row; ``labels[i]`` is the representative of row ``i`` and the group's size its multiplicity.

:func:`distinct_neighbors` gives the k nearest distinct points of representatives: read off a given
table where its lists hold k of them (each neighbour's group listed once, the query's own copies
left out), searched again among the representatives only (:func:`.exact.exact_knn` on blocks of
their rows, never a copy of the whole set) where the copies filled a list.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numba
import numpy as np

from .._core import EmbeddingInputError, iter_row_blocks
from .blocks import merge_knn
from .exact import exact_knn
from .statistics import duplicate_tolerance

#: Bytes of float32 rows hashed (and confirmed) per block.
HASH_BLOCK_BYTES = 32 * 2**20
#: Bytes of float32 rows per query chunk and per corpus block of the search among representatives.
SEARCH_BLOCK_BYTES = 128 * 2**20
#: Rows of a neighbour table deduplicated at a time (bounds the (rows, k) temporaries).
LIST_BLOCK_ROWS = 65_536

_C1, _C2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_NEG_ZERO = np.uint32(0x80000000)


@numba.njit(parallel=True, cache=True)
def _row_hashes(bits, salt):
    """A 64-bit hash of each row of float32 bits: the splitmix64 finaliser of every (bits + salt of
    the column), summed; ``-0.0`` hashes as ``0.0``."""
    out = np.empty(bits.shape[0], dtype=np.uint64)
    for i in numba.prange(bits.shape[0]):
        h = np.uint64(0)
        for j in range(bits.shape[1]):
            b = bits[i, j]
            if b == _NEG_ZERO:
                b = np.uint32(0)
            z = np.uint64(b) + salt[j]
            z = (z ^ (z >> np.uint64(30))) * _C1
            z = (z ^ (z >> np.uint64(27))) * _C2
            h += z ^ (z >> np.uint64(31))
        out[i] = h
    return out


def _block_rows(d: int, budget: int) -> int:
    return max(256, budget // (4 * max(d, 1)))


def copy_groups(vectors) -> np.ndarray:
    """The representative (lowest identical row) of each row: ``labels[i] == i`` for the first row of
    each group of identical float32 rows, ``labels[i] < i`` for its copies.

    One blocked pass hashes the rows; rows with equal hashes are then compared with the first row of
    their hash (only those rows are read again), and a row that differs (a collision) is grouped by
    its bytes instead. Memory: a few integers per row, never the rows themselves.

    Examples
    --------
    >>> copy_groups(np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]], dtype=np.float32)).tolist()
    [0, 1, 0]
    """
    n, d = vectors.shape
    salt = np.random.default_rng(0x5EED).integers(0, 2**63, size=d, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    step = _block_rows(d, HASH_BLOCK_BYTES)
    hashes = np.empty(n, dtype=np.uint64)
    for start, block in iter_row_blocks(vectors, step):
        hashes[start:start + len(block)] = _row_hashes(np.ascontiguousarray(block, dtype=np.float32).view(np.uint32),
                                                       salt)
    order = np.argsort(hashes, kind="stable")  # equal hashes keep ascending rows: the first is the lowest
    sorted_h = hashes[order]
    del hashes
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_h[1:] != sorted_h[:-1]
    labels = np.empty(n, dtype=np.int64)
    labels[order] = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]
    return _confirm(vectors, labels, step)


def _confirm(vectors, labels: np.ndarray, step: int) -> np.ndarray:
    """Compare each row with its hash group's first row; group the rows that differ by their bytes."""
    candidates = np.flatnonzero(labels != np.arange(len(labels)))
    differ = []
    for start in range(0, len(candidates), step):
        rows = candidates[start:start + step]
        same = (np.asarray(vectors[rows], dtype=np.float32) == np.asarray(vectors[labels[rows]], dtype=np.float32))
        differ.append(rows[~same.all(axis=1)])
    differ = np.concatenate(differ) if differ else np.empty(0, dtype=np.int64)
    if len(differ):  # a hash collision: these rows are not copies of their hash's first row
        rows = np.ascontiguousarray(np.asarray(vectors[differ], dtype=np.float32) + np.float32(0.0))  # -0.0 -> 0.0
        keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        labels[differ] = differ[first[inverse.ravel()]]
    return labels


def merge_copies(labels: np.ndarray, a, b) -> np.ndarray:
    """``labels`` with the groups of rows ``a[i]`` and ``b[i]`` merged (each merged group represented
    by its lowest row); a new array, ``labels`` is not changed."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    la, lb = labels[np.asarray(a, dtype=np.int64)], labels[np.asarray(b, dtype=np.int64)]
    keep = la != lb
    if not keep.any():
        return labels
    nodes, inverse = np.unique(np.concatenate([la[keep], lb[keep]]), return_inverse=True)
    e = int(keep.sum())
    graph = coo_matrix((np.ones(e), (inverse[:e], inverse[e:])), shape=(len(nodes), len(nodes)))
    _, comp = connected_components(graph, directed=False)
    lowest = np.full(comp.max() + 1, len(labels), dtype=np.int64)
    np.minimum.at(lowest, comp, nodes)  # nodes are representatives, so the lowest is the group's lowest row
    mapping = np.arange(len(labels), dtype=np.int64)
    mapping[nodes] = lowest[comp]
    return mapping[labels]


@dataclass(frozen=True)
class DistinctNeighbors:
    """The k nearest distinct points of some representatives, and the groups they were judged by."""

    rows: np.ndarray
    """Query rows, sorted, each the representative (lowest row) of its group."""
    indices: np.ndarray
    """(len(rows), k) representative of each distinct neighbour, nearest first."""
    distances: np.ndarray
    """(len(rows), k) float32 distance to each (chord under cosine)."""
    labels: np.ndarray
    """(n,) representative of every row of the set."""
    tolerance: float
    """Distance at or below which two listed rows were judged copies."""

    @property
    def n_distinct(self) -> int:
        """Distinct points of the set (groups of copies)."""
        return int(np.count_nonzero(self.labels == np.arange(len(self.labels))))

    @property
    def n_copies(self) -> int:
        """Rows that are a copy of another (lower) row."""
        return len(self.labels) - self.n_distinct


def distinct_neighbors(vectors, k: int, metric: str, *, rows=None, table=None, labels=None) -> DistinctNeighbors:
    """The k nearest distinct points of each distinct point of ``rows`` (see the module docstring).

    Parameters
    ----------
    vectors : array-like of shape (n, d)
        The rows of a validated set (a memory map is read block by block).
    k : int
        Distinct neighbours per query.
    metric : {"cosine", "euclidean"}
    rows : array-like of int, optional
        Rows whose distinct point is wanted; each is replaced by its group's representative and
        repeats are dropped. Default: every group.
    table : Neighbors, optional
        Exact or approximate lists of ``rows`` (of every row when ``rows`` is None) among all rows,
        at least k columns: read where they hold k distinct points; the rest is searched.
    labels : numpy.ndarray, optional
        :func:`copy_groups` of ``vectors``, when the caller has it.

    Returns
    -------
    DistinctNeighbors
    """
    n = vectors.shape[0]
    labels = copy_groups(vectors) if labels is None else labels
    given = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64).ravel()
    queries = np.unique(labels[given])
    if table is not None:
        if table.indices.shape != (len(given), table.indices.shape[1]) or table.indices.shape[1] < k:
            raise EmbeddingInputError(f"the neighbour table has shape {table.indices.shape}; need one list of at least "
                                      f"k={k} neighbours per row of the {len(given)} rows asked for")
        ids, dist = _known(queries, given, table.indices, table.distances)
    else:
        ids = dist = None
    ids, dist = _complete(vectors, queries, ids, dist, labels, k, metric)
    tol = duplicate_tolerance(dist) if k >= 2 else 0.0
    near = dist <= tol  # listed distinct rows at distance 0 under the metric: one point after all
    if near.any():
        hit, col = np.nonzero(near)
        labels = merge_copies(labels, queries[hit], ids[hit, col])
        merged = np.unique(labels[queries])
        ids, dist = _known(merged, queries, ids, dist)
        queries = merged
        ids, dist = _complete(vectors, queries, ids, dist, labels, k, metric)
    return DistinctNeighbors(rows=queries, indices=ids, distances=dist, labels=labels, tolerance=float(tol))


def _known(queries, rows, ids, dist):
    """The lists of ``queries`` among lists of ``rows`` (``ids``/``dist`` row by row); a query without
    one gets an empty list (ids -1). The lists themselves (no copy) when the rows are the queries."""
    if len(rows) == len(queries) and np.array_equal(rows, queries):
        return ids, dist
    order = np.argsort(rows, kind="stable")
    at = np.minimum(np.searchsorted(rows[order], queries), len(rows) - 1)
    found = rows[order][at] == queries
    src = order[at]
    out_i = np.where(found[:, None], np.asarray(ids)[src], -1)
    out_d = np.where(found[:, None], np.asarray(dist)[src], np.inf).astype(np.float32)
    return out_i, out_d


def _complete(vectors, queries, ids, dist, labels, k: int, metric: str):
    """k distinct neighbours of each query: its known list deduplicated, searched where that falls short."""
    m = len(queries)
    n_groups = int(np.count_nonzero(labels == np.arange(len(labels))))
    if k > n_groups - 1:
        raise EmbeddingInputError(
            f"too few distinct points for k={k}: only {n_groups} distinct points among {len(labels)} rows "
            f"({len(labels) - n_groups} are duplicates of another row); {k} neighbours need at least {k + 1}")
    if n_groups == len(labels):  # no copies: the lists are the distinct lists; search only missing ones
        search = partial(_engine_search, vectors, k=k, metric=metric)
        if ids is None:
            return search(queries)
        out_i, out_d = ids[:, :k], dist[:, :k]  # views of the table: copied only where a list is short
        short = np.flatnonzero((out_i < 0).any(axis=1) | ~np.isfinite(out_d).all(axis=1))
        if len(short):  # missing entries of an approximate table
            out_i, out_d = np.array(out_i, dtype=np.int64), np.array(out_d, dtype=np.float32)
    else:
        search = partial(_search_distinct, vectors, labels=labels, k=k, metric=metric)
        if ids is None:
            return search(queries)
        out_i, out_d = np.full((m, k), -1, dtype=np.int64), np.full((m, k), np.inf, dtype=np.float32)
        found = np.zeros(m, dtype=np.int64)
        for s in range(0, m, LIST_BLOCK_ROWS):
            b = slice(s, s + LIST_BLOCK_ROWS)
            out_i[b], out_d[b], found[b] = _dedup_lists(ids[b], dist[b], queries[b], labels, k)
        short = np.flatnonzero(found < k)
    if len(short):
        out_i[short], out_d[short] = search(queries[short])
    return out_i, out_d


def _engine_search(vectors, queries, k: int, metric: str):
    """The exact engine's search of some rows among all rows (nothing to skip: no copies)."""
    nb = exact_knn(vectors, k=k, metric=metric, query_indices=queries, progress=False)
    return nb.indices.astype(np.int64), nb.distances.astype(np.float32)


def _dedup_lists(ids, dist, queries, labels, k: int):
    """Each list's entries mapped to their groups, the query's own group and repeated groups left out,
    the first k kept: ``(ids, dist, how many distinct entries the list held)``."""
    ids = np.asarray(ids, dtype=np.int64)
    lab = np.where(ids >= 0, labels[np.maximum(ids, 0)], -1)
    keep = (ids >= 0) & (lab != labels[queries][:, None]) & np.isfinite(dist)
    order = np.argsort(lab, axis=1, kind="stable")  # a group's entries side by side, nearest first
    sorted_lab = np.take_along_axis(lab, order, axis=1)
    first_sorted = np.ones(lab.shape, dtype=bool)
    first_sorted[:, 1:] = sorted_lab[:, 1:] != sorted_lab[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    keep &= first
    pos = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept entries first, in list order
    got = np.take_along_axis(keep, pos, axis=1)
    out_i = np.full((len(ids), k), -1, dtype=np.int64)
    out_d = np.full((len(ids), k), np.inf, dtype=np.float32)
    w = pos.shape[1]
    out_i[:, :w] = np.where(got, np.take_along_axis(lab, pos, axis=1), -1)
    out_d[:, :w] = np.where(got, np.take_along_axis(dist, pos, axis=1), np.inf)
    return out_i, out_d, keep.sum(axis=1)


def _search_distinct(vectors, queries, labels, k: int, metric: str):
    """Exact k nearest representatives (the query's own row left out) of each query row, over blocks
    of the representatives' rows: only a query chunk and a corpus block are held at a time."""
    reps = np.flatnonzero(labels == np.arange(len(labels)))
    step = _block_rows(vectors.shape[1], SEARCH_BLOCK_BYTES)
    out_i = np.full((len(queries), k), -1, dtype=np.int64)
    out_d = np.full((len(queries), k), np.inf, dtype=np.float32)
    for q0 in range(0, len(queries), step):
        q = queries[q0:q0 + step]
        qv = np.asarray(vectors[q], dtype=np.float32)
        best = (out_i[q0:q0 + step], out_d[q0:q0 + step])
        for c0 in range(0, len(reps), step):
            c = reps[c0:c0 + step]
            nb = exact_knn(np.asarray(vectors[c], dtype=np.float32), qv, k=min(k + 1, len(c)), metric=metric,
                           validate=False, progress=False)
            gid = c[nb.indices]
            own = gid == q[:, None]
            part = (np.where(own, -1, gid), np.where(own, np.inf, nb.distances).astype(np.float32))
            best = merge_knn([best, part], k)
        out_i[q0:q0 + step], out_d[q0:q0 + step] = best
    return out_i, out_d
