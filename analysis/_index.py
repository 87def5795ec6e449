"""Vector-index statistics: exact ground truth, faiss index sweeps, query difficulty, reachability.

Everything here is measured against exact search from the shared engine (:func:`exact_knn`), never
against a brute-force n x n matrix.

Recall rules (methods sheet, "Index statistics")
------------------------------------------------
* **Set overlap** (the default ``recall_at_k``): the share of a query's true k nearest neighbours that
  are among the k returned, averaged over queries.
* **ann-benchmarks distance rule** (``recall_distance_rule``; Aumueller, Bernhardsson, Faithfull,
  Information Systems 2020): a returned item counts when its distance to the query is at most the k-th
  true distance plus 1e-3, which forgives ties. Distances are in ann-benchmarks units: ``1 - cos``
  for cosine ("angular"), ``||x - y||`` for euclidean, ``-<x, y>`` for dot.

Cosine search runs as inner product on L2-normalised vectors; euclidean as L2.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from ._embedding_set import ANNBenchmark, EmbeddingSet
from ._knn import _prepare, _refine_distances, exact_knn
from ._results import Result, metric as _field
from ._validation import (
    EmbeddingInputError,
    as_float32_matrix,
    check_k,
    check_metric,
    check_random_state,
    check_same_dim,
)

INDEX_KINDS = ("flat", "hnsw", "ivf", "ivfpq", "sq8")

#: ann-benchmarks' tie tolerance for the distance rule.
ANN_BENCHMARKS_EPSILON = 1e-3


def _hidden(default=None):
    """A field kept on the object for further analysis but left out of reprs and ``to_dict()``."""
    return dataclasses.field(default=default, metadata={"hidden": True})


class _Report(Result):
    """Result whose ``to_dict()`` leaves out hidden (large, per-query) fields."""

    def to_dict(self) -> dict:
        full = super().to_dict()
        return {f.name: full[f.name] for f in dataclasses.fields(self) if not f.metadata.get("hidden")}


# --------------------------------------------------------------------------------------------- queries


@dataclass
class _Split:
    """A corpus and a query set drawn from one input."""

    eset: EmbeddingSet
    corpus: np.ndarray              # raw float32 corpus rows searched
    corpus_rows: np.ndarray         # their row numbers in eset
    queries: np.ndarray             # raw float32 queries
    query_rows: np.ndarray | None   # their row numbers in eset (holdout), else None
    source: str
    metric: str
    benchmark: ANNBenchmark | None  # set when the queries are the file's own


def as_embedding_set(data) -> EmbeddingSet:
    """Wrap a raw (n, d) array in an :class:`EmbeddingSet`; pass a set through."""
    return data if isinstance(data, EmbeddingSet) else EmbeddingSet(data)


def split_queries(data, queries=None, *, holdout=None, metric: str | None = None, random_state=0) -> _Split:
    """Resolve where the queries come from: an array, ``set.benchmark``, or a held-out split.

    ``queries="benchmark"`` (or no queries and no holdout on a set that carries a benchmark) uses the
    ann-benchmarks file's own test queries. Otherwise ``holdout`` rows (an int count or a fraction in
    (0, 1); default ``min(1000, n // 10)``) are drawn at random, removed from the corpus and used as
    queries.
    """
    eset = as_embedding_set(data)
    n = eset.n
    use_benchmark = isinstance(queries, str) and queries == "benchmark"
    if isinstance(queries, str) and not use_benchmark:
        raise EmbeddingInputError(f"queries must be an array or 'benchmark', got {queries!r}")
    if queries is None and holdout is None and eset.benchmark is not None:
        use_benchmark = True
    if queries is not None and holdout is not None:
        raise EmbeddingInputError("pass either queries or holdout, not both")
    all_rows = np.arange(n, dtype=np.int64)
    if use_benchmark:
        bench = eset.benchmark
        if bench is None:
            raise EmbeddingInputError("queries='benchmark' but this EmbeddingSet carries no benchmark")
        q = as_float32_matrix(bench.queries, name="benchmark queries")
        check_same_dim(eset.vectors, q)
        metric = check_metric(metric or bench.metric or "cosine")
        return _Split(eset, eset.vectors, all_rows, q, None, "benchmark", metric, bench)
    metric = check_metric(metric or "cosine")
    if queries is not None:
        q = as_float32_matrix(queries, name="queries")
        check_same_dim(eset.vectors, q)
        return _Split(eset, eset.vectors, all_rows, q, None, "array", metric, None)
    if holdout is None:
        holdout = min(1000, max(1, n // 10))
    if isinstance(holdout, (float, np.floating)) and not isinstance(holdout, bool):
        if not 0.0 < holdout < 1.0:
            raise EmbeddingInputError(f"holdout as a fraction must lie in (0, 1), got {holdout}")
        holdout = max(1, int(round(holdout * n)))
    if isinstance(holdout, bool) or not isinstance(holdout, (int, np.integer)) or not 1 <= holdout < n:
        raise EmbeddingInputError(f"holdout must be a row count in [1, {n - 1}] or a fraction, got {holdout!r}")
    rng = check_random_state(random_state)
    held = np.sort(rng.choice(n, size=int(holdout), replace=False))
    keep = np.setdiff1d(all_rows, held)
    return _Split(eset, eset.vectors[keep], keep, eset.vectors[held], held, f"holdout({int(holdout)})", metric, None)


# --------------------------------------------------------------------------------------------- recall


def ann_units(distances: np.ndarray, metric: str) -> np.ndarray:
    """embgeo distances in ann-benchmarks units: chord -> ``1 - cos``; euclidean and dot unchanged."""
    d = np.asarray(distances, dtype=np.float64)
    return 0.5 * d * d if metric == "cosine" else d


def recall_per_query(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-query set-overlap recall: ``|found[i, :k] & truth[i]| / k`` with k = truth's width.

    Missing results (faiss marks them ``-1``) count as misses.
    """
    found, truth = np.asarray(found), np.asarray(truth)
    if found.shape[0] != truth.shape[0]:
        raise EmbeddingInputError(f"found has {found.shape[0]} rows but truth has {truth.shape[0]}")
    k = truth.shape[1]
    if found.shape[1] < k:
        raise EmbeddingInputError(f"found has {found.shape[1]} columns, fewer than k={k}")
    f = found[:, :k]
    hit = (f[:, :, None] == truth[:, None, :]).any(axis=2) & (f >= 0)
    return hit.sum(axis=1) / k


def recall_distance_rule(found_distances: np.ndarray, true_kth_distance: np.ndarray, *,
                         epsilon: float = ANN_BENCHMARKS_EPSILON) -> np.ndarray:
    """Per-query recall by the ann-benchmarks rule: returned items within the k-th true distance + eps.

    Parameters
    ----------
    found_distances : array of shape (m, k)
        Distances of the returned items (NaN for missing ones), in ann-benchmarks units.
    true_kth_distance : array of shape (m,)
        Distance of each query's k-th true neighbour, same units.
    epsilon : float
        Tie tolerance; ann-benchmarks uses 1e-3.

    References
    ----------
    Aumueller, Bernhardsson, Faithfull, "ANN-Benchmarks: a benchmarking tool for approximate nearest
    neighbor algorithms", Information Systems 87, 2020.
    """
    fd = np.asarray(found_distances, dtype=np.float64)
    thr = np.asarray(true_kth_distance, dtype=np.float64)[:, None] + epsilon
    return (fd <= thr).sum(axis=1) / fd.shape[1]


def _found_distances(corpus_prepared: np.ndarray, queries_prepared: np.ndarray, ids: np.ndarray, metric: str):
    """Distances (embgeo units) from each query to its returned items, NaN where nothing came back."""
    safe = np.where(ids >= 0, ids, 0)
    # Vectors are already prepared (unit for cosine), so chord/L2/-dot come out directly.
    d = _refine_distances(corpus_prepared, queries_prepared, safe, "euclidean" if metric == "cosine" else metric)
    d = d.astype(np.float64)
    d[ids < 0] = np.nan
    return d


# --------------------------------------------------------------------------------------------- ground truth


@dataclass(frozen=True, repr=False)
class GroundTruth(_Report):
    """Exact nearest neighbours of a query set in a corpus: the reference every index is scored on."""

    _title = "exact ground truth"
    k: int = _field("Neighbours per query scored by recall@k.")
    n_queries: int = _field("Queries.")
    n_corpus: int = _field("Corpus vectors searched.")
    metric: str = _field("Similarity (cosine = inner product of unit vectors).")
    source: str = _field("Where the queries came from: array, benchmark (the file's test set) or holdout(m).")
    seconds: float = _field("Wall time of the exact search (2k neighbours and mean distances).")
    backend: str = _field("Where the exact products ran.")
    agreement_with_file: float | None = _field(
        "Set-overlap recall@k of this exact search against the neighbours stored in the ann-benchmarks "
        "file (1 = the same ground truth).", "Aumueller et al., 2020", default=None)
    indices: np.ndarray = _hidden()
    distances: np.ndarray = _hidden()
    mean_distance: np.ndarray | None = _hidden()
    corpus_rows: np.ndarray = _hidden()
    query_rows: np.ndarray | None = _hidden()
    file_neighbors: np.ndarray | None = _hidden()
    file_distances: np.ndarray | None = _hidden()

    @property
    def truth(self) -> np.ndarray:
        """Corpus positions of the true k nearest neighbours, shape (m, k)."""
        return self.indices[:, :self.k]

    def kth_distance_ann_units(self) -> np.ndarray:
        return ann_units(self.distances[:, self.k - 1], self.metric)


def ground_truth(data, *, queries=None, k: int = 10, metric: str | None = None, holdout=None,
                 random_state=0, backend: str = "auto", _split: _Split | None = None) -> GroundTruth:
    """Exact k nearest neighbours of a query set (array, ann-benchmarks test set or held-out rows).

    Computes 2k neighbours (for the expansion statistic) and each query's mean distance to the
    corpus (for relative contrast) in the same blocked pass. With ann-benchmarks queries, the file's
    own ``neighbors`` are kept so every recall can also be reported against them.

    Parameters
    ----------
    data : EmbeddingSet or array of shape (n, d)
        The corpus (all of it, or all but the held-out rows).
    queries : array of shape (m, d), "benchmark", or None
    k : int
        Neighbours per query.
    metric : {"cosine", "dot", "euclidean"}, optional
        Defaults to the benchmark's metric, else cosine.
    holdout : int or float, optional
        Held-out query rows (count or fraction), removed from the corpus.

    Returns
    -------
    GroundTruth

    References
    ----------
    Aumueller, Bernhardsson, Faithfull, ANN-Benchmarks, Information Systems 2020.

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 16)).astype("float32")
    >>> ground_truth(x, k=5, holdout=50).truth.shape
    (50, 5)
    """
    split = _split or split_queries(data, queries, holdout=holdout, metric=metric, random_state=random_state)
    n = split.corpus.shape[0]
    check_k(k, n, context="corpus points")
    depth = min(2 * k, n)
    nb = exact_knn(split.corpus, split.queries, k=depth, metric=split.metric, backend=backend,
                   mean_distance=split.metric != "dot", progress=False)
    file_nb = file_d = agreement = None
    bench = split.benchmark
    if bench is not None and bench.neighbors is not None:
        file_nb = np.asarray(bench.neighbors)
        if file_nb.shape[0] != split.queries.shape[0] or file_nb.shape[1] < k:
            raise EmbeddingInputError(
                f"benchmark neighbors have shape {file_nb.shape}; need {split.queries.shape[0]} rows "
                f"and at least k={k} columns")
        file_nb = file_nb[:, :k]
        file_d = None if bench.distances is None else np.asarray(bench.distances, dtype=np.float64)[:, :k]
        agreement = float(recall_per_query(nb.indices[:, :k], file_nb).mean())
    return GroundTruth(
        k=int(k), n_queries=int(split.queries.shape[0]), n_corpus=int(n), metric=split.metric,
        source=split.source, seconds=float(nb.seconds), backend=nb.backend, agreement_with_file=agreement,
        indices=nb.indices, distances=nb.distances, mean_distance=nb.mean_distance,
        corpus_rows=split.corpus_rows, query_rows=split.query_rows, file_neighbors=file_nb,
        file_distances=file_d,
    )


# --------------------------------------------------------------------------------------------- faiss indexes


@dataclass(frozen=True, repr=False)
class IndexSetting(_Report):
    """One index configuration: accuracy, speed and memory."""

    _title = "index setting"
    kind: str = _field("Index family: flat (exact), hnsw, ivf (IVF-Flat), ivfpq, sq8 (8-bit scalar).")
    params: dict = _field("Build and search parameters.")
    recall_at_k: float = _field("Mean share of the true k neighbours returned (set overlap).",
                                "Methods sheet; Aumueller et al., 2020")
    recall_distance_rule: float = _field(
        "Recall counting returned items within the k-th true distance + 1e-3 (ann-benchmarks rule).",
        "Aumueller et al., 2020")
    qps: float = _field("Queries per second on one thread (best of the repeats).")
    qps_all_threads: float = _field("Queries per second on all faiss threads.")
    build_seconds: float = _field("Training plus adding the corpus.")
    bytes_per_vector: float = _field("Serialised index size (faiss.serialize_index) / n: codes, graph links, centroids.")
    code_bytes_per_vector: float = _field("Documented code size of one stored vector (no links or centroids).")
    recall_vs_file: float | None = _field(
        "Set-overlap recall against the ann-benchmarks file's stored neighbours.", "Aumueller et al., 2020",
        default=None)
    recall_distance_rule_vs_file: float | None = _field(
        "Distance-rule recall with the file's stored k-th distance as threshold.", "Aumueller et al., 2020",
        default=None)
    pareto: bool = _field("On the recall / single-thread QPS Pareto frontier of this sweep.", default=False)
    per_query_recall: np.ndarray = _hidden()

    @property
    def label(self) -> str:
        return setting_label(self.kind, self.params)


def setting_label(kind: str, params: dict) -> str:
    """A readable name such as ``hnsw(M=16, efConstruction=100, efSearch=64)``."""
    return f"{kind}(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"


def _faiss_metric(metric: str):
    import faiss

    return faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT


def default_n_lists(n: int) -> int:
    """About 4 sqrt(n) inverted lists, with at least 39 training points per list (faiss's guidance)."""
    return int(max(1, min(n // 39, round(4 * math.sqrt(n)))))


def _pq_shape(d: int, n: int, m: int | None, nbits: int | None) -> tuple[int, int]:
    """Sub-quantiser count (a divisor of d, about d/4) and bits per code (8, fewer on small corpora)."""
    if m is None:
        m = max(div for div in range(1, d + 1) if d % div == 0 and div <= max(1, d // 4))
    if d % m:
        raise EmbeddingInputError(f"PQ needs m dividing the dimension: m={m} does not divide d={d}")
    if nbits is None:  # 2^nbits centroids per sub-space need ~39 training points each
        nbits = int(np.clip(math.floor(math.log2(max(2, n / 39))), 1, 8))
    return int(m), int(nbits)


def _ivf_sample(x: np.ndarray, n_train: int, rng) -> np.ndarray:
    if x.shape[0] <= n_train:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=n_train, replace=False))]


def build_index(kind: str, x: np.ndarray, metric: str, params: dict | None = None, random_state=0):
    """Build (train + add) one faiss index on prepared vectors; returns ``(index, params, seconds)``.

    ``x`` must already be prepared: unit rows for cosine. Defaults: HNSW M=16, efConstruction=100;
    IVF n_lists = :func:`default_n_lists`; IVF-PQ m ~ d/4 sub-quantisers of up to 8 bits.
    """
    import faiss

    params = dict(params or {})
    n, d = x.shape
    fm = _faiss_metric(metric)
    rng = check_random_state(random_state)
    t0 = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlat(d, fm)
        built = {}
    elif kind == "hnsw":
        m = int(params.get("M", 16))
        efc = int(params.get("efConstruction", 100))
        index = faiss.IndexHNSWFlat(d, m, fm)
        index.hnsw.efConstruction = efc
        built = {"M": m, "efConstruction": efc}
    elif kind in ("ivf", "ivfpq"):
        n_lists = int(params.get("nlist") or default_n_lists(n))
        if not 1 <= n_lists <= n:
            raise EmbeddingInputError(f"nlist={n_lists} must lie in [1, n={n}]")
        quantizer = faiss.IndexFlat(d, fm)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, n_lists, fm)
            built = {"nlist": n_lists}
        else:
            m, nbits = _pq_shape(d, n, params.get("m"), params.get("nbits"))
            index = faiss.IndexIVFPQ(quantizer, d, n_lists, m, nbits, fm)
            built = {"nlist": n_lists, "m": m, "nbits": nbits}
        index.cp.seed = int(rng.integers(2**31 - 1))
        index.train(_ivf_sample(x, 256 * n_lists, rng))
    elif kind == "sq8":
        index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, fm)
        index.train(x)
        built = {}
    else:
        raise EmbeddingInputError(f"unknown index kind {kind!r}; choose from {', '.join(INDEX_KINDS)}")
    index.add(x)
    return index, built, time.perf_counter() - t0


def _serialized_bytes(index) -> int:
    """Length of ``faiss.write_index``'s output, counted as it streams by, never held in memory.

    ``faiss.serialize_index`` copies the whole file out (0.5 s and 170 MB for HNSW at 100k x 384);
    a callback writer that only counts costs 0.02 s and gives the same number.
    """
    import faiss

    written = 0

    def count(chunk) -> int:
        nonlocal written
        written += len(chunk)
        return len(chunk)

    writer = faiss.PyCallbackIOWriter(count)
    faiss.write_index(index, writer)
    del writer  # flushes any buffered tail through the callback
    return written


def _code_bytes(index) -> float:
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        storage = faiss.downcast_index(index.storage)
        return float(storage.code_size + 4 * index.hnsw.nb_neighbors(0))  # vector + level-0 int32 links
    return float(index.code_size)


def _search_sweep(kind: str, params: dict, n_lists: int | None, k: int) -> list[dict]:
    """The search-time settings swept for one index kind."""
    if kind == "hnsw":
        values = params.get("efSearch", (16, 32, 64, 128, 256))
        return [{"efSearch": int(max(v, k))} for v in dict.fromkeys(max(v, k) for v in values)]
    if kind in ("ivf", "ivfpq"):
        values = params.get("nprobe", (1, 2, 4, 8, 16, 32, 64))
        return [{"nprobe": int(v)} for v in dict.fromkeys(min(int(v), n_lists) for v in values)]
    return [{}]


def _apply_search_params(index, setting: dict) -> None:
    if "efSearch" in setting:
        index.hnsw.efSearch = setting["efSearch"]
    if "nprobe" in setting:
        index.nprobe = setting["nprobe"]


def _timed_search(index, q: np.ndarray, k: int, threads: int, repeats: int):
    """Search on ``threads`` faiss threads: (result, best-of-``repeats`` seconds, total seconds).

    The previous faiss thread count is restored even if the search fails.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    best, total, out = math.inf, 0.0, None
    try:
        faiss.omp_set_num_threads(threads)
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = index.search(q, k)
            took = time.perf_counter() - t0
            best, total = min(best, took), total + took
    finally:
        faiss.omp_set_num_threads(before)
    return out, best, total


def pareto_front(recall: np.ndarray, qps: np.ndarray) -> np.ndarray:
    """Boolean mask of settings not dominated in (recall higher, QPS higher)."""
    recall, qps = np.asarray(recall, float), np.asarray(qps, float)
    keep = np.ones(len(recall), dtype=bool)
    for i in range(len(recall)):
        better = (recall >= recall[i]) & (qps >= qps[i]) & ((recall > recall[i]) | (qps > qps[i]))
        keep[i] = not better.any()
    return keep


@dataclass(frozen=True, repr=False)
class IndexSweep(_Report):
    """Every swept setting of every index kind, with the harness overhead of the measurement."""

    _title = "faiss index sweep"
    settings: list = _field("One IndexSetting per build/search configuration.")
    threads: int = _field("faiss threads used for the all-threads QPS.")
    faiss_seconds: float = _field("Time inside faiss calls (train, add, search, all repeats).")
    harness_seconds: float = _field("Sweep wall time spent outside faiss (recall scoring, bookkeeping).")
    indexes: dict = _hidden()  # kind -> the built faiss index of that kind (for IVF balance)


def index_sweep(ground: GroundTruth, split: _Split, *, indexes=("hnsw", "ivf", "ivfpq", "sq8"),
                index_params: dict | None = None, repeats: int = 3, random_state=0) -> IndexSweep:
    """Build each index kind and sweep its search parameter, scoring recall@k, QPS, build time, bytes.

    Cosine = inner product on L2-normalised vectors; euclidean = L2. QPS is measured on one thread
    and on all faiss threads (``faiss.omp_set_num_threads``, restored afterwards), best of ``repeats``.
    Time outside faiss calls (recall scoring, serialising for the size) is reported as harness time.

    Parameters
    ----------
    ground : GroundTruth
        Exact neighbours of the queries (from :func:`ground_truth` on the same split).
    split : the resolved corpus and queries (from :func:`split_queries`).
    indexes : tuple of str
        Kinds from ``flat``, ``hnsw``, ``ivf``, ``ivfpq``, ``sq8``.
    index_params : dict, optional
        Per kind: build parameters (``M``, ``efConstruction``, ``nlist``, ``m``, ``nbits``) and the
        swept search values (``efSearch``, ``nprobe``, tuples).
    repeats : int
        Searches per setting; QPS is the best.

    Returns
    -------
    IndexSweep

    References
    ----------
    Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
    Navigable Small World graphs", IEEE TPAMI 2020 (HNSW). Jegou, Douze, Schmid, "Product quantization
    for nearest neighbor search", IEEE TPAMI 2011 (IVF, IVF-PQ). Johnson, Douze, Jegou, "Billion-scale
    similarity search with GPUs", IEEE TBD 2019 (faiss). Aumueller et al., ANN-Benchmarks, 2020.
    """
    import faiss

    t_start = time.perf_counter()
    index_params = dict(index_params or {})
    unknown = set(indexes) - set(INDEX_KINDS)
    if unknown:
        raise EmbeddingInputError(f"unknown index kinds {sorted(unknown)}; choose from {', '.join(INDEX_KINDS)}")
    if not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise EmbeddingInputError(f"repeats must be a positive integer, got {repeats!r}")
    metric_ = ground.metric
    x = np.ascontiguousarray(_prepare(split.corpus, metric_), dtype=np.float32)
    q = np.ascontiguousarray(_prepare(split.queries, metric_), dtype=np.float32)
    k = ground.k
    truth = ground.truth
    kth = ground.kth_distance_ann_units()
    threads = int(faiss.omp_get_max_threads())
    faiss_seconds = 0.0
    settings, built_indexes = [], {}
    for kind in indexes:
        params = dict(index_params.get(kind, {}))
        index, built, build_s = build_index(kind, x, metric_, params, random_state=random_state)
        faiss_seconds += build_s
        built_indexes[kind] = index
        size = _serialized_bytes(index) / x.shape[0]  # search settings leave the size alone
        for search in _search_sweep(kind, params, built.get("nlist"), k):
            _apply_search_params(index, search)
            (_, ids), t1, spent1 = _timed_search(index, q, k, 1, repeats)
            tall, spent_all = t1, 0.0
            if threads > 1:
                _, tall, spent_all = _timed_search(index, q, k, threads, repeats)
            faiss_seconds += spent1 + spent_all
            per_query = recall_per_query(ids, truth)
            dists = ann_units(_found_distances(x, q, ids, metric_), metric_)
            rule = recall_distance_rule(dists, kth)
            vs_file = rule_file = None
            if ground.file_neighbors is not None:
                vs_file = float(recall_per_query(ids, ground.file_neighbors).mean())
                if ground.file_distances is not None:
                    rule_file = float(recall_distance_rule(dists, ground.file_distances[:, k - 1]).mean())
            settings.append(IndexSetting(
                kind=kind, params={**built, **search}, recall_at_k=float(per_query.mean()),
                recall_distance_rule=float(rule.mean()), qps=q.shape[0] / t1, qps_all_threads=q.shape[0] / tall,
                build_seconds=float(build_s), bytes_per_vector=size,
                code_bytes_per_vector=_code_bytes(index), recall_vs_file=vs_file,
                recall_distance_rule_vs_file=rule_file, per_query_recall=per_query,
            ))
    front = pareto_front([s.recall_at_k for s in settings], [s.qps for s in settings])
    settings = [dataclasses.replace(s, pareto=bool(p)) for s, p in zip(settings, front)]
    wall = time.perf_counter() - t_start
    return IndexSweep(settings=settings, threads=threads, faiss_seconds=float(faiss_seconds),
                      harness_seconds=float(max(0.0, wall - faiss_seconds)), indexes=built_indexes)


# --------------------------------------------------------------------------------------------- difficulty


def lid_from_distances(distances: np.ndarray) -> np.ndarray:
    """Per-query local ID, the Hill form of the MLE over its k neighbour distances r_1 <= ... <= r_k.

    ``LID = -[(1/k) sum_{i=1}^{k} log(r_i / r_k)]^(-1)``, the same estimator as
    ``local_intrinsic_dimension(..., form="hill")`` in the intrinsic-dimension module, but from a
    given distance table, so it also serves queries that are not corpus rows. As there, a query at
    distance 0 from its nearest neighbour (a duplicate) gets NaN; a query whose k distances are all
    equal gets ``inf`` (no growth of density with radius: the hardest case).

    Parameters
    ----------
    distances : array of shape (m, k)
        Sorted distances to the k nearest neighbours (chord for cosine, or euclidean).

    Returns
    -------
    numpy.ndarray of shape (m,)

    References
    ----------
    Levina & Bickel, "Maximum likelihood estimation of intrinsic dimension", NIPS 2005.
    Amsaleg, Chelly, Furon, Girard, Houle, Kawarabayashi, Nett, "Estimating local intrinsic
    dimensionality", KDD 2015.

    Example
    -------
    >>> round(float(lid_from_distances(np.array([[0.5, 1.0]]))[0]), 4)  # 2 / log 2
    2.8854
    """
    r = np.asarray(distances, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lid = -1.0 / np.log(r / r[:, -1:]).mean(axis=1)
    lid[~(r[:, 0] > 0)] = np.nan
    return lid


@dataclass(frozen=True, repr=False)
class QueryDifficulty(_Report):
    """How hard each query is for nearest-neighbour search, and index recall by difficulty."""

    _title = "query difficulty"
    lid_median: float = _field("Median local intrinsic dimension of the queries (higher = harder).",
                               "Amsaleg et al., KDD 2015 (Hill MLE)")
    rc_median: float = _field("Median relative contrast: mean distance to the corpus / k-th NN distance "
                              "(near 1 = hard).", "He, Kumar, Chang, ICML 2012; Aumueller & Ceccarello, 2021")
    expansion_median: float = _field("Median expansion D_2k / D_k (near 1 = hard).",
                                     "Aumueller & Ceccarello, 2021")
    recall_by_bucket: list = _field(
        "Per LID quantile bucket (easy to hard): LID range, queries, and recall@k of each index setting "
        "(queries with an exact duplicate in the corpus have no LID and sit in no bucket).")
    hardest: list = _field("Queries with the highest LID, with their labels and contrast.")
    lid: np.ndarray = _hidden()
    relative_contrast: np.ndarray | None = _hidden()
    expansion: np.ndarray | None = _hidden()


def query_difficulty(ground: GroundTruth, *, per_query_recall: dict | None = None, n_buckets: int = 4,
                     n_hardest: int = 5, labels=None) -> QueryDifficulty:
    """Local ID, relative contrast and expansion per query, and recall per LID quantile bucket.

    Parameters
    ----------
    ground : GroundTruth
        Exact neighbours with 2k columns and mean distances (from :func:`ground_truth`).
    per_query_recall : dict of label -> array (m,), optional
        Per-query recall of each index setting, broken down by bucket.
    n_buckets : int
        LID quantile buckets (4 = quartiles).
    n_hardest : int
        How many of the highest-LID queries to list.
    labels : callable, optional
        ``labels(i)`` names query i (default: the corpus row label for held-out queries, else "query #i").

    Returns
    -------
    QueryDifficulty

    References
    ----------
    Amsaleg et al., KDD 2015 (LID); He, Kumar, Chang, "On the difficulty of nearest neighbor search",
    ICML 2012 (relative contrast); Aumueller & Ceccarello, "The role of local dimensionality
    measures in benchmarking nearest neighbor search", Information Systems 2021 (RC and expansion per
    query).
    """
    if ground.metric == "dot":
        raise EmbeddingInputError("query difficulty needs distances; it is undefined for metric='dot'")
    check_k(n_buckets, max(1, ground.n_queries), what="n_buckets", context="queries")
    k = ground.k
    lid = lid_from_distances(ground.distances[:, :k])
    dk = ground.distances[:, k - 1].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = ground.mean_distance / dk if ground.mean_distance is not None else None
        expansion = (ground.distances[:, 2 * k - 1] / dk) if ground.distances.shape[1] >= 2 * k else None
    finite = lid[np.isfinite(lid)]
    edges = np.quantile(finite, np.linspace(0, 1, n_buckets + 1)) if finite.size else None
    buckets = []
    if edges is not None:
        # inf (no contrast at all) joins the hardest bucket; NaN (duplicates) joins none.
        which = np.where(np.isnan(lid), -1, np.searchsorted(edges[1:-1], lid, side="right"))
        for b in range(n_buckets):
            rows = which == b
            entry = {"bucket": b, "lid_low": float(edges[b]), "lid_high": float(edges[b + 1]),
                     "n_queries": int(rows.sum())}
            entry["recall"] = {name: (float(r[rows].mean()) if rows.any() else None)
                               for name, r in (per_query_recall or {}).items()}
            buckets.append(entry)
    if labels is None:
        labels = lambda i: f"query #{i}"  # noqa: E731
    mean_recall = (np.mean(np.vstack(list(per_query_recall.values())), axis=0)
                   if per_query_recall else None)
    order = np.argsort(-np.nan_to_num(lid, nan=-np.inf), kind="stable")[:n_hardest]
    hardest = [{"query": int(i), "label": labels(int(i)), "lid": float(lid[i]),
                "relative_contrast": None if rc is None else float(rc[i]),
                "expansion": None if expansion is None else float(expansion[i]),
                "mean_recall": None if mean_recall is None else float(mean_recall[i])} for i in order]
    return QueryDifficulty(
        lid_median=float(np.nanmedian(lid)) if (~np.isnan(lid)).any() else float("nan"),
        rc_median=float(np.nanmedian(rc)) if rc is not None else float("nan"),
        expansion_median=float(np.nanmedian(expansion)) if expansion is not None else float("nan"),
        recall_by_bucket=buckets, hardest=hardest, lid=lid, relative_contrast=rc, expansion=expansion,
    )


# --------------------------------------------------------------------------------------------- reachability


@dataclass(frozen=True, repr=False)
class Reachability(_Report):
    """How much of the corpus can ever come back as someone's nearest neighbour."""

    _title = "reachability"
    k: int = _field("Neighbours per query.")
    never_retrieved_rate: float = _field("Share of the corpus in no query's true top-k (this query set).")
    never_retrieved_expected: float = _field(
        "The same share if each query's top-k were a uniform random k of the corpus: (1 - k/n)^m. A "
        "rate far above it means the queries crowd onto few items (hubs).")
    corpus_never_retrieved_rate: float | None = _field(
        "Share of the corpus in no other item's top-k with the corpus as queries (antihubs, N_k = 0).",
        "Radovanovic, Nanopoulos, Ivanovic, JMLR 2010")
    corpus_never_retrieved_examples: list = _field("Labels of a few never-retrieved corpus items.",
                                                   default_factory=list)
    never_retrieved_rows: np.ndarray = _hidden()
    corpus_never_retrieved_rows: np.ndarray | None = _hidden()


