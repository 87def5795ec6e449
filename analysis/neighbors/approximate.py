"""Approximate self-join k-NN: an IVF join in a PCA subspace, re-ranked exactly, with measured recall.

A general ANN index answers one query at a time. The report needs something narrower: the k nearest
neighbours of *every* point of the set. That self-join can keep what makes the exact engine fast
(blocked float32 matrix products, thresholded folding) and drop most of its work in two ways:

1. **Fewer dimensions for the candidates.** Scores are first computed on the leading ``projection_dim``
   principal directions of the (uncentred, for cosine and dot; centred, for euclidean) second-moment
   matrix, where embeddings keep most of their energy, and each point keeps its ``candidates`` best
   (a buffer per point, :mod:`._join_kernels`). Those are then re-ranked with the exact full-dimensional score.
2. **Fewer pairs.** The projected points are clustered by k-means into ``n_lists`` inverted lists
   (Jegou et al., 2011). Each point probes its ``n_probe`` nearest lists; for each list one matrix
   product scores its members against each other and against every outside point that probes it.
   A computed pair serves both of its points (the rows and the columns of the tile), so a point also
   meets every point that probes *its* list: the candidate set of a is
   ``{b : a probes list(b)} | {b : b probes list(a)}``, each pair folded into each list once.

``n_probe`` is tuned on a sample of queries by *simulating* the join for them (their projected
top candidates and which of those the probing would reach): the recall of the re-ranked result equals
the share of the true neighbours among the chosen candidates, since a true neighbour that is a
candidate always survives the exact re-ranking. The smallest ``n_probe`` whose recall's 95 % lower
confidence bound reaches the target wins; when even probing every list falls short, the projection
dimension is doubled (at the full dimension with every list probed the join is exact). The recall
stored on the result is measured afterwards, against exact search, on a *different* sample. The
same simulation gives a floor for every point's threshold (see :func:`_tune_probe`).

Why this engine and not a library's. ``benchmarks/bench_ann_peers.py`` builds the same all-points
graph with pynndescent (NN-descent, which umap-learn ships with) and faiss HNSW (M = 32) and scores all
three by recall@k against exact search on one 2,000-row sample (100,000 x 384 ``make_anisotropic``,
cosine, 2-core Xeon, 2026-12-01). At k = 10: this join 4.9 s at recall 0.963 and 5.6 s at 0.979
(targets 0.95 and 0.97); pynndescent 8.0 s at 0.943, 11.0 s at 0.978 and 19.2 s at 0.995
(n_neighbors 30, 40, 60); HNSW 29.8 s at 0.958 and 43.4 s at 0.986 (efSearch 64, 128). At the
report's width, k = 32: 6.4 s at 0.958 and 0.975; pynndescent 11.0 s at 0.959 and 19.2 s at 0.990;
HNSW 43.4 s at 0.973. At equal recall up to about 0.98 this join takes half pynndescent's time and
a seventh of HNSW's, so it is the default; above that, pynndescent with many neighbours is the
better tool.

References
----------
Jegou, Douze, Schmid, "Product quantization for nearest neighbor search", IEEE TPAMI 2011 (IVF).
Johnson, Douze, Jegou, "Billion-scale similarity search with GPUs", IEEE TBD 2019 (k-means, faiss).
Aumueller, Bernhardsson, Faithfull, "ANN-Benchmarks", Information Systems 2020 (recall@k by set overlap).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numba
import numpy as np

from .._core import (
    EmbeddingInputError,
    Progress,
    as_float32_matrix,
    check_finite,
    check_k,
    check_metric,
    check_no_zero_rows,
    check_random_state,
    prepare_rows,
    scan_moments,
)
from ._backend import numba_thread_pool
from ._join_kernels import (
    compact_all,
    gather_candidates,
    group_queries,
    join_tile,
    probe_bitmap,
    rerank_candidates,
    top_columns,
)
from .exact import exact_knn
from .statistics import recall_at_k
from .table import Neighbors, finish_table

#: Leading principal directions scored in the candidate pass (doubled when the target needs it).
DEFAULT_PROJECTION_DIM = 96
#: Rows used to estimate the principal directions (a sample is plenty for a basis).
BASIS_SAMPLE_ROWS = 32_768
#: Training points per list for k-means, and its iterations.
KMEANS_POINTS_PER_LIST = 64
KMEANS_ITERATIONS = 10
#: Rows of one call of the join kernel, and rows each worker multiplies and folds at a time (a
#: tile of 256 x list size float32 stays in the worker's cache while its rows and columns are read).
JOIN_TILE_ROWS = 4_096
JOIN_STEP_ROWS = 256
#: Projected candidates per tuning query that the simulation looks at, per candidate kept. A true
#: neighbour ranked deeper than this in the projection is counted as missed (a conservative error);
#: on 100,000 x 384, depths 2, 3 and 4 chose the same n_probe and floor, and 2 costs half of 4.
SIMULATION_DEPTH = 2
#: The tuning may double the candidates a point keeps (default 4 k) up to this many, the default
#: report's 4 x 32 (so no more memory per point than that report takes).
MAX_TUNED_CANDIDATES = 128
#: Quantile of the tuning queries' worst kept projected score that every threshold starts at.
THRESHOLD_FLOOR_QUANTILE = 0.01


def approximate_knn(
    corpus,
    k: int = 10,
    *,
    metric: str = "cosine",
    n_lists: int | None = None,
    n_probe: int | None = None,
    projection_dim: int | None = None,
    candidates: int | None = None,
    target_recall: float = 0.95,
    recall_sample: int = 500,
    sample_truth: tuple | None = None,
    random_state=0,
    progress: bool | None = None,
) -> Neighbors:
    """Approximate self-join k-NN (IVF join in a PCA subspace, exact re-ranking), recall measured.

    See the module docstring for the method. Every point gets ``k`` neighbours (self excluded),
    sorted nearest first with exact distances; only *which* neighbours is approximate.

    Parameters
    ----------
    corpus : array-like of shape (n, d)
    k : int
        Neighbours per point.
    metric : {"cosine", "dot", "euclidean"}
    n_lists : int, optional
        Inverted lists (k-means clusters); default ``round(sqrt(n))``, at most ``n / 64``.
    n_probe : int, optional
        Lists each point probes (its own included). Default: tuned to ``target_recall``.
    projection_dim : int, optional
        Principal directions scored in the candidate pass; default 96 (or d if smaller), doubled
        while the target is out of reach. Given explicitly, it is kept.
    candidates : int, optional
        Projected candidates kept per point for the exact re-ranking; default ``4 k`` (at most n - 1),
        doubled by the tuning (up to 128) while the target would need more than half the lists.
        Given explicitly, it is kept.
    target_recall : float in (0, 1]
        Recall@k the tuning aims for (its 95 % lower bound on the tuning sample).
    recall_sample : int
        Queries in the tuning sample and, separately, in the sample the reported recall is
        measured on.
    sample_truth : (rows, indices), optional
        Exact neighbours, nearest first, of some rows of ``corpus`` under ``metric`` (at least ``k``
        columns), from a search the caller has already run (the report's query sample): they stand in
        for the exact search of the two samples. ``recall_sample`` of the rows (at most half) tune
        ``n_probe``; the recall is measured on all the others.
    random_state : int, Generator or None
        Seeds the samples and k-means.
    progress : None, bool or callable
        A progress bar over the lists (None: for n above 50,000), or a callback
        ``progress(lists_done, lists_total, description)`` called after each list of each pass; an
        exception it raises (:class:`~embgeo.analysis.Cancelled`) stops the join.

    Returns
    -------
    Neighbors
        ``exact=False``, ``recall`` measured on ``recall_sample`` fresh queries against
        :func:`exact_knn`, and the settings used in ``backend``.

    Raises
    ------
    EmbeddingInputError
        NaN/inf rows, zero rows under cosine, k too large for n, or a setting out of range.

    References
    ----------
    Jegou, Douze, Schmid, IEEE TPAMI 2011 (IVF); Johnson, Douze, Jegou, IEEE TBD 2019 (faiss k-means).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(3000, 32)).astype(np.float32)
    >>> nb = approximate_knn(x, k=10, recall_sample=200)
    >>> nb.indices.shape, nb.recall >= 0.9
    ((3000, 10), True)
    """
    t0 = time.perf_counter()
    metric = check_metric(metric)
    x = as_float32_matrix(corpus, name="corpus")
    n, d = x.shape
    k = check_k(k, n - 1, context="neighbours in the corpus (self excluded)")
    if not 0 < target_recall <= 1:
        raise EmbeddingInputError(f"target_recall must be in (0, 1], got {target_recall}")
    check_finite(x, "corpus")
    check_no_zero_rows(x, metric, "corpus")
    recall_sample = check_k(recall_sample, 10**12, what="recall_sample", context="queries")
    n_lists = _setting(n_lists, "n_lists", n, default=max(1, min(n // 64, round(math.sqrt(n)))))
    if n_probe is not None:
        n_probe = _setting(n_probe, "n_probe", n_lists, default=None)
    fixed_dim = projection_dim is not None
    dim = _setting(projection_dim, "projection_dim", d, default=min(d, DEFAULT_PROJECTION_DIM))
    n_cand = _setting(candidates, "candidates", n - 1, default=min(n - 1, 4 * k))
    if n_cand < k:
        raise EmbeddingInputError(f"candidates ({n_cand}) must be at least k ({k})")
    rng = check_random_state(random_state)

    data = np.ascontiguousarray(prepare_rows(x, metric), dtype=np.float32)
    basis, centre = _principal_basis(data, metric, rng)

    # Two disjoint query samples with their exact neighbours: one tunes n_probe, the other measures
    # the recall we report.
    if sample_truth is None:
        m = max(1, min(recall_sample, n // 2))
        perm = rng.permutation(n)
        sample_rows = np.concatenate([np.sort(perm[:m]), np.sort(perm[m:2 * m] if n >= 2 else perm[:m])])
        truth = exact_knn(x, k=k, metric=metric, query_indices=sample_rows, validate=False,
                          progress=False).indices
    else:
        sample_rows, truth = _given_truth(sample_truth, n, k)
        m = max(1, min(recall_sample, len(sample_rows) // 2))
        shuffle = rng.permutation(len(sample_rows))
        sample_rows, truth = sample_rows[shuffle], truth[shuffle]
    tune_rows, check_rows = sample_rows[:m], sample_rows[m:] if len(sample_rows) > m else sample_rows
    tune_truth, check_truth = truth[:m], truth[m:] if len(sample_rows) > m else truth

    max_cand = n_cand if candidates is not None else min(n - 1, max(n_cand, MAX_TUNED_CANDIDATES))
    while True:
        proj = _project(data, basis[:, :dim], centre)
        centroids, lists = _kmeans(proj, n_lists, rng)
        probe, floor = n_probe, -math.inf
        while n_probe is None:
            probe, floor = _tune_probe(proj, centroids, lists, tune_rows, tune_truth, metric, n_cand, target_recall)
            # Needing more than half the lists means the candidates, not the lists, limit the recall:
            # true neighbours rank too deep in the projection to be among a point's n_cand. Doubling
            # them is cheaper than scanning every list (100,000 x 384, k = 10, target 0.97: 40
            # candidates needed all 316 lists, 20.3 s; 80 needed 28, 5.5 s: benchmarks/bench_ann_peers.py).
            if (probe is None or probe > n_lists // 2) and n_cand < max_cand:
                n_cand = min(max_cand, 2 * n_cand)
                continue
            break
        if n_probe is None:
            if probe is None and not fixed_dim and dim < d:
                dim = min(d, 2 * dim)
                continue
            probe = n_lists if probe is None else probe
        break

    cand, visit = _ivf_join(proj, centroids, lists, probe, metric, n_cand, floor, progress)
    ids = rerank_candidates(data, cand, k, _sq_norms(data) if metric == "euclidean" else np.empty(0, np.float32),
                            visit, 8 * numba.get_num_threads())
    short = np.flatnonzero((ids < 0).any(axis=1))
    if len(short):  # a point whose probed lists held fewer than k others: search it exactly
        ids[short] = exact_knn(x, k=k, metric=metric, query_indices=short, validate=False,
                               progress=False).indices
    table = finish_table(x, x, ids, metric, f"ivf-join(dim={dim}, lists={n_lists}, probe={probe}, "
                         f"candidates={n_cand})", t0, exact=False, visit=visit)
    return dataclasses.replace(table, recall=recall_at_k(table.indices[check_rows], check_truth),
                               recall_sample=len(check_rows), seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------- pieces


def _setting(value, name: str, upper: int, *, default):
    if value is None:
        return default
    return check_k(value, upper, what=name, context="allowed here")


def _given_truth(sample_truth, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Check the caller's ``(rows, indices)`` of exact neighbours; return them cut to k columns."""
    try:
        rows, truth = sample_truth
    except (TypeError, ValueError):
        raise EmbeddingInputError("sample_truth must be a pair (rows, indices)") from None
    rows, truth = np.asarray(rows), np.asarray(truth)
    if rows.ndim != 1 or len(rows) == 0 or not np.issubdtype(rows.dtype, np.integer):
        raise EmbeddingInputError(f"sample_truth rows must be a non-empty 1-D integer array, got {rows.dtype} "
                                  f"of shape {rows.shape}")
    if rows.min() < 0 or rows.max() >= n or len(np.unique(rows)) != len(rows):
        raise EmbeddingInputError(f"sample_truth rows must be distinct row numbers in [0, {n})")
    if truth.ndim != 2 or truth.shape[0] != len(rows) or truth.shape[1] < k:
        raise EmbeddingInputError(f"sample_truth indices must have shape ({len(rows)}, >= {k}), got {truth.shape}")
    return rows.astype(np.int64), np.ascontiguousarray(truth[:, :k])


