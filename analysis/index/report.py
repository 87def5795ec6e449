"""Index health in one call: exact ground truth, faiss sweeps, query difficulty, reachability, IVF
balance and scaling; and the same sweep before and after a transform."""

from __future__ import annotations

from dataclasses import dataclass

from .._core import EmbeddingInputError, Result, hidden, metric as _field
from ..transforms import fit_transformer
from .balance import ListBalance, ivf_balance
from .difficulty import QueryDifficulty, query_difficulty
from .faiss_indexes import INDEX_KINDS, index_sweep
from .ground_truth import GroundTruth, ground_truth
from .queries import split_queries
from .reachability import Reachability, reachability
from .scaling import IndexScaling, index_scaling


@dataclass(frozen=True, repr=False)
class IndexReport(Result):
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
                 backend: str = "auto", progress=False) -> IndexReport:
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
    progress : None, bool or callable
        ``progress(done, total, description)`` as the work moves: the exact search of the queries tile
        by tile (one step of five), each index built and each setting searched (three steps), then
        difficulty and reachability (one); raising in it stops the report between two steps.

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
    # five steps: the exact search of the queries (1), the sweep (3: it is most of the time), the rest (1)
    ground = ground_truth(split.eset, k=k, _split=split, backend=backend, progress=_span(progress, 0, 1))
    sweep = index_sweep(ground, split, indexes=indexes, index_params=index_params, repeats=repeats,
                        random_state=random_state, progress=_span(progress, 1, 3))
    if callable(progress):
        progress(4, 5, "query difficulty and reachability")
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
    if callable(progress):
        progress(5, 5, "index report: done")
    return IndexReport(
        k=int(k), n_queries=ground.n_queries, metric=ground.metric, query_source=ground.source, exact=ground,
        indexes=sweep.settings, pareto=[s.label for s in sweep.settings if s.pareto], threads=sweep.threads,
        faiss_seconds=sweep.faiss_seconds, harness_seconds=sweep.harness_seconds, difficulty=difficulty,
        reachability=reach, ivf_balance=balance, scaling=trend,
    )


def _span(progress, start: float, width: float):
    """A callback that maps a sub-task's (done, total) onto steps ``start .. start + width`` of five
    (``progress`` that is not callable passes through, so a bar setting reaches the parts)."""
    if not callable(progress):
        return progress

    def report(done: float, total: float, description: str) -> None:
        progress(start + width * (done / total if total else 1.0), 5, description)

    return report


# --------------------------------------------------------------------------------------------- transform effect


@dataclass(frozen=True, repr=False)
class TransformEffect(Result):
    """The same index sweep on raw and on transformed vectors, setting by setting."""

    _title = "index recall before and after a transform"
    method: str = _field("Transform fitted on the corpus and applied to corpus and queries alike.")
    k: int = _field("Neighbours per query scored by recall@k.")
    n_queries: int = _field("Queries.")
    rows: list = _field("Per index setting: recall@k and QPS on raw and on transformed vectors.")
    raw: IndexReport = hidden()
    transformed: IndexReport = hidden()


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