def _occurrence(indices: np.ndarray, n: int) -> np.ndarray:
    ids = np.asarray(indices).ravel()
    return np.bincount(ids[ids >= 0], minlength=n)


def reachability(ground: GroundTruth, eset: EmbeddingSet | None = None, *, corpus_as_queries: bool = True,
                 n_examples: int = 10) -> Reachability:
    """Share of the corpus never in anyone's top-k: for the query set, and for the corpus as queries.

    The corpus-as-queries table comes from ``eset.neighbors(k, metric=...)`` (the shared cache), so a
    full report computes it once. Row numbers are those of ``eset``.

    References
    ----------
    Radovanovic, Nanopoulos, Ivanovic, "Hubs in space", JMLR 2010 (k-occurrence, antihubs).
    """
    k = ground.k
    occ = _occurrence(ground.truth, ground.n_corpus)
    never = ground.corpus_rows[occ == 0]
    expected = (1.0 - k / ground.n_corpus) ** ground.n_queries
    corpus_rate = corpus_rows = None
    examples: list = []
    if corpus_as_queries and eset is not None:
        table = eset.neighbors(k, metric=ground.metric)
        corpus_occ = _occurrence(table.indices, eset.n)
        corpus_rows = np.flatnonzero(corpus_occ == 0)
        corpus_rate = float(len(corpus_rows) / eset.n)
        examples = [eset.label(int(i)) for i in corpus_rows[:n_examples]]
    return Reachability(
        k=k, never_retrieved_rate=float(len(never) / ground.n_corpus), never_retrieved_expected=float(expected),
        corpus_never_retrieved_rate=corpus_rate, corpus_never_retrieved_examples=examples,
        never_retrieved_rows=never, corpus_never_retrieved_rows=corpus_rows,
    )


