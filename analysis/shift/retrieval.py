"""The shift's join to retrieval (an index's recall per query, from the index statistics, by shift
bucket), the shift after each candidate transform (the existing transformers, fitted on one set,
applied to both), and what each transform does to retrieval on the report's samples (how much of each
query's exact top-k it changes, and an index's recall in the transformed space).
"""

from __future__ import annotations

import numpy as np

from .._core import MOMENT_BLOCK_ROWS, EmbeddingInputError, Moments, iter_row_blocks, prepare_rows
from ..embeddings import EmbeddingSet
from ..index import GroundTruth, index_sweep, split_queries
from ..neighbors import exact_knn, recall_per_query
from ..transforms import Center, Whitening
from .gaussian import centroid_statistics, frechet_distance
from .two_sample import classifier_test, mmd_test

#: One search setting per index kind unless the caller sweeps more (the index-size scaling's defaults).
DEFAULT_SEARCH = {"hnsw": {"efSearch": (64,)}, "ivf": {"nprobe": (8,)}, "ivfpq": {"nprobe": (8,)}}
#: The columns of one transform row.
TRANSFORM_COLUMNS = ("centroid_gap", "centroid_gap_in_spreads", "modality_gap", "frechet_distance",
                     "total_variance_ratio", "mmd_rbf", "classifier_auc", "classifier_auc_ci")


def recall_by_index(cs, qs, table, *, k: int, metric: str, kind: str, params: dict | None, random_state):
    """Per-query recall@k of one faiss index kind (:func:`index_sweep`) against the exact table of the
    queries already searched (``table``, at least k columns): ``({label: per-query recall}, summary)``."""
    split = split_queries(cs, qs.vectors, metric=metric)
    ground = GroundTruth(
        k=int(k), n_queries=qs.n, n_corpus=cs.n, metric=metric, source="array", seconds=float(table.seconds),
        backend=table.backend, indices=table.indices, distances=table.distances, mean_distance=table.mean_distance,
        corpus_rows=split.corpus_rows, query_rows=None, file_neighbors=None, file_distances=None)
    search = DEFAULT_SEARCH.get(kind, {}) if params is None else params
    sweep = index_sweep(ground, split, indexes=(kind,), index_params={kind: dict(search)}, repeats=1,
                        random_state=random_state)
    recall = {s.label: s.per_query_recall for s in sweep.settings}
    summary = {"kind": kind, "settings": [{"setting": s.label, "recall_at_k": s.recall_at_k, "qps": s.qps,
                                           "build_seconds": s.build_seconds} for s in sweep.settings]}
    return recall, summary


