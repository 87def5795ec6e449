"""Compare two embedding spaces of the same items: geometry side by side, and what a change costs.

* :func:`compare` runs :func:`geometry_report` on both spaces and lines up every scalar of the two
  summaries (metric path, value in A, value in B, change B - A), then adds task-level measures:
  k-NN neighbourhood preservation between the spaces, leave-one-out k-NN classification accuracy
  when labels are known, and recall@k / nDCG@10 when query-relevance judgements are given.

Transforms by name (:func:`~embgeo.analysis.apply_transform`) live in :mod:`..transforms`.
"""

from __future__ import annotations

import dataclasses
import html
import math
from dataclasses import dataclass

import numpy as np

from .._core import (
    EmbeddingInputError,
    Result,
    as_float32_matrix,
    check_k,
    check_metric,
    stylesheet,
    format_value,
    hidden,
    metric as _field,
)
from ..embeddings import EmbeddingSet, as_embedding_set
from ..geometry import knn_classification_accuracy, ndcg_at, neighborhood_preservation, recall_at
from ..neighbors import exact_knn
from ..report import GeometryReport, geometry_report
from .similarity import SIMILARITY_SAMPLE, RepresentationSimilarity, representation_similarity

#: Summary keys that describe the run or its settings rather than the geometry (left out of the rows).
_SKIPPED_KEYS = frozenset({"name", "timings", "notes", "neighbors_recall", "recall", "k", "table_k",
                           "sample_size", "threshold", "chord_threshold"})
#: Kept at the top level only (every part repeats them).
_TOP_LEVEL_ONLY = frozenset({"n", "dim"})


# --------------------------------------------------------------------------------------------- compare


