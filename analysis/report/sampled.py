"""The sampled report: the whole set's geometry without its whole k-NN graph, with error bars.

At tens of millions of vectors the self-join graph the full report reads is the one part that does not
scale (its memory grows with n, its time faster). :func:`sampled_report` keeps every statistic that
has an honest estimate from less:

* **All rows, exactly.** Isotropy, IsoScore, the spectrum and the rogue dimensions need only the mean
  and covariance, one streamed pass (:meth:`EmbeddingSet.moments`), as in the full report.
* **A query sample against all rows.** ``sample`` random points are searched *exactly* against the
  whole set. Their neighbour distances are the whole set's, so the per-point estimators (TwoNN, MLE,
  local ID, GRIDE, relative contrast, expansion, the k-th neighbour cosine, the near-duplicate rate,
  cosine versus dot) are unbiased estimates of the full-set values; their intervals (bootstrap over the
  queries, Wilson for the rate) carry the sampling error.
* **A uniform subsample's own graph.** k-occurrence needs every point's neighbour list, so hubness is
  measured on the k-NN graph of ``subsample`` uniformly drawn rows. Hubness *grows with n*
  (Radovanovic et al., 2010): the subsample's skewness understates the full set's, and its interval
  covers only the spread between subsamples of that size. The report says so on the part.

Each part's ``basis`` entry says which of the three it was computed on.

References
----------
Radovanovic, Nanopoulos & Ivanovic, "Hubs in space", JMLR 2010 (hubness depends on n).
Efron, "Bootstrap methods", Annals of Statistics 1979; Wilson, JASA 1927 (the intervals).
Facco et al., Sci. Rep. 2017 (TwoNN); Levina & Bickel, NIPS 2005 (MLE).
"""

from __future__ import annotations

import numpy as np

from .._core import EmbeddingInputError, check_k, check_metric, check_no_zero_rows, check_random_state, sample_rows
from ..embeddings import as_embedding_set
from ..geometry import (
    concentration_from_table,
    cosine_dot_from_tables,
    cosine_vs_dot,
    hubness_report,
    intrinsic_dimension,
    isotropy_report,
    near_duplicates,
    near_duplicates_from_table,
    similarity_distribution,
    similarity_from_kth,
)
from ..neighbors import cosine_and_dot_sample, exact_knn
from .full_report import GRIDE_MAX_RANK, GeometryReport, _Clock, _directed_rows, distinct_basis, resolve_weighted
from .on_cluster import ClusterParts

#: Default uniform subsample whose own graph gives hubness (its exact self-join takes seconds).
DEFAULT_SUBSAMPLE = 100_000
#: Bootstrap resamples behind the hubness interval.
HUBNESS_BOOTSTRAP = 200


