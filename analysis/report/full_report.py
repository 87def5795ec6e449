"""The full geometry report: every statistic of an embedding set from one shared k-NN table.

:func:`geometry_report` searches the self-join k-nearest-neighbour table once, with as many columns
as the widest consumer needs, through :meth:`EmbeddingSet.neighbors`; the other parts slice that
cached table. What still runs its own (small) search is a query *sample* against the whole corpus,
one pass that serves concentration (each query's 2k cosine neighbours and mean distance to the
corpus) and cosine versus dot (its dot neighbours), and the subsample blocks of the TwoNN decimation
curve.

With ``exact=False`` the table comes from the approximate engine (:mod:`._ann`) and its measured
recall@k is carried next to every statistic built on it. The sample search then runs first and as
wide as the table: its exact neighbours are the truth the engine tunes its probing against and
measures that recall on, so no second exact search is needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .._core import (
    EmbeddingInputError,
    Progress,
    Result,
    check_k,
    check_metric,
    check_random_state,
    find_zero_rows,
    metric as _field,
    sample_rows,
    sub_progress,
)
from ..embeddings import EmbeddingSet, as_embedding_set
from ..geometry import (
    ConcentrationReport,
    CosineDotReport,
    HubnessReport,
    IntrinsicDimensionReport,
    IsotropyReport,
    NearDuplicateReport,
    SimilarityDistribution,
    concentration_from_table,
    concentration_report,
    cosine_dot_from_tables,
    cosine_vs_dot,
    hubness_report,
    intrinsic_dimension,
    isotropy_report,
    near_duplicates,
    similarity_distribution,
)
from ..neighbors import check_join_fits, cosine_and_dot_sample
from .on_cluster import ClusterParts
from .verdicts import Verdict, verdicts

#: Largest neighbour rank of the GRIDE scale curve read off the shared table.
GRIDE_MAX_RANK = 32
#: Up to this many points the TwoNN decimation curve runs in full. Its n/2, n/4, ... subsample
#: self-joins together cost about twice the main self-join, so above this size only the
#: full-set estimate is kept (pass ``scale_levels`` to override).
FULL_SCALE_CURVE_MAX_N = 20_000
#: Parts whose numbers are built on the shared neighbour table (they carry its recall).
_TABLE_PARTS = ("intrinsic_dimension", "hubness", "similarity", "near_duplicates")


@dataclass(frozen=True, repr=False)
class GeometryReport(Result):
    """Isotropy, intrinsic dimension, hubness, concentration and similarity of one embedding set."""

    _title = "embedding geometry"
    name: str = _field("Name of the embedding set.")
    n: int = _field("Number of vectors.")
    dim: int = _field("Dimension of the vectors.")
    metric: str = _field("Similarity of the shared neighbour table (cosine, dot or euclidean).")
    k: int = _field("Neighbours per point for hubness, MLE / local ID and the similarity histograms.")
    exact: bool = _field("True when the shared neighbour table is exact; False for the approximate index.")
    recall: float | None = _field(
        "Measured recall@k of the approximate neighbour table (None when exact); applies to intrinsic "
        "dimension, hubness, similarity and near duplicates.", "Jegou et al., TPAMI 2011")
    table_k: int = _field("Columns of the one shared neighbour table (the widest any part needs).")
    timings: dict = _field("Wall-clock seconds per part (neighbours = the shared search).")
    notes: tuple = _field("Where a part deviates from the shared table or the full set, and why.")
    isotropy: IsotropyReport = _field("Isotropy and covariance spectrum.")
    weighted_isotropy: IsotropyReport | None = _field(
        "The same, p-weighted by item frequency (when the set has weights).", "Yokoi et al., NeurIPS 2024")
    intrinsic_dimension: IntrinsicDimensionReport | None = _field("Intrinsic dimension estimators.")
    hubness: HubnessReport = _field("Hubness of the k-NN graph.")
    concentration: ConcentrationReport | None = _field("Relative contrast and expansion of sampled queries.")
    similarity: SimilarityDistribution | None = _field("Cosine of random pairs against k-th neighbours.")
    cosine_vs_dot: CosineDotReport | None = _field("Agreement of cosine and dot-product neighbours.")
    near_duplicates: NearDuplicateReport | None = _field("Near-duplicate vectors.")
    mode: str = _field("'full': every neighbour statistic from the whole set's k-NN graph; 'sampled': from a "
                       "query sample searched against the whole set, and hubness from a uniform subsample's own "
                       "graph (see sampled_report).", default="full")
    basis: dict | None = _field("What each part was computed on (rows, queries, graph), in words.", default=None)

    def verdicts(self) -> list[Verdict]:
        """The headline numbers graded against stated thresholds, with advice (as the dashboard shows them)."""
        return verdicts(isotropy=self.isotropy, hubness=self.hubness, intrinsic_dimension=self.intrinsic_dimension,
                        dim=self.dim)

    def to_dict(self) -> dict:
        """JSON-safe summary: per-point arrays are left out, recall is added to table-based parts, and the
        verdicts come last."""
        out = super().to_dict()
        for part in _TABLE_PARTS if self.mode == "full" else ("hubness",):
            if out.get(part) is not None:
                out[part]["neighbors_exact"] = self.exact
                out[part]["neighbors_recall"] = self.recall
        out["verdicts"] = [v.to_dict() for v in self.verdicts()]
        return out

    def __repr__(self) -> str:
        return "\n".join(["Verdicts:"] + [f"  {v!r}" for v in self.verdicts()] + [super().__repr__()])

    def to_html(self, path=None) -> str:
        """One standalone HTML page: the verdicts, plotly charts and the tables of every part, usable
        offline (plotly.js is embedded inline once, no CDN).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Where to write the page (UTF-8). The HTML is returned either way.

        Returns
        -------
        str
            The HTML document.
        """
        from .html import report_page

        return report_page(self, path)


class _Clock:
    """Times named parts and reports them, one step each, through one :class:`Progress`."""

    def __init__(self, parts: int, progress):
        self.timings: dict[str, float] = {}
        self._caller = progress
        self._progress = Progress(progress, parts, "geometry report", unit="part")

    def run(self, name: str, fn):
        self._progress.description = f"geometry report: {name}"
        t0 = time.perf_counter()
        out = fn()
        self.timings[name] = time.perf_counter() - t0
        self._progress.update()
        return out

    def within(self):
        """The ``progress`` to hand a part's own long loop: a callback moving the caller's through the
        current part, or the caller's bar setting (the part then shows its own bar)."""
        return sub_progress(self._caller, self._progress.done, self._progress.total)

    def close(self):
        self._progress.close()

    def rounded(self) -> dict[str, float]:
        """Seconds per part, as a report stores them."""
        return {name: round(sec, 4) for name, sec in self.timings.items()}