def _sq_norms(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a).astype(np.float32)


def _principal_basis(data: np.ndarray, metric: str, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigenvectors of the second-moment matrix, largest first, and the centre to subtract (or None).

    Inner products (cosine, dot) are best kept in a rank-r approximation by the *uncentred* second
    moment, whose leading direction is the embeddings' common direction; distances (euclidean) are
    translation-invariant, so their basis is the covariance's.
    """
    n = data.shape[0]
    rows = data if n <= BASIS_SAMPLE_ROWS else data[np.sort(rng.choice(n, BASIS_SAMPLE_ROWS, replace=False))]
    moments = scan_moments(rows)
    centred = metric == "euclidean"
    _, vectors = moments.principal_axes(centered=centred)
    centre = moments.mean.astype(np.float32) if centred else None
    return np.ascontiguousarray(vectors, dtype=np.float32), centre


def _project(data: np.ndarray, basis: np.ndarray, centre) -> np.ndarray:
    if basis.shape[1] == data.shape[1] and centre is None:
        return data  # a rotation would change nothing the join sees
    out = np.empty((data.shape[0], basis.shape[1]), dtype=np.float32)
    for start in range(0, data.shape[0], 65_536):
        block = data[start:start + 65_536]
        np.matmul(block if centre is None else block - centre, basis, out=out[start:start + len(block)])
    return out


def _centroid_scores(points: np.ndarray, centroids: np.ndarray, half_sq: np.ndarray) -> np.ndarray:
    """``<p, c> - |c|^2 / 2``: larger means nearer in L2, for every point and centroid."""
    s = points @ centroids.T
    s -= half_sq[None, :]
    return s


def _kmeans(proj: np.ndarray, n_lists: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """k-means centroids (faiss) on a sample, and every point's nearest one (its list)."""
    import faiss

    n, dim = proj.shape
    if n_lists == 1:
        return proj.mean(axis=0, keepdims=True).astype(np.float32), np.zeros(n, dtype=np.int64)
    take = min(n, KMEANS_POINTS_PER_LIST * n_lists)
    train = proj if take == n else proj[np.sort(rng.choice(n, take, replace=False))]
    km = faiss.Kmeans(dim, n_lists, niter=KMEANS_ITERATIONS, seed=int(rng.integers(2**31 - 1)),
                      max_points_per_centroid=KMEANS_POINTS_PER_LIST)
    km.train(np.ascontiguousarray(train))
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    half_sq = 0.5 * _sq_norms(centroids)
    lists = np.empty(n, dtype=np.int64)
    for start in range(0, n, 16_384):
        lists[start:start + 16_384] = _centroid_scores(proj[start:start + 16_384], centroids, half_sq).argmax(1)
    return centroids, lists


def _probe_ranks(points: np.ndarray, centroids: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Rank of list ``which[i]`` among point i's lists, nearest first (0 = its own list)."""
    half_sq = 0.5 * _sq_norms(centroids)
    out = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), 8_192):
        s = _centroid_scores(points[start:start + 8_192], centroids, half_sq)
        own = s[np.arange(len(s)), which[start:start + 8_192]]
        out[start:start + 8_192] = (s > own[:, None]).sum(1)
    return out