@dataclass(frozen=True, repr=False)
class ListBalance(_Report):
    """How evenly an IVF index spreads the corpus over its inverted lists."""

    _title = "IVF list balance"
    n_lists: int = _field("Inverted lists.")
    imbalance_factor: float = _field("n_lists * sum s^2 / (sum s)^2: expected list scan cost relative to "
                                     "equal lists (1 = perfect).", "Jegou, Douze, Schmid, TPAMI 2011; faiss")
    entropy: float = _field("Shannon entropy (nats) of the list shares s / n.")
    normalised_entropy: float = _field("Entropy / log(n_lists) (1 = perfectly even).")
    empty_lists: int = _field("Lists holding no vector.")
    largest_list_share: float = _field("Share of the corpus in the largest list.")
    sizes: np.ndarray = _hidden()


def list_balance(sizes) -> ListBalance:
    """Balance statistics of inverted-list sizes ``s_j`` (methods sheet, "IVF balance").

    Example
    -------
    >>> list_balance([3, 1, 0, 0]).imbalance_factor
    2.5
    """
    s = np.asarray(sizes, dtype=np.float64).ravel()
    if s.size == 0 or (s < 0).any() or s.sum() <= 0:
        raise EmbeddingInputError("list sizes must be non-negative with a positive total")
    total, n_lists = s.sum(), s.size
    p = s / total
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    return ListBalance(
        n_lists=int(n_lists), imbalance_factor=float(n_lists * (s * s).sum() / total**2), entropy=entropy,
        normalised_entropy=entropy / math.log(n_lists) if n_lists > 1 else 1.0,
        empty_lists=int((s == 0).sum()), largest_list_share=float(p.max()), sizes=s.astype(np.int64),
    )


