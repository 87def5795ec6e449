"""faiss indexes on the user's data: build, sweep the search setting, score recall, speed and memory.

Cosine search runs as inner product on L2-normalised vectors; euclidean as L2.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from .._core import EmbeddingInputError, Progress, Result, check_random_state, hidden, metric as _field, prepare_rows
from ..neighbors import recall_per_query
from .ground_truth import GroundTruth, ann_units, found_distances, recall_distance_rule
from .queries import QuerySplit

INDEX_KINDS = ("flat", "hnsw", "ivf", "ivfpq", "sq8")


@dataclass(frozen=True, repr=False)
class IndexSetting(Result):
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
    per_query_recall: np.ndarray = hidden()

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


def apply_search_params(index, setting: dict) -> None:
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
class IndexSweep(Result):
    """Every swept setting of every index kind, with the harness overhead of the measurement."""

    _title = "faiss index sweep"
    settings: list = _field("One IndexSetting per build/search configuration.")
    threads: int = _field("faiss threads used for the all-threads QPS.")
    faiss_seconds: float = _field("Time inside faiss calls (train, add, search, all repeats).")
    harness_seconds: float = _field("Sweep wall time spent outside faiss (recall scoring, bookkeeping).")
    indexes: dict = hidden()  # kind -> the built faiss index of that kind (for IVF balance)


def index_sweep(ground: GroundTruth, split: QuerySplit, *, indexes=("hnsw", "ivf", "ivfpq", "sq8"),
                index_params: dict | None = None, repeats: int = 3, random_state=0, progress=False) -> IndexSweep:
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
    progress : None, bool or callable
        ``progress(done, total, description)`` after each index is built and each setting searched
        (``total`` = the number of kinds; a kind's build counts a third of it); raising in it stops the
        sweep between two steps.

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
    x = np.ascontiguousarray(prepare_rows(split.corpus, metric_), dtype=np.float32)
    q = np.ascontiguousarray(prepare_rows(split.queries, metric_), dtype=np.float32)
    k = ground.k
    truth = ground.truth
    kth = ground.kth_distance_ann_units()
    threads = int(faiss.omp_get_max_threads())
    faiss_seconds = 0.0
    settings, built_indexes = [], {}
    bar = Progress(progress, len(indexes), "index sweep", unit="index")
    for step, kind in enumerate(indexes):
        params = dict(index_params.get(kind, {}))
        bar.report(step, f"building {kind}")
        index, built, build_s = build_index(kind, x, metric_, params, random_state=random_state)
        faiss_seconds += build_s
        built_indexes[kind] = index
        size = _serialized_bytes(index) / x.shape[0]  # search settings leave the size alone
        sweep = _search_sweep(kind, params, built.get("nlist"), k)
        for done, search in enumerate(sweep):
            bar.report(step + (1 + 2 * done / len(sweep)) / 3, f"{kind}: searching at {search}")
            apply_search_params(index, search)
            (_, ids), t1, spent1 = _timed_search(index, q, k, 1, repeats)
            tall, spent_all = t1, 0.0
            if threads > 1:
                _, tall, spent_all = _timed_search(index, q, k, threads, repeats)
            faiss_seconds += spent1 + spent_all
            per_query = recall_per_query(ids, truth)
            dists = ann_units(found_distances(x, q, ids, metric_), metric_)
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
    bar.report(len(indexes), "index sweep: done")
    bar.close()
    front = pareto_front([s.recall_at_k for s in settings], [s.qps for s in settings])
    settings = [dataclasses.replace(s, pareto=bool(p)) for s, p in zip(settings, front)]
    wall = time.perf_counter() - t_start
    return IndexSweep(settings=settings, threads=threads, faiss_seconds=float(faiss_seconds),
                      harness_seconds=float(max(0.0, wall - faiss_seconds)), indexes=built_indexes)
