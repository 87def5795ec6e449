"""Task-level measures for comparing embedding spaces before and after a transform.

* :func:`neighborhood_preservation`: how much of each item's k-NN set survives a change of space.
* :func:`recall_at` and :func:`ndcg_at` score retrieved lists (from :func:`exact_knn`, an index, or
  a hubness-reduction re-ranking) against relevance judgements; :func:`retrieval_report` runs the
  search and reports both.
* :func:`knn_classification_accuracy`: leave-one-out k-NN majority vote over item labels.

All neighbour searches go through the shared engine, and through :meth:`EmbeddingSet.neighbors`
when the input is a set, so a table already computed for another report is reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import EmbeddingInputError, Result, as_float32_matrix, check_k, check_metric, metric as _field
from ..embeddings import as_embedding_set
from ..neighbors import exact_knn, recall_per_query


# --------------------------------------------------------------------------------------------- preservation


def neighborhood_preservation(a, b, *, k: int = 10, metric: str = "cosine", metric_b: str | None = None,
                              per_point: bool = False, backend: str = "auto"):
    """Mean overlap of the k-NN sets of the same items in two spaces.

    P_k = (1 / n) sum_i |kNN_A(i) intersect kNN_B(i)| / k, self excluded. 1 means every neighbour
    list is unchanged (as under a rotation or a uniform scale); k / (n - 1) is the expected value
    for unrelated spaces.

    Parameters
    ----------
    a, b : EmbeddingSet or array-like of shape (n, d_a), (n, d_b)
        The same n items, row for row, in two spaces (dimensions may differ).
    k : int
    metric : {"cosine", "dot", "euclidean"}
        Metric in space A; ``metric_b`` (default the same) in space B.
    per_point : bool
        Return the per-item overlaps (shape (n,)) instead of their mean.

    Returns
    -------
    float, or ndarray of shape (n,) when ``per_point``.

    References
    ----------
    Venna, J., Kaski, S. "Neighborhood preservation in nonlinear projection methods: an
    experimental study", ICANN 2001; Lee, J. A., Verleysen, M. "Quality assessment of
    dimensionality reduction: rank-based criteria", Neurocomputing 2009 (mean k-NN overlap).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 16))
    >>> neighborhood_preservation(x, 3.0 * x[:, ::-1], k=5)
    1.0
    """
    ea, eb = as_embedding_set(a), as_embedding_set(b)
    if ea.n != eb.n:
        raise EmbeddingInputError(f"the two spaces hold different numbers of items: {ea.n} and {eb.n}")
    metric = check_metric(metric)
    metric_b = metric if metric_b is None else check_metric(metric_b)
    k = check_k(k, ea.n - 1, context="neighbours (self excluded)")
    ia = ea.neighbors(k, metric=metric, backend=backend).indices
    ib = eb.neighbors(k, metric=metric_b, backend=backend).indices
    overlap = recall_per_query(ia, ib)
    return overlap if per_point else float(overlap.mean())


# --------------------------------------------------------------------------------------------- retrieval


def _relevance(relevant, n_queries: int) -> list[dict[int, float]]:
    """Per-query {corpus row: gain} from pairs or from per-query collections."""
    if isinstance(relevant, np.ndarray):
        if relevant.ndim != 2 or relevant.shape[1] not in (2, 3):
            raise EmbeddingInputError(
                "relevance pairs must be an array of shape (n_pairs, 2) with (query, corpus row) or "
                f"(n_pairs, 3) with a grade; got shape {relevant.shape}"
            )
        out: list[dict[int, float]] = [{} for _ in range(n_queries)]
        q = relevant[:, 0].astype(np.int64)
        if len(q) and (q.min() < 0 or q.max() >= n_queries):
            raise EmbeddingInputError(f"relevance pairs name queries outside [0, {n_queries})")
        gains = relevant[:, 2].astype(np.float64) if relevant.shape[1] == 3 else np.ones(len(relevant))
        for qi, doc, g in zip(q, relevant[:, 1].astype(np.int64), gains):
            out[qi][int(doc)] = float(g)
        return out
    relevant = list(relevant)
    if len(relevant) != n_queries:
        raise EmbeddingInputError(
            f"relevance judgements cover {len(relevant)} queries but there are {n_queries}"
        )
    return [
        {int(d): float(g) for d, g in r.items()} if isinstance(r, dict) else {int(d): 1.0 for d in r}
        for r in relevant
    ]


def _check_retrieved(retrieved, k: int) -> np.ndarray:
    ids = np.asarray(retrieved)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise EmbeddingInputError(f"retrieved must be a 2-D integer array (n_queries, depth); got {ids.shape} {ids.dtype}")
    check_k(k, ids.shape[1], context="retrieved items per query")
    return ids


def recall_at(retrieved, relevant, k: int = 10) -> tuple[float, int]:
    """Mean recall@k: the share of each query's relevant items found in its top k.

    recall@k(q) = |top_k(q) intersect R(q)| / |R(q)|, with R(q) the items of positive gain
    (the BEIR / pytrec_eval convention; some papers divide by min(k, |R(q)|) instead). Queries with
    no relevant item are left out.

    Parameters
    ----------
    retrieved : array-like of int, shape (n_queries, depth)
        Corpus rows, best first (depth >= k).
    relevant : ndarray (n_pairs, 2 or 3), or sequence of collections or dicts
        (query, corpus row[, grade]) pairs, or per query the relevant rows (or {row: grade}).
    k : int

    Returns
    -------
    (recall, n_judged) : the mean over judged queries, and how many queries were judged.

    Examples
    --------
    >>> recall_at([[3, 1, 2, 0]], [{1, 0}], k=2)
    (0.5, 1)
    """
    ids = _check_retrieved(retrieved, k)
    rel = _relevance(relevant, ids.shape[0])
    values = []
    for row, r in zip(ids[:, :k], rel):
        positive = {d for d, g in r.items() if g > 0}
        if positive:
            values.append(len(positive.intersection(row.tolist())) / len(positive))
    return (float(np.mean(values)) if values else float("nan")), len(values)


def ndcg_at(retrieved, relevant, k: int = 10) -> tuple[float, int]:
    """Mean nDCG@k with linear gains: DCG = sum_{i <= k} g_i / log2(i + 1), over the ideal DCG.

    The gain of an item is its grade (1 for binary judgements); the ideal ranking sorts all of a
    query's judged gains. Queries with no positive gain are left out.

    Returns
    -------
    (ndcg, n_judged)

    References
    ----------
    Jarvelin, K., Kekalainen, J. "Cumulated gain-based evaluation of IR techniques", ACM TOIS 2002.

    Examples
    --------
    >>> value, _ = ndcg_at([[3, 1, 2, 0]], [{1, 0}], k=4)
    >>> round(value, 4)   # (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
    0.6509
    """
    ids = _check_retrieved(retrieved, k)
    rel = _relevance(relevant, ids.shape[0])
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    values = []
    for row, r in zip(ids[:, :k], rel):
        ideal = np.sort([g for g in r.values() if g > 0])[::-1][:k]
        if len(ideal) == 0:
            continue
        gains = np.array([r.get(int(d), 0.0) for d in row])
        values.append(float((gains * discount).sum() / (ideal * discount[:len(ideal)]).sum()))
    return (float(np.mean(values)) if values else float("nan")), len(values)


@dataclass(frozen=True, repr=False)
class RetrievalReport(Result):
    """Recall@k and nDCG@10 of exact k-NN retrieval against relevance judgements."""

    _title = "retrieval quality against relevance judgements"
    metric: str = _field("Similarity used to retrieve.")
    n_queries: int = _field("Queries searched.")
    n_judged: int = _field("Queries with at least one relevant item (the others are left out).")
    recall: dict = _field("Mean recall@k for each k: share of relevant items in the top k.", "BEIR, Thakur et al., 2021")
    ndcg_at_10: float = _field("Mean nDCG@10 with linear gains (1 = ideal ranking).", "Jarvelin & Kekalainen, 2002")


def retrieval_report(corpus, queries, relevant, *, ks=(1, 10, 100), metric: str = "cosine",
                     backend: str = "auto") -> RetrievalReport:
    """Retrieve with exact k-NN and score recall@k (each k in ``ks``) and nDCG@10.

    Parameters
    ----------
    corpus : EmbeddingSet or array-like of shape (n, d)
    queries : array-like of shape (m, d)
    relevant : see :func:`recall_at`
    ks : sequence of int
        Cut-offs for recall (clipped to the corpus size).

    Examples
    --------
    >>> import numpy as np
    >>> c = np.eye(4, dtype=np.float32)
    >>> rep = retrieval_report(c, c + 0.1, [[0], [1], [2], [3]], ks=(1,))
    >>> rep.recall[1], rep.ndcg_at_10
    (1.0, 1.0)
    """
    es = as_embedding_set(corpus)
    q = as_float32_matrix(queries, name="queries")
    metric = check_metric(metric)
    ks = sorted({min(int(k), es.n) for k in ks})
    depth = max(ks + [min(10, es.n)])
    ids = exact_knn(es.vectors, q, depth, metric=metric, backend=backend).indices
    recall = {k: recall_at(ids, relevant, k)[0] for k in ks}
    ndcg, judged = ndcg_at(ids, relevant, min(10, depth))
    return RetrievalReport(metric=metric, n_queries=len(q), n_judged=judged, recall=recall, ndcg_at_10=ndcg)


# --------------------------------------------------------------------------------------------- kNN vote


def knn_classification_accuracy(data, labels=None, *, k: int = 10, metric: str = "cosine",
                                backend: str = "auto") -> float:
    """Leave-one-out k-NN classification accuracy: does the majority label of each item's k
    nearest neighbours (itself excluded) equal its own label?

    Ties between labels go to the tied label whose nearest occurrence is closest, so k = 1 is the
    1-NN rule and the result never depends on label order.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    labels : array-like of shape (n,), optional
        Class labels (any hashable values); by default the set's ``label`` metadata column.
    k : int
    metric : {"cosine", "dot", "euclidean"}

    Returns
    -------
    float
        Share of items whose neighbour vote matches their label.

    References
    ----------
    Cover, T., Hart, P. "Nearest neighbor pattern classification", IEEE Trans. Inf. Theory 1967.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    >>> knn_classification_accuracy(x, ["a", "a", "a", "b", "b", "b"], k=2, metric="euclidean")
    1.0
    """
    es = as_embedding_set(data)
    if labels is None:
        if es.metadata is None or "label" not in es.metadata.columns:
            raise EmbeddingInputError("pass labels, or give the set a 'label' metadata column")
        labels = es.metadata["label"].to_numpy()
    labels = np.asarray(labels).ravel()
    if len(labels) != es.n:
        raise EmbeddingInputError(f"labels have {len(labels)} entries but there are {es.n} vectors")
    _, codes = np.unique(labels, return_inverse=True)
    k = check_k(k, es.n - 1, context="neighbours (self excluded)")
    nbr = codes[es.neighbors(k, metric=metric, backend=backend).indices]  # (n, k), nearest first
    n_classes = int(codes.max()) + 1
    votes = np.zeros((es.n, n_classes), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(es.n), k), nbr.ravel()), 1)
    # Among the labels with the most votes, the first one met along the sorted neighbour list wins.
    tied = votes[np.arange(es.n)[:, None], nbr] == votes.max(axis=1, keepdims=True)
    predicted = nbr[np.arange(es.n), np.argmax(tied, axis=1)]
    return float(np.mean(predicted == codes))