@dataclass(frozen=True, repr=False)
class Comparison(Result):
    """Two embedding spaces of the same items, side by side."""

    _title = "two embedding spaces side by side"
    name_a: str = _field("Name of space A (before).")
    name_b: str = _field("Name of space B (after).")
    metric: str = _field("Similarity of every neighbour search.")
    k: int = _field("Neighbours per point.")
    rows: list = _field("Every scalar of the two geometry summaries: metric path, A, B, change B - A.")
    neighborhood_preservation: float | None = _field(
        "Mean share of each item's k nearest neighbours kept from A to B (1 = same neighbours; "
        "k / (n - 1) = unrelated). None when the spaces hold different numbers of items.",
        "Venna & Kaski, ICANN 2001; Lee & Verleysen, Neurocomputing 2009")
    knn_accuracy: dict | None = _field(
        "Leave-one-out k-NN classification accuracy of the labels in A and in B.", "Cover & Hart, 1967")
    retrieval: dict | None = _field(
        "recall@k and nDCG@10 of exact retrieval against the relevance judgements, in A and in B.",
        "Thakur et al., BEIR 2021; Jarvelin & Kekalainen, ACM TOIS 2002")
    notes: tuple = _field("What was left out of the comparison, and why.", default=())
    similarity: RepresentationSimilarity | None = _field(
        "How similar the two representations of the same items are (linear / debiased / RBF CKA, SVCCA, "
        "PWCCA, Procrustes and angular shape distances, mutual k-NN, RSA); None when they are not the same "
        "items (see notes).", "see representation_similarity", default=None)
    # The two full reports, kept for further analysis; their scalars are already in ``rows``.
    report_a: GeometryReport = hidden()
    report_b: GeometryReport = hidden()

    def row(self, path: str) -> dict:
        """The side-by-side row of one metric path, e.g. ``"isotropy.isoscore"``."""
        for r in self.rows:
            if r["metric"] == path:
                return r
        raise KeyError(f"no metric {path!r}; e.g. {', '.join(r['metric'] for r in self.rows[:5])}")

    def table(self) -> list[dict]:
        """Every row {metric, a, b, change, meaning}: the task-level measures present, then each
        geometry scalar (:attr:`rows`). The reprs and the dashboard's Compare tab show this table."""
        task = []
        if self.knn_accuracy is not None:
            task.append(("knn_accuracy", self.knn_accuracy["a"], self.knn_accuracy["b"],
                         "Leave-one-out k-NN label accuracy (Cover & Hart, 1967)"))
        if self.retrieval is not None:
            task += [(f"retrieval.{key}", self.retrieval["a"][key], self.retrieval["b"][key],
                      "Exact retrieval against the relevance judgements")
                     for key in self.retrieval["a"] if key != "n_judged"]
        return [{"metric": n, "a": a, "b": b, "change": _change(a, b), "meaning": m} for n, a, b, m in task] + \
            [dict(r) for r in self.rows]

    def __repr__(self) -> str:
        head = [f"Comparison: {self.name_a!r} (A) -> {self.name_b!r} (B), metric={self.metric}, k={self.k}"]
        if self.neighborhood_preservation is not None:
            head.append(f"  neighbourhood preservation @{self.k}: {self.neighborhood_preservation:.4f}"
                        "  # share of each item's k-NN kept from A to B")
        if self.similarity is not None:
            head.append(f"  similarity: {self.similarity.headline()}")
        head += [f"  note: {note}" for note in self.notes]
        rows = self.table()
        width = max([len(r["metric"]) for r in rows] + [12])
        head.append(f"  {'metric':<{width}} {'A':>12} {'B':>12} {'change':>12}")
        body = [f"  {r['metric']:<{width}} {_cell(r['a']):>12} {_cell(r['b']):>12} {_cell(r['change']):>12}"
                for r in rows]
        return "\n".join(head + body)

    def _html_body(self) -> str:
        esc = html.escape
        parts = []
        if self.neighborhood_preservation is not None:
            parts.append(
                f"<p><b>Neighbourhood preservation @{self.k}</b>: {self.neighborhood_preservation:.4f} "
                "<span class='embgeo-meaning'>share of each item's k nearest neighbours kept from A to B "
                "<span class=embgeo-ref>(Venna &amp; Kaski, 2001)</span></span></p>")
        if self.similarity is not None:
            parts.append(f"<p><b>Representation similarity</b>: {esc(self.similarity.headline())} "
                         "<span class=embgeo-ref>(Kornblith et al., 2019; Raghu et al., 2017; Morcos et al., 2018; "
                         "Williams et al., 2021; Huh et al., 2024; Kriegeskorte et al., 2008)</span></p>")
        parts += [f"<p class='embgeo-note'>{esc(note)}</p>" for note in self.notes]
        cells = []
        for r in self.table():
            cls = "" if not r["change"] else " style='font-weight:bold'"
            cells.append(
                f"<tr><th>{esc(r['metric'])}</th><td class='embgeo-value'>{esc(_cell(r['a']))}</td>"
                f"<td class='embgeo-value'>{esc(_cell(r['b']))}</td>"
                f"<td class='embgeo-value'{cls}>{esc(_cell(r['change']))}</td>"
                f"<td class='embgeo-meaning'>{esc(r.get('meaning', ''))}</td></tr>")
        header = (f"<tr><th>metric</th><th>A: {esc(self.name_a)}</th><th>B: {esc(self.name_b)}</th>"
                  "<th>change (B - A)</th><th>meaning</th></tr>")
        parts.append(f"<table class='embgeo-table'>{header}{''.join(cells)}</table>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        title = html.escape(f"Comparison: {self.name_a} -> {self.name_b} ({self.metric}, k={self.k})")
        return (f"<style>{stylesheet()}</style><div class='embgeo-result'><div class='embgeo-title'>{title}</div>"
                f"{self._html_body()}</div>")


def _cell(value) -> str:
    return "-" if value is None else format_value(value)


def _change(a, b):
    """b - a for two finite numbers, else None."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) \
            or not isinstance(b, (int, float)):
        return None
    d = b - a
    return d if math.isfinite(d) else None


def _scalars(summary: dict, prefix: str = "") -> dict:
    """Flatten a to_dict() summary into {dotted path: number or None}; lists, strings and flags are left out."""
    out = {}
    for key, value in summary.items():
        if key in _SKIPPED_KEYS or (prefix and key in _TOP_LEVEL_ONLY):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_scalars(value, path + "."))
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out[path] = value
    return out


def _meaning(report: Result, path: str) -> str:
    """The ``meaning`` (and reference) of a dotted field path inside a report."""
    obj, meaning = report, ""
    for name in path.split("."):
        if not dataclasses.is_dataclass(obj):
            return meaning
        fields = {f.name: f for f in dataclasses.fields(obj)}
        if name not in fields:
            return meaning
        md = fields[name].metadata
        meaning = md.get("meaning", "") + (f" ({md['reference']})" if md.get("reference") else "")
        obj = getattr(obj, name)
    return meaning


def side_by_side(report_a: GeometryReport, report_b: GeometryReport) -> list[dict]:
    """Rows {metric, a, b, change, meaning} for every scalar of either report's summary."""
    sa, sb = _scalars(report_a.to_dict()), _scalars(report_b.to_dict())
    paths = list(sa) + [p for p in sb if p not in sa]
    rows = []
    for p in paths:
        a, b = sa.get(p), sb.get(p)
        if a is None and b is None:
            continue
        rows.append({"metric": p, "a": a, "b": b, "change": _change(a, b),
                     "meaning": _meaning(report_a if p in sa else report_b, p)})
    return rows


def _labels(labels, ea: EmbeddingSet, eb: EmbeddingSet):
    if labels is None or not isinstance(labels, str):
        return labels
    for es in (ea, eb):
        if es.metadata is not None and labels in es.metadata.columns:
            return es.metadata[labels].to_numpy()
    raise EmbeddingInputError(f"no metadata column {labels!r} for labels in either set")


def _retrieval_scores(es: EmbeddingSet, queries, relevance, *, k: int, metric: str) -> dict:
    """recall@k and nDCG@10 of exact retrieval; queries are corpus rows (self excluded) or vectors."""
    depth = min(max(k, 10), es.n - 1)
    if queries is None or (isinstance(queries, np.ndarray) and queries.ndim == 1):
        rows = np.arange(es.n) if queries is None else queries
        ids = exact_knn(es.vectors, k=depth, metric=metric, query_indices=rows).indices
    else:
        ids = exact_knn(es.vectors, queries, k=depth, metric=metric).indices
    recall, judged = recall_at(ids, relevance, k=min(k, depth))
    ndcg, _ = ndcg_at(ids, relevance, k=min(10, depth))
    return {f"recall_at_{min(k, depth)}": recall, "ndcg_at_10": ndcg, "n_judged": judged}


def _split_queries(queries, ea: EmbeddingSet, eb: EmbeddingSet):
    """Queries for A and for B: None (every item), item rows (1-D ints), or a pair of vector arrays."""
    if queries is None:
        return None, None
    if isinstance(queries, tuple) and len(queries) == 2:
        qa = as_float32_matrix(queries[0], name="queries for A")
        qb = as_float32_matrix(queries[1], name="queries for B")
        if qa.shape[1] != ea.dim or qb.shape[1] != eb.dim or len(qa) != len(qb):
            raise EmbeddingInputError(
                f"query vectors must match each space: got {qa.shape} for A (d={ea.dim}) and {qb.shape} "
                f"for B (d={eb.dim}), with the same number of queries")
        return qa, qb
    rows = np.asarray(queries)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise EmbeddingInputError(
            "queries must be item rows (a 1-D integer array, the same items in both spaces) or a pair "
            f"(queries_a, queries_b) of vector arrays; got an array of shape {rows.shape}, dtype {rows.dtype}")
    if len(rows) and (rows.min() < 0 or rows.max() >= ea.n):
        raise EmbeddingInputError(f"query rows must lie in [0, {ea.n})")
    return rows, rows


def compare(a, b, *, metric: str = "cosine", k: int = 10, labels=None, relevance=None, queries=None,
            name_a: str | None = None, name_b: str | None = None, sample: int | None = 2000,
            random_state=0, report_a: GeometryReport | None = None, similarity: bool = True) -> Comparison:
    """Geometry of two embedding spaces side by side, with neighbourhood and task-level changes.

    Each space gets a full :func:`geometry_report` (isotropy, intrinsic dimension, hubness,
    concentration, similarity); every scalar of the two summaries becomes one row
    ``{metric, a, b, change = b - a, meaning}``. When the spaces hold the same items (same n, row
    for row), the mean k-NN overlap between them measures how much of the neighbourhood structure
    the change kept. Where the items are labelled, the leave-one-out k-NN classification accuracy
    of each space is reported; where query-relevance judgements exist, recall@k and nDCG@10.

    Parameters
    ----------
    a, b : EmbeddingSet or array-like of shape (n_a, d_a), (n_b, d_b)
        Space A (before) and space B (after). Dimensions may differ.
    metric : {"cosine", "dot", "euclidean"}
        Similarity of every neighbour search.
    k : int
        Neighbours per point (hubness, preservation, the k-NN vote, recall@k).
    labels : str or array-like of shape (n,), optional
        Class labels of the items, or the name of a metadata column of ``a`` (else ``b``).
    relevance : optional
        Relevance judgements as accepted by :func:`recall_at`: (query, corpus row[, grade]) pairs or
        one collection / dict per query.
    queries : optional
        Which queries the judgements are about: None (every item is a query, in order), a 1-D
        integer array of item rows (their own row is excluded from their results), or a pair
        ``(queries_a, queries_b)`` of query vectors embedded in each space.
    name_a, name_b : str, optional
        Display names; default the sets' names, else "A" and "B".
    sample : int or None
        Query points of the sampled parts of each geometry report (see :func:`geometry_report`).
    random_state : int, Generator or None
    report_a : GeometryReport, optional
        A's report, already computed by ``geometry_report(a, metric=metric, k=k, sample=sample,
        random_state=random_state)``: reused instead of computed again, so comparing one set with
        several others (transforms, models) pays for A once. Its n, dim, metric and k are checked.
    similarity : bool
        Add :func:`representation_similarity` of the two (same items only): one streamed pass of
        cross-moments, the neighbour tables the reports already cached, and RBF CKA and RSA on a
        sample of ``SIMILARITY_SAMPLE`` items. Where the items cannot be matched row for row (ids that
        disagree, rows dropped from one side) it is left out with a note.

    Returns
    -------
    Comparison
        Text and HTML reprs show the rows side by side (and the similarity headline); ``to_dict()`` is
        JSON-safe (the similarity block under ``similarity``); ``report_a`` and ``report_b`` keep the
        full reports.

    Raises
    ------
    EmbeddingInputError
        Invalid vectors or metric, labels or relevance that do not fit the sets, or ``labels`` /
        ``relevance`` given for spaces with different numbers of items.

    References
    ----------
    Venna, J., Kaski, S. "Neighborhood preservation in nonlinear projection methods", ICANN 2001
    (k-NN overlap). Cover, T., Hart, P. "Nearest neighbor pattern classification", IEEE Trans. Inf.
    Theory 1967. Thakur et al., "BEIR", NeurIPS Datasets 2021 (recall@k); Jarvelin, K., Kekalainen,
    J., ACM TOIS 2002 (nDCG). The geometry statistics: see :func:`geometry_report`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 16)) + 1.0
    >>> c = compare(x, x - x.mean(axis=0), k=5, sample=100)
    >>> c.row("isotropy.mean_cosine")["change"] < 0, c.neighborhood_preservation < 1
    (True, True)
    """
    metric = check_metric(metric)
    ea, eb = as_embedding_set(a, name=name_a or "A"), as_embedding_set(b, name=name_b or "B")
    name_a, name_b = name_a or ea.name, name_b or eb.name
    same_items = ea.n == eb.n
    if not same_items and (labels is not None or relevance is not None):
        raise EmbeddingInputError(
            f"labels and relevance describe the same items in both spaces, but A has {ea.n} and B {eb.n}")
    k = check_k(k, min(ea.n, eb.n) - 1, context="neighbours (self excluded)")

    if report_a is None:
        rep_a = geometry_report(ea, metric=metric, k=k, sample=sample, random_state=random_state)
    else:
        given = (report_a.n, report_a.dim, report_a.metric, report_a.k)
        if given != (ea.n, ea.dim, metric, k):
            raise EmbeddingInputError(
                f"report_a describes n={given[0]}, dim={given[1]}, metric={given[2]!r}, k={given[3]}; "
                f"this comparison needs n={ea.n}, dim={ea.dim}, metric={metric!r}, k={k}")
        rep_a = report_a
    rep_b = geometry_report(eb, metric=metric, k=k, sample=sample, random_state=random_state)
    # Both reports cached the k-NN tables on the sets, so preservation and the vote reuse them.
    preservation = neighborhood_preservation(ea, eb, k=k, metric=metric) if same_items else None
    notes = () if same_items else (
        f"A holds {ea.n:,} items and B {eb.n:,}: neighbourhood preservation, the k-NN label accuracy and "
        "retrieval need the same items in both spaces, so they are left out; the geometry rows compare "
        "the two sets as wholes",)

    accuracy = None
    label_values = _labels(labels, ea, eb)
    if label_values is not None:
        accuracy = {"a": knn_classification_accuracy(ea, label_values, k=k, metric=metric),
                    "b": knn_classification_accuracy(eb, label_values, k=k, metric=metric)}
    retrieval = None
    if relevance is not None:
        qa, qb = _split_queries(queries, ea, eb)
        retrieval = {"a": _retrieval_scores(ea, qa, relevance, k=k, metric=metric),
                     "b": _retrieval_scores(eb, qb, relevance, k=k, metric=metric)}
    elif queries is not None:
        raise EmbeddingInputError("queries were given without relevance judgements")
    sim = None
    if similarity and same_items:
        try:
            sim = representation_similarity(ea, eb, k=k, metric=metric, sample_size=SIMILARITY_SAMPLE,
                                            random_state=random_state)
        except EmbeddingInputError as err:  # the geometry rows stand on their own; say why this is missing
            notes = notes + (f"representation similarity left out: {err}",)
    return Comparison(name_a=name_a, name_b=name_b, metric=metric, k=k, rows=side_by_side(rep_a, rep_b),
                      neighborhood_preservation=preservation, knn_accuracy=accuracy, retrieval=retrieval,
                      notes=notes, similarity=sim, report_a=rep_a, report_b=rep_b)
