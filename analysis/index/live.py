"""Live-index health: how well the user's own vector database answers, measured against exact search.

:func:`live_index_report` reads a collection (every vector, in pages, through :mod:`embgeo.analysis.io`),
sends a query sample to the database's *own* search API one query at a time, and scores its answers
against exact k-NN over the same vectors with the same distance (the shared neighbour engine), with the
latency distribution and throughput at the database's current settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .._core import (EmbeddingInputError, Progress, Result, as_float32_matrix, blocked_row_norms, check_k,
                     check_random_state, hidden)
from .._core import metric as _field
from ..embeddings import EmbeddingSet
from ..io import open_live_index
from ..neighbors import exact_knn, recall_per_query, refine_distances
from .difficulty import QueryDifficulty, query_difficulty
from .faiss_indexes import IndexSweep
from .ground_truth import GroundTruth
from .reachability import Reachability, reachability


#: The faiss kinds and search values of ``faiss=True`` (the quick sweep of ``embgeo index-stats``).
FAISS_KINDS = ("hnsw", "ivf")
FAISS_SWEEP = {"hnsw": {"efSearch": (16, 64, 256)}, "ivf": {"nprobe": (1, 8, 64)}}
#: Rows of a set given as ``data=`` compared with the database's own vectors before the set stands in
#: for reading the collection again.
REUSE_CHECK_ROWS = 32
#: An answer counts as a hit when its distance is at most the exact k-th distance times (1 + this):
#: ANN-Benchmarks' tolerance, so that a tied copy of the k-th neighbour is not a miss.
TIE_TOLERANCE = 1e-3


@dataclass(frozen=True, repr=False)
class LiveIndexReport(Result):
    """Recall@k, latency and throughput of a vector database's own search, against exact search."""

    _title = "live-index health"
    source: str = _field("The collection searched.")
    database: str = _field("lancedb, chroma, qdrant or milvus.")
    metric: str = _field("The distance the database ranks by, and the exact search uses.")
    settings: dict = _field("The search settings the database reports (index kind, ef, M, ...).")
    n: int = _field("Vectors in the collection.")
    k: int = _field("Neighbours per query scored by recall@k.", "Aumueller et al., 2020")
    n_queries: int = _field("Queries sent, one call each.")
    query_source: str = _field("held-out(m): m corpus rows (each query's own id left out of both lists), or array.")
    recall_at_k: float = _field(
        "Mean over queries of the share of the database's k answers whose distance (the collection's metric, "
        "from the vectors) is at most the exact k-th distance x (1 + 1e-3): ties with the k-th count as hits.",
        "Aumueller, Bernhardsson and Faithfull, Information Systems 87, 2020")
    recall_at_k_ids: float = _field("Mean over queries of |database top-k ids & exact top-k ids| / k (set overlap; "
                                    "a tied copy of a true neighbour counts as a miss).")
    recall_min: float = _field("The worst query's recall (by distance).")
    latency_ms_p50: float = _field("Median time of one search call, in milliseconds (client included).")
    latency_ms_p95: float = _field("95th percentile of the search-call time, ms.")
    latency_ms_p99: float = _field("99th percentile of the search-call time, ms.")
    qps: float = _field("Queries per second, one client sending one query at a time.")
    exact_seconds: float = _field("Time of the exact search that gives the ground truth.")
    never_returned_rate: float = _field("Share of the collection in no query's database answer.")
    sweep: list = _field("One row per swept search parameter value: params, recall@k (by distance and by ids), "
                         "latency p50/p95/p99, QPS.")
    faiss: IndexSweep | None = _field("embgeo's faiss sweep on the same vectors and queries, for comparison.",
                                      "Johnson, Douze and Jegou, IEEE TBD 2019", default=None)
    vectors_from: str = _field("Where the exact search's vectors came from: the collection read now, or the set given "
                               "as data= (once its row count and a sample of its rows matched the collection's).",
                               default="read")
    recall_per_query: np.ndarray = _field("Recall of every query (by distance).", summary=False, default=None)
    recall_per_query_ids: np.ndarray = _field("Id-overlap recall of every query.", summary=False, default=None)
    difficulty: QueryDifficulty | None = _field(
        "Per-query LID, relative contrast, expansion, and the database's recall by LID bucket (None under dot).",
        "Aumueller and Ceccarello, Information Systems 2021", default=None)
    reachability: Reachability | None = _field("Collection items in no query's exact top-k (this query set).",
                                               "Radovanovic et al., JMLR 2010", default=None)
    latencies_ms: np.ndarray = hidden()
    query_rows: np.ndarray | None = hidden()  #: the held-out corpus rows used as queries (None: an array)
    found: np.ndarray = hidden()  #: the database's answers as corpus rows (-1: an id not in the read)
    truth: np.ndarray = hidden()  #: the exact neighbours as corpus rows


