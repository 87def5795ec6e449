"""The IVF partition of the approximate join: k-means lists in the projected space, and the tuning of
how many lists each point probes, by simulating the join on a sample of queries (see
:mod:`.approximate` for the method).
"""

from __future__ import annotations

import math

import numpy as np

#: Training points per list for k-means, and its iterations.
KMEANS_POINTS_PER_LIST = 64
KMEANS_ITERATIONS = 10
#: Projected candidates per tuning query that the simulation looks at, per candidate kept. A true
#: neighbour ranked deeper than this in the projection is counted as missed (a conservative error);
#: on 100,000 x 384, depths 2, 3 and 4 chose the same n_probe and floor, and 2 costs half of 4.
SIMULATION_DEPTH = 2
#: Quantile of the tuning queries' worst kept projected score that every threshold starts at.
#: A point left with fewer than k candidates above the floor is searched exactly afterwards; at 0.01 that
#: was about 2,000 points of 1,000,000 x 384 (10 s), at 0.002 about 200 (2 s), for 3 s more of join.
#: 0.004 (the second-lowest of 500 tuning queries) keeps one odd tuning query from removing the floor.
THRESHOLD_FLOOR_QUANTILE = 0.004


def sq_norms(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a).astype(np.float32)


def centroid_scores(points: np.ndarray, centroids: np.ndarray, half_sq: np.ndarray) -> np.ndarray:
    """``<p, c> - |c|^2 / 2``: larger means nearer in L2, for every point and centroid."""
    s = points @ centroids.T
    s -= half_sq[None, :]
    return s


def kmeans(proj: np.ndarray, n_lists: int, rng) -> tuple[np.ndarray, np.ndarray]:
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
    half_sq = 0.5 * sq_norms(centroids)
    lists = np.empty(n, dtype=np.int64)
    for start in range(0, n, 16_384):
        lists[start:start + 16_384] = centroid_scores(proj[start:start + 16_384], centroids, half_sq).argmax(1)
    return centroids, lists


def _probe_ranks(points: np.ndarray, centroids: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Rank of list ``which[i]`` among point i's lists, nearest first (0 = its own list)."""
    half_sq = 0.5 * sq_norms(centroids)
    out = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), 8_192):
        s = centroid_scores(points[start:start + 8_192], centroids, half_sq)
        own = s[np.arange(len(s)), which[start:start + 8_192]]
        out[start:start + 8_192] = (s > own[:, None]).sum(1)
    return out


def tune_probe(proj, centroids, lists, rows, truth, metric, n_cand, target, *,
               symmetric: bool = True) -> tuple[int | None, float]:
    """Smallest n_probe whose simulated recall on ``rows`` has a 95 % lower bound >= target (or
    None), and a floor for the join's thresholds.

    For each tuning query the ``SIMULATION_DEPTH * n_cand`` best projected candidates are ranked; a
    candidate b of query q is reached with n_probe = p when ``min(rank_q(list b), rank_b(list q)) < p``
    (q probes b's list, or b probes q's) in the symmetric join, when ``rank_q(list b) < p`` in the
    blocked one (``symmetric=False``), whose pairs feed their query only. The join keeps the first
    ``n_cand`` reached ones, and the share of q's true neighbours among them is q's recall after
    exact re-ranking.

    The floor is the ``THRESHOLD_FLOOR_QUANTILE`` quantile of the tuning queries' worst kept score:
    starting every point's threshold there spares the join the admissions a point makes before its
    own candidates lift it (most of the fold's work). A point whose candidates sit lower (a sparse
    region) keeps those above the floor, its best; one left with fewer than k is searched exactly.
    """
    from .exact import exact_knn

    n = proj.shape[0]
    n_lists = centroids.shape[0]
    depth = min(n - 1, SIMULATION_DEPTH * n_cand)
    m = len(rows)
    # The queries' best projected candidates, by the exact engine's blocked search: its memory is bounded
    # by its tiles (a 256-query x n score block took 1 GB at 1,000,000 rows). The threshold floor is read
    # off these scores, so they must be on the join tiles' scale, <q, c> or -|q - c|^2, not merely rank
    # alike (2<q, c> - |c|^2 would put the floor |q|^2 too high and leave most points short).
    euclidean = metric == "euclidean"
    found = exact_knn(proj, k=depth, metric="euclidean" if euclidean else "dot", query_indices=rows,
                      validate=False, progress=False)
    top = found.indices
    top_s = (-(found.distances.astype(np.float64) ** 2) if euclidean else -found.distances).astype(np.float32)
    # rank of b's list among q's lists, from q's own centroid ordering
    q_scores = centroid_scores(proj[rows], centroids, 0.5 * sq_norms(centroids))
    q_rank = np.empty_like(q_scores, dtype=np.int64)
    np.put_along_axis(q_rank, np.argsort(-q_scores, axis=1), np.arange(n_lists)[None, :], axis=1)
    reach = np.take_along_axis(q_rank, lists[top], axis=1)
    if symmetric:
        b_side = _probe_ranks(proj[top.ravel()], centroids, np.repeat(lists[rows], depth)).reshape(m, depth)
        reach = np.minimum(reach, b_side)
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
            # admits nothing); when over 0.4 % of the queries are not full the floor is -inf
            return p, float(np.quantile(worst, THRESHOLD_FLOOR_QUANTILE, method="lower"))
        failed = p
    return None, -math.inf


def _probe_ladder(n_lists: int) -> list[int]:
    """n_probe values about 19 % apart, to bracket the tuned value."""
    steps = np.unique(np.round(np.geomspace(1, n_lists, num=max(2, int(np.log(n_lists) / np.log(1.19)) + 1))))
    return [int(p) for p in steps]