def sampled_report(data, *, metric: str = "cosine", k: int = 10, sample: int = 2000,
                   subsample: int = DEFAULT_SUBSAMPLE, exact_subsample: bool | None = None,
                   weighted: bool | None = None, random_state=0, progress: bool | None = None,
                   cluster=None) -> GeometryReport:
    """The geometry report from streamed moments, a query sample and a subsample, with intervals.

    See the module docstring for what is computed on what. The cost is one pass over the rows for the
    moments, one exact search of ``sample`` queries against all rows (``sample x n`` products), and the
    k-NN graph of ``subsample`` rows: linear in n, with memory bounded by the sample sizes, not by n.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        A memory map stays one: the rows are read block by block.
    metric : {"cosine", "dot", "euclidean"}
        As in :func:`geometry_report` (under ``"dot"`` the distance-based parts use the cosine chord).
    k : int
        Neighbours per point.
    sample : int
        Queries searched exactly against all rows (every row when at least n).
    subsample : int
        Rows whose own k-NN graph gives hubness (the whole set when at least n).
    exact_subsample : bool or None
        Exact graph of the subsample, or the approximate join (recall measured); None: exact up to
        200,000 rows.
    weighted, random_state, progress
        As in :func:`geometry_report`.
    cluster : distributed.Client or str, optional
        Run the two passes over all rows on a Dask cluster (``embgeo[dask]``; as in
        :func:`geometry_report`): the moments and, under cosine and dot, the query sample's search
        against every row. The subsample's graph (``subsample`` rows) is built here. The numbers
        are the same as without a cluster.

    Returns
    -------
    GeometryReport
        ``mode="sampled"``, ``basis`` naming what each part was computed on; ``recall`` and ``exact``
        describe the subsample's graph.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(3000, 16))
    >>> r = sampled_report(x, k=5, sample=300, subsample=1000)
    >>> r.mode, r.intrinsic_dimension.sample_size, r.hubness.n
    ('sampled', 300, 1000)
    """
    metric = check_metric(metric)
    es = as_embedding_set(data)
    k = check_k(k, es.n - 1, context="neighbours (self excluded)")
    table_k = max(2 * k, min(GRIDE_MAX_RANK, es.n - 1))
    check_k(table_k, es.n - 1, what="2k", context="neighbours (self excluded) for the expansion D_2k/D_k")
    sample = min(es.n, check_k(sample, 10**12, what="sample", context="query points"))
    subsample = min(es.n, check_k(subsample, 10**12, what="subsample", context="rows"))
    if subsample < 2 * k + 2:
        raise EmbeddingInputError(f"subsample ({subsample}) must be at least 2k + 2 = {2 * k + 2} rows")
    weighted = resolve_weighted(es, weighted)
    rng = check_random_state(random_state)
    seeds = [int(rng.integers(2**31 - 1)) for _ in range(7)]  # one per random part, drawn in a fixed order
    distance = metric if metric != "dot" else "cosine"
    check_no_zero_rows(es.vectors, metric)  # under cosine every row needs a direction ...
    cos_es, zero_note = _directed_rows(es, metric)  # ... under euclidean or dot the cosine parts skip zero rows
    q_es = cos_es if distance == "cosine" else es  # the rows the query sample is drawn from and searched in
    n, nq = es.n, q_es.n
    queries = np.arange(nq) if sample >= nq else np.sort(check_random_state(seeds[0]).choice(nq, sample, replace=False))
    sub_rows = sample_rows(n, subsample, check_random_state(seeds[1]))
    exact_sub = subsample <= 200_000 if exact_subsample is None else bool(exact_subsample)
    clock = _Clock(parts=9 + bool(weighted), progress=progress)
    on_cluster = ClusterParts(cluster, es, exact=True)  # a no-op without a cluster
    try:
        if distance == "cosine":
            if on_cluster and q_es is es:
                def search():
                    return on_cluster.cosine_and_dot_sample(q_es.vectors, queries, table_k, k, progress=clock.within())
            else:
                def search():
                    return cosine_and_dot_sample(q_es.vectors, queries, table_k, k)
            cos_t, dot_t = clock.run("sample_search", search)
            dist_t = cos_t
        else:
            dist_t = clock.run("sample_search", lambda: exact_knn(es.vectors, k=table_k, metric="euclidean",
                                                                  query_indices=queries, mean_distance=True,
                                                                  validate=False, progress=False))
            cos_t = dot_t = None
        iso = clock.run("isotropy", lambda: on_cluster.attach_moments(clock.within())
                        or isotropy_report(es, metric=metric))
        w_iso = clock.run("weighted_isotropy", lambda: isotropy_report(es, metric=metric, weighted=True)) \
            if weighted else None
        idim = clock.run("intrinsic_dimension", lambda: intrinsic_dimension(
            q_es, metric=distance, k=max(k, 2), sample_neighbors=(queries, dist_t), scale_levels=1,
            random_state=seeds[2]))
        sub = es if sub_rows is None else es.subset(sub_rows, name=f"{es.name}[uniform subsample]")
        graph = clock.run("neighbors", lambda: sub.neighbors(k, metric=metric, exact=exact_sub,
                                                             progress=clock.within()))
        hub = clock.run("hubness", lambda: hubness_report(sub, k=k, metric=metric, exact=exact_sub,
                                                          random_state=seeds[3], bootstrap=HUBNESS_BOOTSTRAP))
        conc = clock.run("concentration", lambda: concentration_from_table(
            dist_t, k, distance, queries, check_random_state(seeds[4])))
        if cos_t is not None:
            sim = clock.run("similarity", lambda: similarity_from_kth(
                q_es, cos_t.similarities[:, k - 1], k, 20_000, 50, check_random_state(seeds[5])))
            dup = clock.run("near_duplicates", lambda: near_duplicates_from_table(q_es, cos_t.head(k), queries))
            cvd = clock.run("cosine_vs_dot", lambda: cosine_dot_from_tables(q_es, cos_t.head(k), dot_t, queries))
        else:
            cos_rows = None if cos_es is es else sample_rows(cos_es.n, subsample, check_random_state(seeds[1]))
            cos_sub = sub if cos_es is es else cos_es if cos_rows is None else cos_es.subset(
                cos_rows, name=f"{es.name}[uniform subsample of non-zero rows]")
            sim = clock.run("similarity", lambda: similarity_distribution(cos_sub, k=k, random_state=seeds[5]))
            dup = clock.run("near_duplicates", lambda: near_duplicates(cos_sub, k=k))
            cvd = clock.run("cosine_vs_dot", lambda: cosine_vs_dot(cos_es, k=k, sample=sample, random_state=seeds[6]))
    finally:
        clock.close()
        on_cluster.close()

    everything = f"all {n:,} rows (streamed moments)"
    searched = f"{len(queries):,} random queries searched exactly against all {n:,} rows"
    sub_graph = (f"the {'exact' if graph.exact else 'approximate'} {metric} k-NN graph of a uniform subsample of "
                 f"{sub.n:,} rows" + ("" if graph.exact else f" (recall@{graph.k} {graph.recall:.3f})"))
    id_searched = searched if idim.sample_size == len(queries) else (
        f"the {idim.sample_size:,} of {len(queries):,} random queries that copy no other row, searched exactly "
        f"against all {n:,} rows")
    basis = {"isotropy": everything, "intrinsic_dimension": id_searched + distinct_basis(idim),
             "concentration": searched,
             "hubness": sub_graph + "; hubness grows with n, so the whole set's is likely larger",
             "similarity": searched if cos_t is not None else sub_graph,
             "near_duplicates": searched if cos_t is not None else sub_graph,
             "cosine_vs_dot": searched}
    if weighted:
        basis["weighted_isotropy"] = everything
    notes = [f"sampled mode: neighbour statistics from {len(queries):,} queries against all rows (with "
             f"intervals) and hubness from a {sub.n:,}-row subsample's own graph, not from the whole set's graph"]
    if on_cluster:
        searched_there = distance == "cosine" and q_es is es
        notes.append(on_cluster.note("the moments" + (" and the query sample's search" if searched_there else "")))
    if zero_note:
        notes.append(zero_note)
    if sub.n < n:
        notes.append(f"hubness was measured on {sub.n:,} of {n:,} rows; k-occurrence skewness grows with n "
                     "(Radovanovic et al., 2010), so read it as a lower bound for the whole set")
    return GeometryReport(
        name=es.name, n=n, dim=es.dim, metric=metric, k=k, exact=bool(graph.exact),
        recall=None if graph.exact else graph.recall, table_k=dist_t.k,
        timings=clock.rounded(), notes=tuple(notes),
        isotropy=iso, weighted_isotropy=w_iso, intrinsic_dimension=idim, hubness=hub, concentration=conc,
        similarity=sim, cosine_vs_dot=cvd, near_duplicates=dup, mode="sampled", basis=basis,
    )
