"""A matrix of one similarity statistic over many representations of the same items (layers x layers,
models x models): the CKA heat map, from one pass over every set's rows at once (the stacked
cross-moments hold every pair's)."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from .._core import (
    CROSS_BLOCK_ROWS,
    EmbeddingInputError,
    Result,
    check_k,
    format_value,
    metric as _field,
    plan_stacked_passes,
    resolve_memory_limit,
    scan_stacked_moments,
    stylesheet,
    sub_progress,
)
from ..neighbors import recall_per_query
from .similarity import LINEAR_STATISTICS, _as_set, _linear_statistics, check_same_items

#: Values of one stacked block at most (that of a default block of two 768-d sets, ~100 MB in float64):
#: wide stacks read fewer rows at a time.
STACKED_BLOCK_VALUES = CROSS_BLOCK_ROWS * 1_536
#: What :func:`similarity_matrix` computes, and the value of a set with itself (its diagonal).
MATRIX_STATISTICS = {**LINEAR_STATISTICS, "mutual_knn": 1.0}


@dataclass(frozen=True, repr=False)
class SimilarityMatrix(Result):
    """One similarity statistic for every pair of a list of representations (layers or models)."""

    _title = "one similarity statistic for every pair of representations"
    statistic: str = _field("The statistic in every cell (a field of RepresentationSimilarity).")
    names: list = _field("The representations, in row (and column) order.")
    matrix: np.ndarray = _field("matrix[i, j] = the statistic of (names[i], names[j]); the diagonal is the value "
                                "of a set with itself (1 for similarities, 0 for distances), by definition.")
    n: int = _field("Items compared.")

    def __repr__(self) -> str:
        width = max(len(s) for s in self.names + ["12345678"])
        lines = [f"SimilarityMatrix: {self.statistic} over {self.n:,} items",
                 " " * (width + 2) + " ".join(f"{s[:10]:>10}" for s in self.names)]
        lines += [f"  {s:<{width}}" + " ".join(f"{format_value(v):>10}" for v in row)
                  for s, row in zip(self.names, self.matrix)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(s)}</th>" for s in self.names)
        body = "".join(f"<tr><th>{esc(s)}</th>" + "".join(f"<td class='embgeo-value'>{esc(format_value(v))}</td>"
                                                         for v in row) + "</tr>"
                       for s, row in zip(self.names, self.matrix))
        return (f"<style>{stylesheet()}</style><div class='embgeo-result'><div class='embgeo-title'>"
                f"{esc(self.statistic)} over {self.n:,} items</div><table class='embgeo-table'><tr><th></th>"
                f"{head}</tr>{body}</table></div>")


def similarity_matrix(sets, *, statistic: str = "linear_cka", names=None, k: int = 10, metric: str = "cosine",
                      knn: str = "exact", block_rows: int = CROSS_BLOCK_ROWS, memory_limit=None,
                      progress=None) -> SimilarityMatrix:
    """A matrix of one similarity statistic over every pair of representations of the same items.

    Parameters
    ----------
    sets : sequence of EmbeddingSet or array-like, each of shape (n, d_i)
        Layers of one model, or several models, over the same n items (row for row; dimensions may
        differ). Checked as :func:`representation_similarity` checks a pair.
    statistic : str
        One of :data:`MATRIX_STATISTICS`: a linear statistic (``linear_cka``, ``debiased_cka``,
        ``svcca``, ``pwcca``, ``procrustes_distance``, ``angular_shape_distance``), from one pass over
        the rows of all the sets at once (their stacked cross-moments), or ``mutual_knn``, from each
        set's neighbour table (one search per set, cached on it, then no pass over the rows).
    names : sequence of str, optional
        Row and column labels; default the sets' names (``"0"``, ``"1"``, ... for arrays).
    k, metric, knn
        Neighbours, metric and table kind of ``mutual_knn`` (ignored by the linear statistics).
    block_rows : int
        Rows of every set read at a time by the linear statistics (fewer where the stacked block would
        exceed :data:`STACKED_BLOCK_VALUES` values).
    memory_limit : int, optional
        Bytes the linear statistics may hold (default half of the available memory). The stacked
        moments take ``8 D^2`` bytes, D the sum of the dimensions (25 layers of 768: 2.9 GB); where that
        does not fit, the sets go in chunks any two of which fit, one pass per pair of chunks.
    progress : None, bool or callable
        ``progress(done, total, description)`` after each block (linear statistics) or pair
        (``mutual_knn``); raising in it stops the work.

    Returns
    -------
    SimilarityMatrix
        Symmetric except for PWCCA, which weights by the smaller representation (the row's on a tie).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(300, 8))
    >>> m = similarity_matrix([x, 2.0 * x, x[:, :4]])
    >>> bool(m.matrix[0, 1] > 0.999999), bool(m.matrix[0, 2] < 0.9)
    (True, True)
    """
    if knn not in ("exact", "approximate"):
        raise EmbeddingInputError(f"knn must be 'exact' or 'approximate', got {knn!r}")
    if statistic not in MATRIX_STATISTICS:
        raise EmbeddingInputError(f"statistic must be one of {', '.join(MATRIX_STATISTICS)}; got {statistic!r}")
    sets = [_as_set(s, str(i)) for i, s in enumerate(sets)]
    if len(sets) < 1:
        raise EmbeddingInputError("similarity_matrix needs at least one set")
    names = [s.name for s in sets] if names is None else [str(v) for v in names]
    if len(names) != len(sets):
        raise EmbeddingInputError(f"{len(names)} names for {len(sets)} sets")
    for s in sets[1:]:
        check_same_items(sets[0], s, what="a similarity matrix")
    n = sets[0].n
    if n < 4:
        raise EmbeddingInputError(f"a similarity matrix needs at least 4 items; got n={n}")
    m = len(sets)
    out = np.diag(np.full(m, MATRIX_STATISTICS[statistic]))
    if statistic == "mutual_knn":
        k = check_k(k, n - 1, context="neighbours (self excluded)")
        tables = [s.neighbors(k, metric=metric, exact=knn == "exact").indices for s in sets]
        pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        for step, (i, j) in enumerate(pairs):
            out[i, j] = out[j, i] = float(recall_per_query(tables[i], tables[j]).mean())
            if callable(progress):
                progress(step + 1, len(pairs), f"{statistic} of {names[i]} and {names[j]}")
    elif m > 1:
        _fill_linear(out, sets, names, statistic, block_rows, memory_limit, progress)
    return SimilarityMatrix(statistic=statistic, names=names, matrix=out, n=n)


def _fill_linear(out, sets, names, statistic, block_rows, memory_limit, progress) -> None:
    """Every off-diagonal cell of a linear statistic, from the stacked cross-moments of as few passes over
    the rows as the memory limit allows (one when they fit)."""
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise EmbeddingInputError(f"block_rows must be a positive integer, got {block_rows!r}")
    limit = resolve_memory_limit(memory_limit)
    rows = min(int(block_rows), sets[0].n, max(1, STACKED_BLOCK_VALUES // sum(s.dim for s in sets)))
    passes = plan_stacked_passes([s.dim for s in sets], rows, limit)
    filled = np.eye(len(sets), dtype=bool)
    for step, group in enumerate(passes):
        stacked = scan_stacked_moments([sets[i].vectors for i in group], names=[names[i] for i in group],
                                       block_rows=rows, progress=sub_progress(progress, 2 * step, 2 * len(passes)),
                                       description=f"cross-moments of {len(group)} sets", memory_limit=limit)
        pairs = [(a, i, b, j) for a, i in enumerate(group) for b, j in enumerate(group[a + 1:], a + 1)
                 if not filled[i, j]]
        for done, (a, i, b, j) in enumerate(pairs):
            stats, pwcca_ji = _linear_statistics(stacked.pair(a, b), only=statistic)
            out[i, j] = stats[statistic]
            out[j, i] = pwcca_ji if statistic == "pwcca" else out[i, j]
            filled[i, j] = filled[j, i] = True
            if callable(progress):  # a pair's decompositions take a second or more: move (and cancel) per pair
                progress(2 * step + 1 + (done + 1) / max(len(pairs), 1), 2 * len(passes),
                         f"{statistic} of {len(group)} sets")