def distinct_basis(idim: IntrinsicDimensionReport) -> str:
    """What the intrinsic-dimension part adds to its basis when rows repeat: it ran on the distinct points."""
    if not idim.n_duplicates:
        return ""
    return (f"; {idim.n_duplicates:,} rows that copy another folded into the point they copy "
            f"({idim.n - idim.n_duplicates:,} distinct points), each list searched again among the distinct "
            "points where copies filled it")


def resolve_weighted(es, weighted: bool | None) -> bool:
    """Whether a report adds the frequency-weighted isotropy: as asked, or (None) when the set has weights."""
    if weighted is None:
        return es.weights is not None
    if weighted and es.weights is None:
        raise EmbeddingInputError("weighted=True needs item weights: build the set with EmbeddingSet(..., weights=...)")
    return bool(weighted)


def _directed_rows(es: EmbeddingSet, metric: str) -> tuple[EmbeddingSet, str]:
    """The rows the cosine parts of a report can use, and a note when that leaves rows out.

    Under ``metric="cosine"`` that is the whole set (zero rows were refused when its table was
    searched). Under euclidean or dot, all-zero rows are points of the shared table, but cosine is
    undefined for them: the cosine parts run on the other rows, and the note says how many were left out.
    """
    zero = find_zero_rows(es.vectors) if metric != "cosine" else np.empty(0, dtype=np.int64)
    if not len(zero):
        return es, ""
    if len(zero) > es.n - 3:
        raise EmbeddingInputError(
            f"{len(zero)} of {es.n} rows are all-zero vectors: the report's cosine parts need at least 3 rows "
            "with a direction")
    keep = np.setdiff1d(np.arange(es.n), zero)
    note = (f"{len(zero)} of {es.n:,} rows are all-zero vectors (first rows {zero[:5].tolist()}), which have no "
            f"direction: the cosine parts (similarity, near duplicates, cosine vs dot"
            f"{', and under dot intrinsic dimension and concentration' if metric == 'dot' else ''}) leave them out; "
            f"the {metric} parts keep them")
    return es.subset(keep, name=f"{es.name}[non-zero rows]"), note


