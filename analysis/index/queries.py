"""Where an index's queries come from: an array, an ann-benchmarks file's own test set, or held-out rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import EmbeddingInputError, as_float32_matrix, check_metric, check_random_state, check_same_dim
from ..embeddings import ANNBenchmark, EmbeddingSet, as_embedding_set


@dataclass
class QuerySplit:
    """A corpus and a query set drawn from one input."""

    eset: EmbeddingSet
    corpus: np.ndarray              # raw float32 corpus rows searched
    corpus_rows: np.ndarray         # their row numbers in eset
    queries: np.ndarray             # raw float32 queries
    query_rows: np.ndarray | None   # their row numbers in eset (holdout), else None
    source: str
    metric: str
    benchmark: ANNBenchmark | None  # set when the queries are the file's own


def split_queries(data, queries=None, *, holdout=None, metric: str | None = None, random_state=0) -> QuerySplit:
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
        return QuerySplit(eset, eset.vectors, all_rows, q, None, "benchmark", metric, bench)
    metric = check_metric(metric or "cosine")
    if queries is not None:
        q = as_float32_matrix(queries, name="queries")
        check_same_dim(eset.vectors, q)
        return QuerySplit(eset, eset.vectors, all_rows, q, None, "array", metric, None)
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
    return QuerySplit(eset, eset.vectors[keep], keep, eset.vectors[held], held, f"holdout({int(holdout)})", metric, None)