def ivf_balance(index) -> ListBalance:
    """:func:`list_balance` of a faiss IVF index, read from its inverted lists."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    return list_balance([ivf.invlists.list_size(j) for j in range(ivf.nlist)])


# --------------------------------------------------------------------------------------------- scaling


@dataclass(frozen=True, repr=False)
class IndexScaling(_Report):
    """Recall of one fixed index setting and the neighbour margin as the corpus grows."""

    _title = "index-size scaling"
    setting: str = _field("The fixed index setting measured at every size.")
    sizes: list = _field("Corpus sizes (nested random subsets).")
    recall_at_k: list = _field("Recall@k at each size.")
    margin: list = _field("Median gap D_{k+1} - D_k between the k-th true neighbour and the nearest "
                          "distractor, in distance units (chord for cosine; smaller = easier to confuse).",
                          "Reimers & Gurevych, ACL 2021")
    recall_slope_per_decade: float = _field("Fitted change of recall per tenfold corpus growth "
                                            "(line recall = a + b log10 n).", "Reimers & Gurevych, ACL 2021")
    recall_intercept: float = _field("a of that line.")
    margin_slope_per_decade: float = _field("Fitted change of the margin per tenfold growth.")

    def predicted_recall(self, n: float) -> float:
        """The fitted line's recall at corpus size ``n`` (an extrapolation beyond the largest size)."""
        return float(self.recall_intercept + self.recall_slope_per_decade * math.log10(n))