def _pair_scores(q: np.ndarray, c: np.ndarray, metric: str) -> np.ndarray:
    """Scores that rank c for each q (higher is nearer), exactly as the join's tiles compute them:
    ``<q, c>``, or ``-|q - c|^2`` for euclidean. The tuning's threshold floor is read off these, so
    they must be on the tiles' scale, not merely rank alike (``2<q, c> - |c|^2`` would put the
    floor ``|q|^2`` too high and leave most points short of candidates)."""
    s = q @ c.T
    if metric == "euclidean":
        s *= 2
        s -= _sq_norms(c)[None, :]
        s -= _sq_norms(q)[:, None]
    return s


def _tune_probe(proj, centroids, lists, rows, truth, metric, n_cand, target) -> tuple[int | None, float]:
    """Smallest n_probe whose simulated recall on ``rows`` has a 95 % lower bound >= target (or
    None), and a floor for the join's thresholds.

    For each tuning query the ``SIMULATION_DEPTH * n_cand`` best projected candidates are ranked; a
    candidate b of query q is reached with n_probe = p when ``min(rank_q(list b), rank_b(list q)) < p``
    (q probes b's list, or b probes q's). The join keeps the first ``n_cand`` reached ones, and the
    share of q's true neighbours among them is q's recall after exact re-ranking.

    The floor is the ``THRESHOLD_FLOOR_QUANTILE`` quantile of the tuning queries' worst kept score:
    starting every point's threshold there spares the join the admissions a point makes before its
    own candidates lift it (most of the fold's work). A point whose candidates sit lower (a sparse
    region) keeps those above the floor, its best; one left with fewer than k is searched exactly.
    """
    import torch

    n = proj.shape[0]
    n_lists = centroids.shape[0]
    depth = min(n - 1, SIMULATION_DEPTH * n_cand)
    m = len(rows)
    top = np.empty((m, depth), dtype=np.int64)
    top_s = np.empty((m, depth), dtype=np.float32)
    for start in range(0, m, 256):
        block = rows[start:start + 256]
        s = _pair_scores(proj[block], proj, metric)
        s[np.arange(len(block)), block] = -np.inf
        best_s, best = torch.topk(torch.from_numpy(s), depth, dim=1, sorted=True)  # 5x argpartition's speed
        top[start:start + len(block)] = best.numpy()
        top_s[start:start + len(block)] = best_s.numpy()
    # rank of b's list among q's lists, from q's own centroid ordering
    q_scores = _centroid_scores(proj[rows], centroids, 0.5 * _sq_norms(centroids))
    q_rank = np.empty_like(q_scores, dtype=np.int64)
    np.put_along_axis(q_rank, np.argsort(-q_scores, axis=1), np.arange(n_lists)[None, :], axis=1)
    q_side = np.take_along_axis(q_rank, lists[top], axis=1)
    b_side = _probe_ranks(proj[top.ravel()], centroids, np.repeat(lists[rows], depth)).reshape(m, depth)
    reach = np.minimum(q_side, b_side)
    is_true = (top[:, :, None] == truth[:, None, :]).any(axis=2)
    k = truth.shape[1]

    def kept_if_meets_target(p):
        reached = reach < p
        kept = reached & (np.cumsum(reached, axis=1) <= n_cand)
        per_query = (kept & is_true).sum(axis=1) / k
        low = per_query.mean() - 1.96 * per_query.std(ddof=1) / math.sqrt(m) if m > 1 else per_query.mean()
        return kept if low >= target or (p == n_lists and per_query.mean() >= target) else None

    # bracket with the ladder, then take the smallest n_probe in the last step that meets the target
    # (the join's cost grows linearly in n_probe: a 19 % step would waste up to that much)
    failed = 0
    for p in _probe_ladder(n_lists):
        kept = kept_if_meets_target(p)
        if kept is not None:
            for q in range(failed + 1, p):
                kept_q = kept_if_meets_target(q)
                if kept_q is not None:
                    p, kept = q, kept_q
                    break
            full = kept.sum(axis=1) == n_cand  # else the n_cand-th reached one lies beyond the depth
            worst = np.where(full, np.where(kept, top_s, np.inf).min(axis=1), -np.inf)
            # "lower": no interpolation, which between two -inf gives NaN (and a NaN threshold
            # admits nothing); when over 1 % of the queries are not full the floor is -inf
            return p, float(np.quantile(worst, THRESHOLD_FLOOR_QUANTILE, method="lower"))
        failed = p
    return None, -math.inf


