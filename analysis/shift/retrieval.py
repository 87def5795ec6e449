"""The shift's join to retrieval (an index's recall per query, from the index statistics) and the
shift after each candidate transform (the existing transformers, fitted on one set, applied to both).
"""

from __future__ import annotations

import numpy as np

from .._core import MOMENT_BLOCK_ROWS, EmbeddingInputError, Moments, iter_row_blocks, prepare_rows
from ..index import GroundTruth, index_sweep, split_queries
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


def _moments_after(transformer, vectors, cosine: bool) -> Moments:
    """Moments of ``transformer.transform(vectors)`` (unit rows under cosine), block by block: the
    transformed set is never held whole."""
    m = Moments(vectors.shape[1], normalize=cosine)
    for _, block in iter_row_blocks(vectors, MOMENT_BLOCK_ROWS):
        m.update(transformer.transform(block))
    return m


def _row(name: str, stats: dict) -> dict:
    return {"transform": name, **{c: stats.get(c) for c in TRANSFORM_COLUMNS}}


def transform_rows(cs, qs, mc, mq, *, xc_raw, xq_raw, base: dict, metric: str, eps: float, n_folds: int,
                   classifier_seed: int, progress, notes: list) -> list[dict]:
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
    """
    cosine = metric == "cosine"
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

    def prep(block):
        return prepare_rows(block, metric, dtype=np.float64)

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
            rows.append(_row(name, stats))
        except EmbeddingInputError as exc:
            notes.append(f"{name} was left out of the transform rows: {exc}")
        progress.update()
    return rows