def _scaling_search(kind: str, params: dict, n_lists: int | None, k: int) -> dict:
    """One fixed search setting: the first value given in ``params``, else efSearch=64 / nprobe=8."""
    given = {"hnsw": params.get("efSearch", 64), "ivf": params.get("nprobe", 8),
             "ivfpq": params.get("nprobe", 8)}.get(kind)
    first = given[0] if isinstance(given, (tuple, list)) else given
    if kind == "hnsw":
        return {"efSearch": int(max(first, k))}
    if kind in ("ivf", "ivfpq"):
        return {"nprobe": int(min(first, n_lists))}
    return {}


def index_scaling(data, *, queries=None, k: int = 10, metric: str | None = None, holdout=None,
                  fractions=(0.125, 0.25, 0.5, 1.0), kind: str = "hnsw", params: dict | None = None,
                  random_state=0, backend: str = "auto") -> IndexScaling:
    """Recall and true-neighbour margin on nested corpus subsets, with a recall-vs-log n trend.

    Each subset is the first ``fraction * n`` rows of one random permutation, so sizes are nested.
    The index keeps fixed parameters at every size (IVF keeps the smallest subset's ``nlist``; the
    search setting is efSearch=64 or nprobe=8 unless ``params`` names one), so only the corpus size
    changes. The margin is the median gap between the distances of the k-th nearest neighbour and
    the (k+1)-th, the closest distractor: as the index grows, distractors crowd in (at local
    dimension m the gap shrinks like n^(-1/m)) and an approximate search confuses them more easily.

    Returns
    -------
    IndexScaling

    References
    ----------
    Reimers & Gurevych, "The curse of dense low-dimensional information retrieval for large index
    sizes", ACL 2021.
    """
    split = split_queries(data, queries, holdout=holdout, metric=metric, random_state=random_state)
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.size < 2 or (fr <= 0).any() or (fr > 1).any():
        raise EmbeddingInputError(f"fractions must be at least two values in (0, 1], got {list(fractions)}")
    n = split.corpus.shape[0]
    sizes = sorted({int(round(f * n)) for f in fr})
    check_k(k + 1, sizes[0], what="k + 1", context="points in the smallest subset")
    params = dict(params or {})
    if kind in ("ivf", "ivfpq"):
        params.setdefault("nlist", default_n_lists(sizes[0]))
    perm = check_random_state(random_state).permutation(n)
    q = np.ascontiguousarray(_prepare(split.queries, split.metric), dtype=np.float32)
    recalls, margins, label = [], [], kind
    for size in sizes:
        rows = np.sort(perm[:size])
        sub = split.corpus[rows]
        nb = exact_knn(sub, split.queries, k=k + 1, metric=split.metric, backend=backend, progress=False)
        d = nb.distances.astype(np.float64)
        margins.append(float(np.median(d[:, k] - d[:, k - 1])))
        x = np.ascontiguousarray(_prepare(sub, split.metric), dtype=np.float32)
        index, built, _ = build_index(kind, x, split.metric, params, random_state=random_state)
        search = _scaling_search(kind, params, built.get("nlist"), k)
        _apply_search_params(index, search)
        _, ids = index.search(q, k)
        recalls.append(float(recall_per_query(ids, nb.indices[:, :k]).mean()))
        label = setting_label(kind, {**built, **search})
    logn = np.log10(sizes)
    slope, intercept = np.polyfit(logn, recalls, 1)
    mslope, _ = np.polyfit(logn, margins, 1)
    return IndexScaling(setting=label, sizes=list(sizes), recall_at_k=recalls, margin=margins,
                        recall_slope_per_decade=float(slope), recall_intercept=float(intercept),
                        margin_slope_per_decade=float(mslope))