def live_index_report(source, *, collection: str | None = None, queries=None, k: int = 10, n_queries: int = 200,
                      vectors: str | None = None, metric: str | None = None, sweep: dict | None = None,
                      faiss=False, random_state=0, data=None, progress=None) -> LiveIndexReport:
    """Measure a vector database's own search against exact search over the same vectors.

    Parameters
    ----------
    source : str or database object
        ``lancedb://PATH/TABLE``, ``chroma://PATH/COLLECTION``, ``qdrant+local://PATH/COLLECTION``,
        ``qdrant://HOST:PORT/COLLECTION``, ``milvus://FILE.db/COLLECTION``; or a LanceDB table, a
        Chroma collection, or a Qdrant / Milvus client with ``collection``.
    collection : str, optional
        The collection, when ``source`` is a client.
    queries : array of shape (m, d), optional
        Query vectors. By default ``n_queries`` rows of the collection are the queries; each one's own
        id is then left out of the database's answer and of the exact list (it would be its own 1st).
    k : int
        Neighbours per query.
    n_queries : int
        Corpus rows used as queries when ``queries`` is not given (at most n).
    vectors : str, optional
        The vector column or field (named vectors, several vector fields).
    metric : {"euclidean", "cosine", "dot"}, optional
        LanceDB only: the distance its queries use (default euclidean, LanceDB's default). Every other
        database ranks by its collection's distance, which the exact search then uses.
    sweep : dict, optional
        Per-query search parameters to sweep, one at a time, each setting scored like the defaults:
        ``{"hnsw_ef": (16, 64, 256)}`` (Qdrant), ``{"nprobes": (1, 8, 32)}`` or ``ef``, ``refine_factor``
        (LanceDB), ``{"ef": ...}`` or ``nprobe`` (Milvus). Chroma takes none per query (its ``ef_search``
        is a collection setting, which embgeo does not change).
    faiss : bool or tuple of str
        Also run embgeo's faiss sweep (``True``: HNSW and IVF-Flat; or the kinds) on the same vectors and
        queries, side by side (held-out query rows are left out of faiss's corpus).
    random_state : int or numpy Generator
        Chooses the held-out query rows.
    data : EmbeddingSet, optional
        The collection as read before (``load(uri)``: the dashboard's set), used instead of reading it
        again (minutes at a million rows) once it matches: read from the same URI, as many rows as the
        collection holds now, and :data:`REUSE_CHECK_ROWS` of its rows, looked up by id, equal to the
        database's vectors. A set that does not match (the collection changed, or the vectors were
        transformed since) is not used: the collection is read, and ``vectors_from`` says why.
    progress : None, bool or callable
        Reading the collection, then one step per query; raising in the callback cancels.

    Returns
    -------
    LiveIndexReport

    Raises
    ------
    EmbeddingInputError
        For queries of another dimension, a k larger than the collection allows, a distance embgeo has no
        exact metric for, and every error of the readers (a missing collection, null vectors, ...).

    References
    ----------
    Aumueller, Bernhardsson and Faithfull (2020), "ANN-Benchmarks: A benchmarking tool for approximate
    nearest neighbor algorithms", Information Systems 87 (recall@k with a distance tolerance of 1e-3, so
    ties with the k-th neighbour count; latency and QPS). The id overlap is reported beside it.
    """
    if data is not None and not isinstance(data, EmbeddingSet):
        raise EmbeddingInputError(f"data= takes the EmbeddingSet that load() read from the collection; got "
                                  f"{type(data).__name__}")
    live = open_live_index(source, collection, vectors=vectors, metric=metric)
    try:
        return _measure(live, queries, k, n_queries, random_state, progress, sweep, faiss, data)
    finally:
        live.close()


def _collection(live, given, progress) -> tuple[EmbeddingSet, str]:
    """The collection's vectors and ids, and where they came from: ``given`` when it matches the
    collection (see ``live_index_report``'s ``data``), else a read."""
    if given is None:
        return live.read(progress=progress), "read"
    if isinstance(given.source, str) and "://" in given.source and given.source != live.where:
        raise EmbeddingInputError(f"data= was read from {given.source}, not from {live.where}")
    why = _mismatch(live, given)
    if why is None:
        return given, f"the given set ({given.n:,} rows; the row count and {min(REUSE_CHECK_ROWS, given.n)} rows checked)"
    return live.read(progress=progress), f"read (the given set was not used: {why})"