def geometry_report(data, *, metric: str = "cosine", k: int = 10, exact: bool = True, sample: int | None = 2000,
                    weighted: bool | None = None, random_state=0, progress: bool | None = None,
                    scale_levels: int | None = None, memory_limit: int | None = None,
                    cluster=None) -> GeometryReport:
    """Every geometry statistic of an embedding set, built on one shared k-NN search.

    The self-join neighbour table is searched once through :meth:`EmbeddingSet.neighbors`, with
    ``max(k, 32)`` columns (the GRIDE curve of the intrinsic-dimension report reads ranks up to 32;
    capped at n - 1), and cached on the set; hubness, the Levina-Bickel MLE, TwoNN, local ID, GRIDE,
    the k-th-neighbour similarity histogram and near duplicates all slice it. The parts:

    * isotropy (mean cosine, IsoScore, partition isotropy, effective rank, participation ratio,
      common direction, rogue dimensions; no neighbours), and the p-weighted (Zipfian) version
      when the set carries item weights;
    * intrinsic dimension (TwoNN, MLE, PCA, local ID, GRIDE and decimation curves), on the distinct
      points when rows repeat (one copy of each; see :func:`intrinsic_dimension`);
    * hubness of the k-NN graph (k-occurrence skewness, Robin Hood index, antihubs, hub occupancy);
    * concentration (relative contrast and expansion) of ``sample`` random queries;
    * cosine of random pairs against the k-th neighbour; cosine versus dot neighbours on
      ``sample`` queries; near-duplicate vectors.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        The vectors (an array is wrapped; an EmbeddingSet's neighbour cache is filled and reused).
    metric : {"cosine", "dot", "euclidean"}
        Similarity of the shared table (and of isotropy and hubness). Distance-based parts need a
        distance: under ``"dot"`` intrinsic dimension and concentration use the cosine chord on
        ``sample`` query points instead. The similarity histogram and near duplicates are cosine
        statistics: under another metric they run on a random subset of ``sample`` points. Both
        deviations are listed in ``notes``.
    k : int
        Neighbours per point (hubness, MLE and local ID, similarity histogram; concentration compares
        ranks k and 2k).
    exact : bool
        Exact neighbours (default), or the approximate self-join of :func:`approximate_knn` (an
        IVF join in a PCA subspace, re-ranked exactly), whose measured recall@k is reported beside
        every statistic built on the table. On 100,000 x 384 with TwoNN dimension 70 (2-core Xeon,
        benchmarks/bench_report.py) the exact report took 23 s and the approximate one 8.1 s at recall
        0.955; data of lower intrinsic dimension need fewer probed lists.
    sample : int or None
        Query points for concentration and cosine versus dot; None uses every point.
    weighted : bool or None
        Also report frequency-weighted isotropy. None (default): when the set has weights.
    random_state : int, Generator or None
        Seeds every sample and bootstrap.
    progress : None, bool or callable
        Show a progress bar over the parts (and the neighbour search's own bar), or call
        ``progress(done, total, description)`` as the parts run; during the neighbour search it moves
        with the search's tiles (or the approximate join's lists). An exception it raises
        (:class:`~embgeo.analysis.Cancelled`) stops the report.
    scale_levels : int or None
        Levels of the TwoNN decimation curve; None runs the full curve (6 levels) up to
        20,000 points and only the full-set level above that (the subsample self-joins would cost
        about twice the main search).
    memory_limit : int, optional
        Bytes the neighbour search's working arrays may take (see :func:`approximate_knn`): the
        approximate join holds a candidate buffer for every point where they fit, and a block of
        points at a time where they do not. Default: half the available memory.
    cluster : distributed.Client or str, optional
        Run the heavy parts on a Dask cluster (the optional extra ``embgeo[dask]``): the moments, the
        exact neighbour table and the query sample's search (:mod:`embgeo.analysis.distributed`),
        over row chunks that the workers read themselves when the set is a memory-mapped file. A
        client, a scheduler address, or ``"local:N"`` (a LocalCluster of N worker processes, started
        and stopped here). With ``exact=False`` the approximate table's join runs there block by
        block (:func:`~embgeo.analysis.distributed.dask_approximate_knn`: planned here, its recall
        measured on the query sample as on one machine). Every statistic is then computed from those
        results as on one machine, so the report is the same (the approximate one, up to its recall).

    Returns
    -------
    GeometryReport
        ``to_dict()`` is JSON-safe; ``to_html(path)`` writes a standalone page with charts.

    Raises
    ------
    EmbeddingInputError
        Fewer than 2k + 2 points, NaN/inf values, zero vectors under cosine, an unknown metric, or
        ``weighted=True`` on a set without weights.

    References
    ----------
    Rudman et al., "IsoScore", Findings of ACL 2022; Mu & Viswanath, "All-but-the-top", ICLR 2018.
    Facco et al., Sci. Rep. 2017 (TwoNN); Levina & Bickel, NIPS 2005 (MLE); Denti et al., Sci. Rep.
    2022 (GRIDE).
    Radovanovic, Nanopoulos & Ivanovic, "Hubs in space", JMLR 2010; Feldbauer et al., ICBK 2018.
    He, Kumar & Chang, ICML 2012 (relative contrast); Aumueller & Ceccarello, SISAP 2019 (expansion).
    Steck, Ekanadham & Kallus, WWW 2024 (cosine versus dot); Yokoi et al., NeurIPS 2024 (Zipfian).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 16))
    >>> r = geometry_report(x, k=5, sample=200)
    >>> r.isotropy.isoscore > 0.9, r.hubness.k
    (True, 5)
    """
    metric = check_metric(metric)
    es = as_embedding_set(data)
    k = check_k(k, es.n - 1, context="neighbours (self excluded)")
    check_k(2 * k, es.n - 1, what="2k", context="neighbours (self excluded) for the expansion D_2k/D_k")
    weighted = resolve_weighted(es, weighted)
    if sample is not None:
        sample = check_k(sample, 10**12, what="sample", context="query points")
    if scale_levels is None:
        scale_levels = 6 if es.n <= FULL_SCALE_CURVE_MAX_N else 1
    rng = check_random_state(random_state)

    def seed() -> int:  # one independent seed per part, drawn in a fixed order
        return int(rng.integers(2**31 - 1))

    table_k = min(max(k, GRIDE_MAX_RANK), es.n - 1)
    id_seed, hub_seed, conc_seed, cvd_seed = (seed() for _ in range(4))
    distance = metric if metric != "dot" else "cosine"
    clock = _Clock(parts=9 + bool(weighted), progress=progress)
    notes: list[str] = []
    if not exact and es.cached_neighbors(table_k, metric=metric, exact=False) is None and cluster is None:
        check_join_fits(es.n, es.dim, table_k, memory_limit=memory_limit)  # before the query sample's search, not after it
    on_cluster = ClusterParts(cluster, es, exact=exact)  # a no-op without a cluster
    # Under euclidean or dot a zero vector is a point like any other, but it has no direction: the cosine
    # parts run on the other rows (under cosine the set was refused above, naming the rows)
    cos_es, zero_note = _directed_rows(es, metric)
    if zero_note:
        notes.append(zero_note)
    try:
        shared, truth = None, None
        if distance == "cosine":  # one search of one query sample serves concentration and cosine vs dot
            # the sample and then the bootstrap from one stream, as concentration_report draws them
            conc_rng = check_random_state(conc_seed)
            shared_rows = sample_rows(cos_es.n, sample, conc_rng)
            shared_rows = np.arange(cos_es.n) if shared_rows is None else shared_rows
            # ... and, searched table_k wide, it is the exact truth the approximate table's recall
            # is tuned and measured against (no second exact search of a recall sample)
            k_cos = max(2 * k, table_k if not exact and metric == "cosine" else 0)
            k_dot = max(k, table_k if not exact and metric == "dot" else 0)
            if on_cluster and cos_es is es:
                shared = clock.run("sample_search", lambda: on_cluster.cosine_and_dot_sample(
                    cos_es.vectors, shared_rows, k_cos, k_dot, progress=clock.within()))
            else:
                shared = clock.run("sample_search", lambda: cosine_and_dot_sample(cos_es.vectors, shared_rows, k_cos,
                                                                                  k_dot))
            if not exact and cos_es is es:  # (without the zero rows it is not the truth of the whole set)
                truth = (shared_rows, shared[0 if metric == "cosine" else 1].indices)
        # on a cluster the table and the moments are computed there and cached on the set first
        table = clock.run("neighbors", lambda: on_cluster.attach_table(
            table_k, metric, clock.within(), sample_truth=truth, memory_limit=memory_limit) or es.neighbors(
            table_k, metric=metric, exact=exact, progress=clock.within(), sample_truth=truth, memory_limit=memory_limit))
        work = es if table.exact else es.with_neighbors(table)
        iso = clock.run("isotropy", lambda: on_cluster.attach_moments(clock.within())
                        or isotropy_report(work, metric=metric))
        w_iso = clock.run("weighted_isotropy", lambda: isotropy_report(work, metric=metric, weighted=True)) \
            if weighted else None

        id_sample = None if metric != "dot" else sample
        if metric == "dot":
            notes.append("metric='dot' is not a distance: intrinsic dimension and concentration use the cosine "
                         f"chord on {'all' if sample is None else sample} query points")
        idim = clock.run("intrinsic_dimension", lambda: intrinsic_dimension(
            work if metric != "dot" else cos_es, metric=distance, k=max(k, 2), sample=id_sample, random_state=id_seed, scale_levels=scale_levels))
        hub = clock.run("hubness", lambda: hubness_report(work, k=k, metric=metric, exact=table.exact,
                                                          random_state=hub_seed))
        if shared is not None:
            conc = clock.run("concentration", lambda: concentration_from_table(
                shared[0], k, "cosine", shared_rows, conc_rng))
        else:
            conc = clock.run("concentration", lambda: concentration_report(
                work, k=k, metric=distance, sample=sample, random_state=conc_seed))

        cos_set = work
        if metric != "cosine":
            rows = sample_rows(cos_es.n, sample, rng)
            cos_set = cos_es if rows is None else cos_es.subset(rows, name=f"{es.name}[cosine sample]")
            notes.append("similarity histogram and near duplicates are cosine statistics: computed on "
                         + ("every point" if rows is None else f"a random subset of {len(rows)} points")
                         + f" with a cosine table of their own (the shared table is {metric})")
        cos_k = min(k, cos_set.n - 1)
        sim = clock.run("similarity", lambda: similarity_distribution(cos_set, k=cos_k, random_state=seed()))
        dup = clock.run("near_duplicates", lambda: near_duplicates(cos_set, k=cos_k))
        if shared is not None:
            cvd = clock.run("cosine_vs_dot", lambda: cosine_dot_from_tables(
                work if cos_es is es else cos_es, shared[0].head(k), shared[1].head(k), shared_rows))
        else:
            cvd = clock.run("cosine_vs_dot", lambda: cosine_vs_dot(
                work if cos_es is es else cos_es, k=k, sample=sample, random_state=cvd_seed))
    finally:
        clock.close()
        on_cluster.close()
    if on_cluster.note() is not None:  # what did run there (a table already on the set did not)
        notes.insert(0, on_cluster.note())
    graph = (f"the exact {metric} k-NN graph of all {es.n:,} rows" if table.exact else
             f"the approximate {metric} k-NN graph of all {es.n:,} rows (recall@{table.k} {table.recall:.3f})")
    queries = f"{len(shared_rows) if shared is not None else min(sample or es.n, es.n):,} random queries searched " \
              f"exactly against all rows"
    basis = {"isotropy": f"all {es.n:,} rows (streamed moments)", "hubness": graph,
             "intrinsic_dimension": (graph if metric != "dot" else f"{idim.sample_size:,} random queries (cosine "
                                     "chord) searched exactly against all rows") + distinct_basis(idim),
             "concentration": queries, "similarity": graph if metric == "cosine" else f"a cosine subset ({cos_set.n:,})",
             "near_duplicates": graph if metric == "cosine" else f"a cosine subset ({cos_set.n:,})",
             "cosine_vs_dot": queries}
    if weighted:
        basis["weighted_isotropy"] = basis["isotropy"]
    if scale_levels == 1 and es.n > FULL_SCALE_CURVE_MAX_N:
        notes.append(f"n > {FULL_SCALE_CURVE_MAX_N:,}: the TwoNN decimation curve keeps only the full-set level "
                     "(pass scale_levels=6 for the whole curve, at about twice the neighbour-search cost)")
    return GeometryReport(
        name=es.name, n=es.n, dim=es.dim, metric=metric, k=k, exact=bool(table.exact),
        recall=None if table.exact else table.recall, table_k=table.k,
        timings=clock.rounded(), notes=tuple(notes),
        isotropy=iso, weighted_isotropy=w_iso, intrinsic_dimension=idim, hubness=hub, concentration=conc,
        similarity=sim, cosine_vs_dot=cvd, near_duplicates=dup, mode="full", basis=basis,
    )