# --------------------------------------------------------------------------------------------- report


@dataclass(frozen=True, repr=False)
class IndexReport(_Report):
    """Index health: exact ground truth, faiss sweeps, query difficulty, reachability, IVF balance."""

    _title = "vector-index statistics"
    k: int = _field("Neighbours per query scored by recall@k (set overlap).")
    n_queries: int = _field("Queries.")
    metric: str = _field("Similarity searched.")
    query_source: str = _field("array, benchmark (the file's test queries) or holdout(m).")
    exact: GroundTruth = _field("Exact search that gives the ground truth.")
    indexes: list = _field("One row per index setting: recall@k, QPS (1 and all threads), build seconds, "
                           "bytes per vector, Pareto flag.", "Aumueller et al., 2020")
    pareto: list = _field("Labels of the settings on the recall / QPS Pareto frontier.")
    threads: int = _field("faiss threads for the all-threads QPS.")
    faiss_seconds: float = _field("Time inside faiss (build and search).")
    harness_seconds: float = _field("Sweep time outside faiss (scoring, bookkeeping).")
    difficulty: QueryDifficulty | None = _field("Per-query difficulty and recall by LID bucket.", default=None)
    reachability: Reachability | None = _field("Corpus items nobody retrieves.", default=None)
    ivf_balance: ListBalance | None = _field("Inverted-list balance of the IVF-Flat index.", default=None)
    scaling: IndexScaling | None = _field("Recall and margin versus corpus size.", default=None)