def _probe_ladder(n_lists: int) -> list[int]:
    """n_probe values about 19 % apart, to bracket the tuned value."""
    steps = np.unique(np.round(np.geomspace(1, n_lists, num=max(2, int(np.log(n_lists) / np.log(1.19)) + 1))))
    return [int(p) for p in steps]


def _ivf_join(proj, centroids, lists, n_probe, metric, n_cand, floor, progress) -> tuple[np.ndarray, np.ndarray]:
    """Each point's ``n_cand`` best candidates by projected score (ids, unordered; -1 where missing),
    and the rows in list order.

    Points are reordered so that each list's members are contiguous. For list B one tile scores
    its members against each other (rows only: the square is symmetric) and one tile per block of
    outside queries (points that probe B) scores them against B's members: the rows feed the
    queries' buffers, the columns feed the members' buffers, except where the member itself probes the
    query's list (that pair reaches the member as a row of that list's tile instead).
    """
    n, dim = proj.shape
    n_lists = centroids.shape[0]
    half_sq = 0.5 * _sq_norms(centroids)
    order = np.argsort(lists, kind="stable")
    pos_list = lists[order].astype(np.int32)  # list of each reordered position
    starts = np.searchsorted(pos_list, np.arange(n_lists + 1)).astype(np.int64)
    pts = np.ascontiguousarray(proj[order])
    sq = _sq_norms(pts) if metric == "euclidean" else None

    # each position's probed lists, nearest first (the first is its own list)
    probes = np.empty((n, n_probe), dtype=np.int32)
    for start in range(0, n, 16_384):
        s = _centroid_scores(pts[start:start + 16_384], centroids, half_sq)
        probes[start:start + len(s)] = top_columns(s, n_probe)
    # Queries of each list (positions that probe it from outside), grouped by the rank at which they
    # probe it: rank 1, 2-3, 4-7, ... (group_queries). The join visits own lists first, then the groups in that order,
    # so each point meets its likeliest neighbours first, its threshold rises early, and later
    # tiles admit little.
    q_start, q_pos = group_queries(probes, pos_list, n_lists)
    n_groups = (len(q_start) - 1) // n_lists

    buf_s = np.empty((n, 2 * n_cand), dtype=np.float32)  # slots past count[t] are never read
    buf_i = np.empty((n, 2 * n_cand), dtype=np.int32)
    count = np.zeros(n, dtype=np.int32)
    thr = np.full(n, floor, dtype=np.float32)  # only scores above a point's threshold are admitted
    workers = numba.get_num_threads()
    max_members = max(1, int(np.diff(starts).max()))
    scratch_q = np.empty(workers * JOIN_STEP_ROWS * dim, dtype=np.float32)
    scratch_t = np.empty(workers * JOIN_STEP_ROWS * max_members, dtype=np.float32)
    col_s = np.empty((workers, max_members, 2 * n_cand), dtype=np.float32)
    col_i = np.empty((workers, max_members, 2 * n_cand), dtype=np.int32)
    col_count = np.zeros((workers, max_members), dtype=np.int32)
    col_thr = np.empty((workers, max_members), dtype=np.float32)
    sq_arg = np.empty(0, dtype=np.float32) if sq is None else sq
    args = (pos_list, probe_bitmap(probes, n_lists), buf_s, buf_i, count, thr, scratch_q, scratch_t,
            col_s, col_i, col_count, col_thr, JOIN_STEP_ROWS, workers)
    bar = Progress(progress, (1 + n_groups) * n_lists, f"approximate {n_cand}-candidate join ({metric})",
                   unit="list", auto=n > 50_000)
    with numba_thread_pool(), bar:  # the products run in numba's workers, as the folds do
        for lst in range(n_lists):
            b0, b1 = int(starts[lst]), int(starts[lst + 1])
            if b1 > b0:
                join_tile(pts, sq_arg, np.arange(b0, b1, dtype=np.int64), b0, b1, True, *args)
            bar.update()
        for g in range(n_groups):
            for lst in range(n_lists):
                b0, b1 = int(starts[lst]), int(starts[lst + 1])
                queries = q_pos[q_start[g * n_lists + lst]:q_start[g * n_lists + lst + 1]]
                for r0 in range(0, len(queries) if b1 > b0 else 0, JOIN_TILE_ROWS):
                    join_tile(pts, sq_arg, queries[r0:r0 + JOIN_TILE_ROWS], b0, b1, False, *args)
                bar.update()
    # back to the caller's row order and ids
    compact_all(buf_s, buf_i, count, thr, n_cand, 8 * workers)
    return gather_candidates(buf_i, count, order, n_cand), order