def _mismatch(live, given) -> str | None:
    """Why ``given`` cannot stand in for the collection, or None when it can."""
    if live.count is None or live.fetch is None:
        return f"{live.database} offers no lookup by id here"
    if given.metadata is None or live.id_column not in given.metadata.columns:
        return f"it has no {live.id_column!r} column"
    n = int(live.count())
    if n != given.n:
        return f"the collection holds {n:,} rows, the set {given.n:,}"
    rows = np.random.default_rng(0).choice(n, size=min(REUSE_CHECK_ROWS, n), replace=False)
    ids = list(given.metadata[live.id_column].iloc[rows])
    try:
        found = live.fetch(ids)
    except EmbeddingInputError as exc:  # ids the database cannot be asked for (a LanceDB float id)
        return str(exc)
    for row, i, held in zip(rows, ids, found):
        if held is None:
            return f"id {i!r} is not in the collection"
        if held.shape != (given.dim,) or not np.allclose(held, given.vectors[row], rtol=1e-5, atol=1e-6):
            return f"its row {row} (id {i!r}) differs from the collection's vector"
    return None


def _measure(live, queries, k, n_queries, random_state, progress, sweep, faiss, given) -> LiveIndexReport:
    sweep = _check_sweep(live, sweep)
    data, vectors_from = _collection(live, given, progress)
    corpus, ids = data.vectors, list(data.metadata[live.id_column])
    row_of = {i: r for r, i in enumerate(ids)}
    held_out = queries is None
    if held_out:
        m = int(min(max(1, n_queries), data.n))
        check_k(k, data.n - 1, context="neighbours in the collection (each query's own row left out)")
        rows = np.sort(check_random_state(random_state).choice(data.n, size=m, replace=False))
        q = np.asarray(corpus[rows])
    else:
        q = as_float32_matrix(queries, name="queries")
        if q.shape[1] != data.dim:
            raise EmbeddingInputError(f"{live.where}: queries have dimension {q.shape[1]}, the collection {data.dim}")
        check_k(k, data.n, context="vectors in the collection")
        rows, m = None, q.shape[0]
    t0 = time.perf_counter()
    depth = min(2 * k, data.n - held_out)  # 2k for the expansion statistic, as index_report's ground truth
    search = {"query_indices": rows} if held_out else {"queries": q}
    exact = exact_knn(corpus, k=depth, metric=live.metric, mean_distance=live.metric != "dot", progress=False,
                      **search)
    exact_seconds = time.perf_counter() - t0
    ground = GroundTruth(k=k, n_queries=m, n_corpus=data.n, metric=live.metric,
                         source=f"held-out({m})" if held_out else "array", seconds=exact_seconds,
                         backend=exact.backend, indices=exact.indices, distances=exact.distances,
                         mean_distance=exact.mean_distance, corpus_rows=np.arange(data.n), query_rows=rows,
                         file_neighbors=None, file_distances=None)
    norms = (blocked_row_norms(corpus), blocked_row_norms(q)) if live.metric == "cosine" else None
    steps = m * (1 + len(sweep))
    with Progress(progress, steps, f"searching {live.where}", unit="query") as bar:
        found, latencies = _search_all(live, q, k, rows, row_of, {}, bar)
        swept = []
        for params in sweep:
            f, lat = _search_all(live, q, k, rows, row_of, params, bar)
            swept.append({"params": params, **_timing(_recall_by_distance(corpus, q, f, ground.truth, live.metric, norms),
                                                      lat, recall_per_query(f, ground.truth))})
    per_query = _recall_by_distance(corpus, q, found, ground.truth, live.metric, norms)
    per_query_ids = recall_per_query(found, ground.truth)
    returned = np.zeros(data.n, dtype=bool)
    returned[found[found >= 0]] = True
    difficulty = None if live.metric == "dot" else query_difficulty(
        ground, per_query_recall={live.database: per_query}, n_buckets=min(4, m))
    faiss_sweep = None if not faiss else _faiss(data, corpus, q, rows, k, live.metric, faiss, random_state)
    return LiveIndexReport(
        source=live.where, database=live.database, metric=live.metric, settings=dict(live.settings), n=data.n, k=k,
        n_queries=m, query_source=f"held-out({m})" if held_out else "array",
        **_timing(per_query, latencies, per_query_ids),
        recall_min=float(per_query.min()), exact_seconds=exact_seconds, never_returned_rate=float(1.0 - returned.mean()),
        vectors_from=vectors_from,
        sweep=swept, faiss=faiss_sweep, recall_per_query=per_query, recall_per_query_ids=per_query_ids,
        difficulty=difficulty,
        reachability=reachability(ground, corpus_as_queries=False), latencies_ms=latencies, query_rows=rows,
        found=found, truth=np.asarray(ground.truth))