def index_report(data, *, queries=None, k: int = 10, metric: str | None = None, holdout=None,
                 indexes=("hnsw", "ivf", "ivfpq", "sq8"), index_params: dict | None = None, repeats: int = 3,
                 n_buckets: int = 4, n_hardest: int = 5, corpus_reachability: bool = True,
                 scaling: bool = False, scaling_fractions=(0.125, 0.25, 0.5, 1.0), random_state=0,
                 backend: str = "auto") -> IndexReport:
    """Vector-index statistics for one corpus and query set.

    Parameters
    ----------
    data : EmbeddingSet or array of shape (n, d)
    queries : array of shape (m, d), "benchmark", or None
        Query vectors; "benchmark" (the default when the set carries an ann-benchmarks test set) uses
        the file's own queries and also scores recall against its stored neighbours.
    k : int
        Neighbours per query.
    metric : {"cosine", "dot", "euclidean"}, optional
        Defaults to the benchmark's metric, else cosine.
    holdout : int or float, optional
        Held-out rows used as queries when no queries are given (default ``min(1000, n // 10)``).
    indexes : tuple of str
        Kinds to sweep, from ``flat`` (exact reference), ``hnsw``, ``ivf``, ``ivfpq``, ``sq8``.
    index_params : dict, optional
        Per kind overrides, e.g. ``{"hnsw": {"M": 32, "efSearch": (32, 64)}, "ivf": {"nlist": 64}}``.
    repeats : int
        Searches per setting; QPS is the best of them.
    corpus_reachability : bool
        Also compute reachability with the corpus as queries (uses the cached ``set.neighbors(k)``).
    scaling : bool
        Also run :func:`index_scaling` with HNSW at the default setting.

    Returns
    -------
    IndexReport

    References
    ----------
    Aumueller, Bernhardsson, Faithfull, ANN-Benchmarks, Information Systems 2020; Malkov & Yashunin,
    TPAMI 2020; Jegou, Douze, Schmid, TPAMI 2011; Amsaleg et al., KDD 2015; Aumueller & Ceccarello,
    Information Systems 2021; Radovanovic et al., JMLR 2010; Reimers & Gurevych, ACL 2021.

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 32)).astype("float32")
    >>> rep = index_report(x, k=10, holdout=100, indexes=("hnsw", "ivf"), repeats=1)
    >>> 0 < rep.indexes[0].recall_at_k <= 1
    True
    """
    unknown = set(indexes) - set(INDEX_KINDS)
    if unknown:  # fail before the exact search, not after it
        raise EmbeddingInputError(f"unknown index kinds {sorted(unknown)}; choose from {', '.join(INDEX_KINDS)}")
    split = split_queries(data, queries, holdout=holdout, metric=metric, random_state=random_state)
    ground = ground_truth(split.eset, k=k, _split=split, backend=backend)
    sweep = index_sweep(ground, split, indexes=indexes, index_params=index_params, repeats=repeats,
                        random_state=random_state)
    eset = split.eset
    labels = ((lambda i: eset.label(int(split.query_rows[i]))) if split.query_rows is not None else None)
    difficulty = None
    if ground.metric != "dot":
        difficulty = query_difficulty(ground, per_query_recall={s.label: s.per_query_recall for s in sweep.settings},
                                      n_buckets=min(n_buckets, ground.n_queries), n_hardest=n_hardest,
                                      labels=labels)
    reach = reachability(ground, eset, corpus_as_queries=corpus_reachability and eset.n > k)
    balance = ivf_balance(sweep.indexes["ivf"]) if "ivf" in sweep.indexes else None
    trend = None
    if scaling:
        # The split's corpus, so held-out query rows never find themselves.
        trend = index_scaling(split.corpus, queries=split.queries, k=k, metric=ground.metric,
                              fractions=scaling_fractions, random_state=random_state, backend=backend)
    return IndexReport(
        k=int(k), n_queries=ground.n_queries, metric=ground.metric, query_source=ground.source, exact=ground,
        indexes=sweep.settings, pareto=[s.label for s in sweep.settings if s.pareto], threads=sweep.threads,
        faiss_seconds=sweep.faiss_seconds, harness_seconds=sweep.harness_seconds, difficulty=difficulty,
        reachability=reach, ivf_balance=balance, scaling=trend,
    )