def query_buckets(maha: np.ndarray, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges of the ``n_buckets`` Mahalanobis quantile buckets of the queries and each query's bucket
    (0 = nearest the corpus)."""
    edges = np.quantile(maha, np.linspace(0, 1, n_buckets + 1))
    return edges, np.searchsorted(edges[1:-1], maha, side="right")


def bucket_table(maha, knn, margin, rc, n_buckets: int, recall: dict | None) -> list:
    """One row per non-empty bucket: its Mahalanobis range, the median k-th neighbour distance, margin
    and relative contrast of its queries, and the mean of each per-query recall in ``recall``."""
    edges, which = query_buckets(maha, n_buckets)
    out = []
    for b in range(n_buckets):
        rows = which == b
        if not rows.any():
            continue
        entry = {"bucket": b, "mahalanobis_low": float(edges[b]), "mahalanobis_high": float(edges[b + 1]),
                 "n_queries": int(rows.sum()), "knn_distance_median": float(np.median(knn[rows])),
                 "margin_median": None if margin is None else float(np.median(margin[rows])),
                 "relative_contrast_median": None if rc is None else float(np.nanmedian(rc[rows]))}
        for label, per_query in (recall or {}).items():
            entry[f"recall {label}"] = float(per_query[rows].mean())
        out.append(entry)
    return out


def _by_bucket(per_query: np.ndarray, which: np.ndarray, n_buckets: int) -> list:
    """Mean of ``per_query`` in each bucket, near to far (None for a bucket with no sampled query)."""
    return [float(per_query[which == b].mean()) if (which == b).any() else None for b in range(n_buckets)]


def space_retrieval(xc, xq, truth, *, k: int, metric: str, buckets: np.ndarray, n_buckets: int,
                    index: str | None = None, index_params: dict | None = None, index_seed: int = 0,
                    table=None) -> dict:
    """Retrieval of a query sample against a corpus sample in one space (rows already mapped into it).

    The exact k-NN of each query in the space is that space's own ground truth, so the recall of
    the exact search is 1 there by definition. What a transform changes is *which* corpus items a
    query retrieves, and how well an index finds them:

    * ``overlap_at_k``: the mean over queries of ``|N_T(q) & N_0(q)| / k``, the exact top-k of the
      query in this space ``N_T`` against its exact top-k in the untransformed space ``N_0`` (``truth``,
      corpus row numbers of the same samples), by :func:`~embgeo.analysis.neighbors.recall_per_query`
      (set overlap, Venna & Kaski, ICANN 2001). 1: the transform retrieves the same items (a rotation,
      centring under euclidean); below 1: it changes the results, for better or worse (the embeddings
      carry no relevance labels to say which). ``overlap_by_bucket``: the same per shift bucket.
    * with ``index``: ``recall {setting}``, the recall@k of that faiss index built on the corpus
      sample *in this space*, against the exact top-k in this space (:func:`recall_by_index`, the
      :func:`index_sweep` statistics; Aumueller et al., 2020), and ``recall {setting} by bucket``: so
      a user sees whether the transform makes the shifted (far) queries easier for the index.

    ``buckets`` gives each sampled query's shift bucket (0 = nearest). The corpus sample is what is
    searched and indexed: recall is that of an index of those rows, not of the whole corpus. ``table``:
    the exact search of these rows when already done (the raw space's, which is ``truth``).
    """
    if table is None:
        table = exact_knn(xc, xq, k=k, metric=metric, validate=False)
    overlap = recall_per_query(table.indices[:, :k], truth)
    out = {"overlap_at_k": float(overlap.mean()), "overlap_by_bucket": _by_bucket(overlap, buckets, n_buckets)}
    if index is not None:
        cs = EmbeddingSet(np.asarray(xc, dtype=np.float32), name="corpus sample", validate=False)
        qs = EmbeddingSet(np.asarray(xq, dtype=np.float32), name="query sample", validate=False)
        recall, _ = recall_by_index(cs, qs, table, k=k, metric=metric, kind=index, params=index_params,
                                    random_state=index_seed)
        for label, per_query in recall.items():
            out[f"recall {label}"] = float(per_query.mean())
            out[f"recall {label} by bucket"] = _by_bucket(per_query, buckets, n_buckets)
    return out


def _moments_after(transformer, vectors, cosine: bool) -> Moments:
    """Moments of ``transformer.transform(vectors)`` (unit rows under cosine), block by block: the
    transformed set is never held whole."""
    m = Moments(vectors.shape[1], normalize=cosine)
    for _, block in iter_row_blocks(vectors, MOMENT_BLOCK_ROWS):
        m.update(transformer.transform(block))
    return m


def _row(name: str, stats: dict) -> dict:
    """The fixed columns, then the retrieval columns present (``overlap_*``, ``recall {setting}*``)."""
    extra = {c: v for c, v in stats.items() if c.startswith(("overlap_", "recall "))}
    return {"transform": name, **{c: stats.get(c) for c in TRANSFORM_COLUMNS}, **extra}


def transform_rows(cs, qs, mc, mq, *, xc_raw, xq_raw, base: dict, metric: str, eps: float, n_folds: int,
                   classifier_seed: int, progress, notes: list, search: dict | None = None) -> list[dict]:
    """The shift raw and after each transform: centring on the corpus mean, on the pooled mean, and ZCA
    whitening fitted on the corpus (each fitted with the scikit-learn ``fit``, then ``transform`` on
    both sets in blocks, as a deployed pipeline applies it to new queries).

    Every row holds the centroid gap (also in corpus spreads), the modality gap, the Frechet distance,
    the total-variance ratio, the Gaussian MMD^2 of the transformed samples (bandwidth re-tuned by the
    median heuristic in each space, so its values are on different scales and not compared across
    rows) and the held-out AUC of the classifier test on the transformed samples (the same folds,
    ``classifier_seed``, in every row). The AUC is on one scale in every space, and an invertible
    affine map changes its standardised logistic regression only through the L2 penalty
    (translations and per-coordinate scalings not at all): a transform affine in the metric's space
    (centring under euclidean or dot, whitening) leaves it where it was, which is the truth (one map
    applied to both sets leaves them as separable as before); under cosine the normalisation after
    the transform can move it. Centring moves both sets
    by one vector: under euclidean and dot it changes none of these (the rows say so); under cosine
    the rows are normalised after it, which is where it matters (Liang et al., 2022).

    With ``search`` (the keywords of :func:`space_retrieval` but ``truth``), every row, the raw one
    too, also holds the retrieval of the query sample ``xq_raw`` against the corpus sample ``xc_raw``
    in that space: the overlap of its exact top-k with the raw space's (1 in the raw row) and, with
    an index, the index's recall@k in that space, overall and by shift bucket.
    """
    cosine = metric == "cosine"
    prep = lambda block: prepare_rows(block, metric, dtype=np.float64)  # noqa: E731
    truth = None
    if search is not None and search["k"] >= len(xc_raw):
        notes.append(f"the corpus sample holds {len(xc_raw):,} rows, not more than k={search['k']}: the transform "
                     "rows leave out the retrieval columns (raise sample_size)")
        search = None
    if search is not None:
        raw = exact_knn(xc_raw, xq_raw, k=search["k"], metric=metric, validate=False)
        truth = raw.indices
        base = {**base, **space_retrieval(xc_raw, xq_raw, truth, metric=metric, table=raw, **search)}
    rows = [_row("none", base)]
    try:
        if cosine:  # the raw means (the moments describe the unit rows): one pass over each set
            centre_c = Center().fit(cs.vectors)
            query_mean = Center().fit(qs.vectors).mean_
        else:  # the moments' own means, no pass
            centre_c, query_mean = Center().fit(mc.mean[None, :]), mq.mean
        # the pooled mean is the count-weighted mean of the two means: Center fitted on them, so weighted
        pooled = Center().fit(np.stack([centre_c.mean_, query_mean]), sample_weight=[cs.n, qs.n])
        candidates = [("center on the corpus mean", centre_c), ("center on the pooled mean", pooled),
                      ("ZCA whitening fitted on the corpus", Whitening(method="zca", eps=eps).fit(cs.vectors))]
    except EmbeddingInputError as exc:
        notes.append(f"the transform rows were left out: {exc}")
        return rows

    for name, transformer in candidates:
        try:
            mct, mqt = _moments_after(transformer, cs.vectors, cosine), _moments_after(transformer, qs.vectors, cosine)
            norm = 1.0 if cosine else (mct.norm_mean + mqt.norm_mean) / 2.0
            stats = centroid_statistics(mct, mqt, norm)
            stats["modality_gap"] = float(np.linalg.norm(mqt.unit_mean - mct.unit_mean))
            stats["frechet_distance"] = frechet_distance(mct.mean, mct.covariance(ddof=1), mqt.mean,
                                                         mqt.covariance(ddof=1))
            stats["total_variance_ratio"] = mqt.total_variance(ddof=1) / mct.total_variance(ddof=1)
            xc, xq = prep(transformer.transform(xc_raw)), prep(transformer.transform(xq_raw))
            stats["mmd_rbf"] = mmd_test(xc, xq, n_permutations=0)["mmd2"]
            clf = classifier_test(xc, xq, n_folds=n_folds, random_state=classifier_seed)
            stats["classifier_auc"], stats["classifier_auc_ci"] = clf["auc"], clf["ci"]
            if search is not None:
                try:
                    stats.update(space_retrieval(xc, xq, truth, metric=metric, **search))
                except EmbeddingInputError as exc:
                    notes.append(f"{name}: the retrieval columns were left out: {exc}")
            rows.append(_row(name, stats))
        except EmbeddingInputError as exc:
            notes.append(f"{name} was left out of the transform rows: {exc}")
        progress.update()
    columns = list(dict.fromkeys(c for r in rows for c in r))  # one set of columns (a table's header)
    return [{c: r.get(c) for c in columns} for r in rows]