def _search_all(live, q, k, rows, row_of, params, bar):
    """Every query, one call each: the answers as corpus rows (the query's own row left out) and the times."""
    m = q.shape[0]
    found = np.full((m, k), -1, dtype=np.int64)
    latencies = np.empty(m)
    for i in range(m):
        vector = q[i].astype(np.float32)
        t = time.perf_counter()
        answer = live.search(vector, k + (rows is not None), **params)
        latencies[i] = (time.perf_counter() - t) * 1e3
        got = [row_of.get(a, -1) for a in answer]
        if rows is not None:
            got = [r for r in got if r != rows[i]]
        got = got[:k]
        found[i, :len(got)] = got
        bar.update()
    return found, latencies


def _recall_by_distance(corpus, q, found, truth, metric: str, norms=None) -> np.ndarray:
    """Per query, the share of the k answers within the exact k-th distance x (1 + TIE_TOLERANCE).

    Both distances come from the vectors by the same computation (``refine_distances``: the chord
    between unit vectors for cosine, euclidean, ``-<q, x>`` for dot), so a copy of the k-th neighbour
    gets exactly its distance. An answer that is not in the collection read (-1) is a miss. ``norms``:
    the cosine row norms of the corpus and the queries, computed once for every call.
    """
    truth = np.asarray(truth)
    k = truth.shape[1]
    got = refine_distances(corpus, q, found, metric, norms=norms)
    kth = refine_distances(corpus, q, truth[:, k - 1:k], metric, norms=norms)[:, 0].astype(np.float64)
    limit = kth + TIE_TOLERANCE * np.abs(kth)
    return (got <= limit[:, None]).sum(axis=1) / k  # NaN (no answer) compares False


def _timing(per_query, latencies, per_query_ids) -> dict:
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"recall_at_k": float(per_query.mean()), "recall_at_k_ids": float(per_query_ids.mean()),
            "latency_ms_p50": float(p50), "latency_ms_p95": float(p95),
            "latency_ms_p99": float(p99), "qps": float(len(latencies) / (latencies.sum() / 1e3))}


def _check_sweep(live, sweep) -> list[dict]:
    """``{"hnsw_ef": (16, 64)}`` -> ``[{"hnsw_ef": 16}, {"hnsw_ef": 64}]`` (one parameter at a time)."""
    if not sweep:
        return []
    if not isinstance(sweep, dict):
        raise EmbeddingInputError(f"sweep= is a dict of search parameter -> values, got {sweep!r}")
    if not live.params:
        raise EmbeddingInputError(f"{live.where}: {live.database} takes no search parameters per query (its settings "
                                  "belong to the collection, and embgeo never changes a collection)")
    unknown = [name for name in sweep if name not in live.params]
    if unknown:
        raise EmbeddingInputError(f"{live.where}: {live.database} searches take {', '.join(live.params)}, not "
                                  f"{', '.join(map(str, unknown))}")
    return [{name: v} for name, values in sweep.items()
            for v in (values if isinstance(values, (list, tuple)) else (values,))]


def _faiss(data, corpus, q, rows, k, metric, kinds, random_state):
    """embgeo's faiss sweep on the same vectors (held-out rows are taken out of its corpus)."""
    from .faiss_indexes import index_sweep
    from .ground_truth import ground_truth
    from .queries import QuerySplit

    kinds = FAISS_KINDS if kinds is True else tuple(kinds)
    keep = np.arange(data.n) if rows is None else np.setdiff1d(np.arange(data.n), rows)
    split = QuerySplit(eset=data, corpus=np.asarray(corpus[keep]), corpus_rows=keep, queries=q, query_rows=rows,
                       source="array" if rows is None else f"holdout({len(rows)})", metric=metric, benchmark=None)
    ground = ground_truth(data, k=k, metric=metric, _split=split)
    params = {kind: dict(FAISS_SWEEP[kind]) for kind in kinds if kind in FAISS_SWEEP}
    return index_sweep(ground, split, indexes=kinds, index_params=params, repeats=1, random_state=random_state)