# --------------------------------------------------------------------------------------------- transform effect


@dataclass(frozen=True, repr=False)
class TransformEffect(_Report):
    """The same index sweep on raw and on transformed vectors, setting by setting."""

    _title = "index recall before and after a transform"
    method: str = _field("Transform fitted on the corpus and applied to corpus and queries alike.")
    k: int = _field("Neighbours per query scored by recall@k.")
    n_queries: int = _field("Queries.")
    rows: list = _field("Per index setting: recall@k and QPS on raw and on transformed vectors.")
    raw: IndexReport = _hidden()
    transformed: IndexReport = _hidden()


def transform_effect(data, method: str = "zca", *, queries=None, k: int = 10, metric: str | None = None,
                     holdout=None, indexes=("hnsw", "ivf"), index_params: dict | None = None, repeats: int = 1,
                     weighted: bool | None = None, random_state=0, backend: str = "auto",
                     **transform_params) -> TransformEffect:
    """Run the same index sweep on raw vectors and on post-processed ones, side by side.

    The transform (any name of :data:`embgeo.analysis.TRANSFORMS`) is fitted on the corpus only and the
    fitted transform is applied to the corpus and to the queries, as a deployed pipeline would. Each
    space is scored against its *own* exact ground truth, so the table shows how hard each space is for
    the index (recall at equal search effort), not whether the transform preserves neighbours (see
    :func:`embgeo.analysis.compare` for that).

    Parameters
    ----------
    data, queries, k, metric, holdout, indexes, index_params, repeats, random_state, backend
        As for :func:`index_report`.
    method, weighted, **transform_params
        As for :func:`embgeo.analysis.apply_transform`.

    Returns
    -------
    TransformEffect
        ``rows`` of ``{setting, recall_raw, recall_transformed, qps_raw, qps_transformed}``; the two full
        reports stay on ``raw`` and ``transformed``.

    References
    ----------
    Aumueller & Ceccarello, "The role of local dimensionality measurement in benchmarking nearest
    neighbor search", Information Systems 2021 (geometry drives index difficulty).
    """
    from ._compare import fit_transformer

    split = split_queries(data, queries, holdout=holdout, metric=metric, random_state=random_state)
    corpus = split.eset.subset(split.corpus_rows, name=split.eset.name) if split.query_rows is not None \
        else split.eset
    fitted = fit_transformer(corpus, method, weighted=weighted, **transform_params)
    options = dict(k=k, metric=split.metric, indexes=indexes, index_params=index_params, repeats=repeats,
                   corpus_reachability=False, random_state=random_state, backend=backend)
    raw = index_report(corpus.vectors, queries=split.queries, **options)
    transformed = index_report(fitted.transform(corpus.vectors), queries=fitted.transform(split.queries), **options)
    after = {s.label: s for s in transformed.indexes}
    rows = [
        {"setting": s.label, "recall_raw": s.recall_at_k, "recall_transformed": after[s.label].recall_at_k,
         "qps_raw": s.qps, "qps_transformed": after[s.label].qps}
        for s in raw.indexes if s.label in after
    ]
    return TransformEffect(method=method, k=int(k), n_queries=raw.n_queries, rows=rows, raw=raw,
                           transformed=transformed)
