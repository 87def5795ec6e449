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

**Memory.** That symmetric join holds a buffer of ``2 candidates`` slots for every point until the
last list is scored (2 GB at 1,000,000 points and 128 candidates). Where that does not fit the memory
limit, the **blocked** join (:func:`.ivf_join.blocked_join`) takes consecutive positions in list order a
block at a time: the block's points probe their lists, every (list, queries) tile feeds the queries
only, and the block is re-ranked and written to the result before the next one starts, so only the
projection and the result grow with n. A pair then reaches only its query, whose candidate set is
``{b : a probes list(b)}``: the tuning (which simulates the join it is tuning) probes about twice the
lists for the same recall (1,000,000 x 384, k = 32, target 0.95: 128 of 1,000 lists against 64; the
join took 218 s against 149 s, bench_scale.py's ``bounded`` case).

``n_probe`` is tuned on a sample of queries by *simulating* the join for them (their projected
top candidates and which of those the probing would reach): the recall of the re-ranked result equals
the share of the true neighbours among the chosen candidates, since a true neighbour that is a
candidate always survives the exact re-ranking. The smallest ``n_probe`` whose recall's 95 % lower
confidence bound reaches the target wins; when even probing every list falls short, the projection
dimension is doubled (at the full dimension with every list probed the join is exact). The recall
stored on the result is measured afterwards, against exact search, on a *different* sample. The
same simulation gives a floor for every point's threshold (see :func:`.ivf.tune_probe`).

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

import math
import time
from dataclasses import dataclass

import numpy as np

from .._core import (
    EmbeddingInputError,
    as_float32_matrix,
    check_finite,
    check_k,
    check_metric,
    check_no_zero_rows,
    blocked_row_norms,
    check_random_state,
    size_text,
    prepare_rows,
    resolve_memory_limit,
    scan_moments,
)
from .exact import exact_knn
from .ivf import kmeans, tune_probe
from .ivf_join import (
    MIN_BLOCK_ROWS,
    RERANK_ROWS,
    Reranker,
    block_rows_that_fit,
    blocked_join,
    candidates_that_fit,
    join_bytes,
    symmetric_join,
)
from .statistics import recall_at_k
from .table import Neighbors

#: Leading principal directions scored in the candidate pass (doubled when the target needs it).
DEFAULT_PROJECTION_DIM = 96
#: Rows used to estimate the principal directions (a sample is plenty for a basis).
BASIS_SAMPLE_ROWS = 32_768
#: The tuning may double the candidates a point keeps (default 4 k) up to this many, the default
#: report's 4 x 32 (so no more memory per point than that report takes).
MAX_TUNED_CANDIDATES = 128
#: Probed lists assumed when choosing the join before the tuning (1,000,000 x 384 tuned 64 of 1,000).
TYPICAL_PROBE = 64


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
    memory_limit: int | None = None,
    join: str = "auto",
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
    memory_limit : int, optional
        Bytes the join's working arrays may take (the projection, the candidate buffers, the probe
        lists, the result; the input's own pages are not counted). Default: half the available
        memory. The symmetric join holds a candidate buffer for every point; where that does not
        fit (``join="auto"``), the blocked join holds them for one block of points at a time, at
        about twice the work; where even that does not fit, a clear error naming what it needs.
    join : {"auto", "symmetric", "blocked"}
        How the pairs are scored (see :func:`join_bytes`). "symmetric": every point's buffer is
        held while each list is scored against every point that probes it, and a pair feeds both
        of its points. "blocked": blocks of points (in list order) are scored against the lists
        they probe and re-ranked at once, a pair feeding its query only (more lists are probed
        for the same recall), so memory grows with n only by the projection and the result.
        "auto": symmetric where its buffers fit in ``memory_limit``, else blocked.
    progress : None, bool or callable
        A progress bar over the lists (None: for n above 50,000), or a callback
        ``progress(done, total, description)`` called as the join advances (lists of each pass, or
        probed lists of each block); an exception it raises (:class:`~embgeo.analysis.Cancelled`)
        stops the join.

    Returns
    -------
    Neighbors
        ``exact=False``, ``recall`` measured on ``recall_sample`` fresh queries against
        :func:`exact_knn`, and the settings used in ``backend``.

    Raises
    ------
    EmbeddingInputError
        NaN/inf rows, zero rows under cosine, k too large for n, a setting out of range, or a join
        that cannot fit in ``memory_limit``.

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
    plan = plan_join(corpus, k, metric=metric, n_lists=n_lists, n_probe=n_probe, projection_dim=projection_dim,
                     candidates=candidates, target_recall=target_recall, recall_sample=recall_sample,
                     sample_truth=sample_truth, random_state=random_state, memory_limit=memory_limit, join=join)
    x, n, k = plan.x, plan.x.shape[0], plan.k
    norms = blocked_row_norms(x)
    ids = np.empty((n, k), dtype=np.int32)  # -1 where a point had fewer than k candidates
    dist = np.empty((n, k), dtype=np.float32)
    rerank = Reranker(x, plan.metric, norms, plan.n_cand, ids, dist)
    if plan.layout == "symmetric":
        buf_i, count, order = symmetric_join(plan.proj, plan.centroids, plan.lists, plan.probe, plan.metric,
                                             plan.n_cand, plan.floor, progress)
        plan.release()  # the projection was reordered in place by the join
        for start in range(0, n, RERANK_ROWS):
            block = slice(start, start + RERANK_ROWS)
            rerank(order[block], buf_i[block], count[block], order)
        del buf_i, count
    else:
        block_rows = block_rows_that_fit(plan.limit, n, plan.dim, plan.n_lists, plan.probe, k, plan.n_cand)
        blocked_join(plan.proj, plan.centroids, plan.lists, plan.probe, plan.metric, plan.n_cand, plan.floor,
                     block_rows, progress, rerank)
        plan.release()
    return plan.neighbors(ids, dist, backend=plan.backend(), seconds=time.perf_counter() - t0)


@dataclass
class JoinPlan:
    """What :func:`plan_join` chose for an IVF self-join, and what it holds for it: the corpus ``x``
    (float32, validated), the projection ``proj`` (n x dim, reordered in place by the join), the
    k-means ``centroids`` and each point's list, the tuned ``probe``, the thresholds' ``floor``, the
    candidates a point keeps, the join's layout and memory limit, and the query sample the recall is
    measured on (``check_rows``, their exact neighbours ``check_truth``)."""

    x: np.ndarray
    k: int
    metric: str
    proj: np.ndarray | None
    centroids: np.ndarray
    lists: np.ndarray | None
    probe: int
    floor: float
    dim: int
    n_cand: int
    n_lists: int
    layout: str
    limit: int
    check_rows: np.ndarray
    check_truth: np.ndarray

    def release(self) -> None:
        """Drop the projection and the lists (the join has them reordered; nothing reads them after)."""
        self.proj = self.lists = None

    def backend(self, layout: str | None = None) -> str:
        return (f"ivf-join({layout or self.layout}, dim={self.dim}, lists={self.n_lists}, probe={self.probe}, "
                f"candidates={self.n_cand})")

    def neighbors(self, ids: np.ndarray, dist: np.ndarray, *, backend: str, seconds: float) -> Neighbors:
        """The result from the join's ``ids`` and ``dist`` (-1 where a point had fewer than k
        candidates: those points are searched exactly here), with the recall measured on the check
        sample."""
        short = np.flatnonzero((ids < 0).any(axis=1))
        if len(short):  # a point whose probed lists held fewer than k others: search it exactly
            found = exact_knn(self.x, k=self.k, metric=self.metric, query_indices=short, validate=False,
                              progress=False)
            ids[short], dist[short] = found.indices, found.distances
        return Neighbors(indices=ids, distances=dist, metric=self.metric, exact=False, backend=backend,
                         recall=recall_at_k(ids[self.check_rows], self.check_truth),
                         recall_sample=len(self.check_rows), seconds=seconds)


def plan_join(corpus, k: int = 10, *, metric: str = "cosine", n_lists: int | None = None, n_probe: int | None = None,
              projection_dim: int | None = None, candidates: int | None = None, target_recall: float = 0.95,
              recall_sample: int = 500, sample_truth: tuple | None = None, random_state=0,
              memory_limit: int | None = None, join: str = "auto") -> JoinPlan:
    """Everything :func:`approximate_knn` does before the join: the checks, the principal basis, the
    samples' exact neighbours, the projection, k-means, the tuning of ``n_probe`` (and of the
    projection's dimension and the candidates, see the module docstring) and the choice of the join
    that fits ``memory_limit``. The parameters are :func:`approximate_knn`'s; ``join="blocked"`` plans
    the blocked join, which the Dask engine also runs (block by block on its workers)."""
    metric = check_metric(metric)
    x = as_float32_matrix(corpus, name="corpus")
    n, d = x.shape
    k = check_k(k, n - 1, context="neighbours in the corpus (self excluded)")
    if not 0 < target_recall <= 1:
        raise EmbeddingInputError(f"target_recall must be in (0, 1], got {target_recall}")
    check_finite(x, "corpus")
    check_no_zero_rows(x, metric, "corpus")
    recall_sample = check_k(recall_sample, 10**12, what="recall_sample", context="queries")
    n_lists = _setting(n_lists, "n_lists", n, default=default_lists(n))
    if n_probe is not None:
        n_probe = _setting(n_probe, "n_probe", n_lists, default=None)
    fixed_dim = projection_dim is not None
    dim = _setting(projection_dim, "projection_dim", d, default=min(d, DEFAULT_PROJECTION_DIM))
    n_cand = _setting(candidates, "candidates", n - 1, default=min(n - 1, 4 * k))
    if n_cand < k:
        raise EmbeddingInputError(f"candidates ({n_cand}) must be at least k ({k})")
    if join not in ("auto", "symmetric", "blocked"):
        raise EmbeddingInputError(f"join must be 'auto', 'symmetric' or 'blocked', got {join!r}")
    rng = check_random_state(random_state)
    limit = resolve_memory_limit(memory_limit)
    # the least the join could need (one probed list, k candidates): refuse before minutes of work
    least = "symmetric" if join == "symmetric" else "blocked"
    _check_fits(least, limit, n, dim, n_lists, n_probe or 1, k, n_cand if candidates is not None else k)

    # No normalised copy of the corpus (1.5 GB at 1,000,000 x 384, and x may be a memory map): the
    # projection normalises block by block and the re-ranking divides by the row norms.
    basis, centre = _principal_basis(x, metric, rng)

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
    layout = join
    if join == "auto":  # the symmetric join at the tuning's usual reach, or the blocked one
        typical = join_bytes("symmetric", n, dim, n_lists, min(n_lists, TYPICAL_PROBE), k, max_cand)
        layout = "symmetric" if typical <= limit else "blocked"
    while True:
        proj = _project(x, basis[:, :dim], centre, metric)
        centroids, lists = kmeans(proj, n_lists, rng)
        probe, floor = n_probe, -math.inf
        while n_probe is None:
            probe, floor = tune_probe(proj, centroids, lists, tune_rows, tune_truth, metric, n_cand, target_recall,
                                      symmetric=layout == "symmetric")
            # Needing more than half the lists means the candidates, not the lists, limit the recall:
            # true neighbours rank too deep in the projection to be among a point's n_cand. Doubling
            # them is cheaper than scanning every list (100,000 x 384, k = 10, target 0.97: 40
            # candidates needed all 316 lists, 20.3 s; 80 needed 28, 5.5 s: benchmarks/bench_ann_peers.py).
            if (probe is None or probe > n_lists // 2) and n_cand < max_cand:
                n_cand = min(max_cand, 2 * n_cand)
                continue
            if layout == "symmetric":
                fits = candidates_that_fit(limit, n, dim, n_lists, n_lists if probe is None else probe, k)
                if fits < n_cand and join == "auto":
                    layout = "blocked"  # its buffers are a block's, not every point's: tune for it
                    continue
                if n_cand > fits and candidates is None and fits >= k:  # the budget, not the recall, decides
                    n_cand = max_cand = fits
                    continue
            break
        if n_probe is None:
            if probe is None and not fixed_dim and dim < d:
                dim = min(d, 2 * dim)
                continue
            probe = n_lists if probe is None else probe
        break
    if layout == "symmetric" and join == "auto" and join_bytes(layout, n, dim, n_lists, probe, k, n_cand) > limit:
        layout = "blocked"  # only with a given n_probe: a tuned one was tuned for what fits

    _check_fits(layout, limit, n, dim, n_lists, probe, k, n_cand)
    return JoinPlan(x=x, k=k, metric=metric, proj=proj, centroids=centroids, lists=lists, probe=probe, floor=floor,
                    dim=dim, n_cand=n_cand, n_lists=n_lists, layout=layout, limit=limit, check_rows=check_rows,
                    check_truth=check_truth)


# --------------------------------------------------------------------------------------------- pieces


def default_lists(n: int) -> int:
    """Inverted lists of the join by default: round(sqrt(n)), at most n / 64 (at least 1)."""
    return max(1, min(n // 64, round(math.sqrt(n))))


def check_join_fits(n: int, d: int, k: int, *, memory_limit: int | None = None) -> None:
    """Raise :class:`EmbeddingInputError` when even the smallest default join of ``n`` points (the
    blocked join with k candidates and one probed list) would not fit in ``memory_limit``: a caller
    with work to do before the join (the report's query sample) refuses at once instead of minutes
    later."""
    _check_fits("blocked", resolve_memory_limit(memory_limit), n, min(d, DEFAULT_PROJECTION_DIM), default_lists(n),
                1, k, k)


def _check_fits(layout: str, limit: int, n: int, dim: int, n_lists: int, n_probe: int, k: int, n_cand: int) -> None:
    need = join_bytes(layout, n, dim, n_lists, n_probe, k, n_cand)
    if need > limit:
        held = ("a candidate buffer for every point" if layout == "symmetric" else
                f"the {n:,} x {k} result and candidate buffers for {min(n, MIN_BLOCK_ROWS):,} points at a time")
        raise EmbeddingInputError(
            f"the approximate join of {n:,} points needs about {size_text(need)} ({dim}-d projection, {n_cand} "
            f"candidates and {n_probe} probed list{'s' if n_probe != 1 else ''} a point, {k} neighbours, "
            f"{held}), more than memory_limit = "
            f"{size_text(limit)}; pass a larger memory_limit, fewer candidates or a smaller k, or use the sampled report "
            f"(sampled_report, embgeo report --sampled), whose memory does not grow with n")


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


def _principal_basis(x: np.ndarray, metric: str, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigenvectors of the second-moment matrix of the rows the join compares (unit rows under
    cosine), largest first, and the centre to subtract (or None).

    Inner products (cosine, dot) are best kept in a rank-r approximation by the *uncentred* second
    moment, whose leading direction is the embeddings' common direction; distances (euclidean) are
    translation-invariant, so their basis is the covariance's. A sample of rows is plenty for a basis.
    """
    n = x.shape[0]
    rows = x if n <= BASIS_SAMPLE_ROWS else x[np.sort(rng.choice(n, BASIS_SAMPLE_ROWS, replace=False))]
    moments = scan_moments(prepare_rows(rows, metric))
    centred = metric == "euclidean"
    _, vectors = moments.principal_axes(centered=centred)
    centre = moments.mean.astype(np.float32) if centred else None
    return np.ascontiguousarray(vectors, dtype=np.float32), centre


def _project(x: np.ndarray, basis: np.ndarray, centre, metric: str) -> np.ndarray:
    """The rows (unit rows under cosine, prepared block by block) on the basis: a new n x dim array."""
    rotate = basis.shape[1] < x.shape[1] or centre is not None  # a full rotation changes nothing the join sees
    out = np.empty((x.shape[0], basis.shape[1] if rotate else x.shape[1]), dtype=np.float32)
    for start in range(0, x.shape[0], 65_536):
        block = prepare_rows(x[start:start + 65_536], metric)
        if rotate:
            np.matmul(block if centre is None else block - centre, basis, out=out[start:start + len(block)])
        else:
            out[start:start + len(block)] = block
    return out
