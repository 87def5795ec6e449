"""Query versus corpus in one space: how far apart the two clouds sit, in which directions, which
queries are out of distribution, what it does to retrieval, and which transform closes the gap.

:func:`shift_report` reads each set's moments once (streamed, cached on the set), searches the queries
against the corpus with the shared neighbour engine, runs the quadratic or fitted tests on stated row
samples, and returns one :class:`ShiftReport`.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

import numpy as np

from .._core import (
    EmbeddingInputError,
    Progress,
    Result,
    as_float32_matrix,
    check_finite,
    check_k,
    check_metric,
    check_no_zero_rows,
    check_random_state,
    check_same_dim,
    format_value,
    hidden,
    metric as _field,
    prepare_rows,
    sample_rows,
    stylesheet,
    sub_progress,
)
from ..embeddings import EmbeddingSet
from ..index import INDEX_KINDS
from ..neighbors import duplicate_mask, exact_knn
from ..report import verdicts_html
from .gaussian import centroid_statistics, check_eps, covariance_statistics, held_out_folds, held_out_scores
from .gaussian import subspace_dimension
from .retrieval import bucket_table, query_buckets, recall_by_index, transform_rows
from .two_sample import classifier_test, mmd_linear_from_sums, mmd_test
from .verdicts import shift_verdicts

#: Rows of each set a two-sample test needs at least (the classifier's folds and the MMD's pairs).
MIN_TEST_ROWS = 10
#: Percentile of the corpus's own scores above which a query counts as out of distribution.
OOD_PERCENTILE = 95.0
#: Label groups listed one by one at most (more distinct labels are too many to be groups).
MAX_LABEL_GROUPS = 20
#: Largest sample of each set for the quadratic tests: the pooled (2 x 10,000)^2 float64 kernel is
#: 3.2 GB, the one n x n array the MMD holds (built in place).
MAX_SHIFT_SAMPLE = 10_000
#: Corpus rows per dimension below which the corpus covariance (the Mahalanobis score) is poorly estimated.
ROWS_PER_DIM = 10


@dataclass(frozen=True, repr=False)
class ShiftReport(Result):
    """Distribution shift between a query set and a corpus embedded in one space."""

    _title = "query versus corpus: distribution shift"
    name_corpus: str = _field("Name of the corpus (the searched set).")
    name_queries: str = _field("Name of the query set.")
    metric: str = _field("Similarity; under cosine every statistic describes the unit rows, as the search sees them.")
    n_corpus: int = _field("Corpus rows.")
    n_queries: int = _field("Query rows.")
    dim: int = _field("Dimension of both sets.")
    k: int = _field("Neighbours per query for the out-of-distribution score and the retrieval margin.")
    centroid_gap: float = _field("||mu_Q - mu_C||: distance between the two mean vectors.")
    centroid_gap_share: float = _field("The gap over the mean row norm of the two sets (1 under cosine).")
    centroid_gap_in_spreads: float = _field("The gap over the corpus's RMS spread sqrt(tr C_C) (scale-free).")
    mean_cosine_between_means: float = _field("Cosine between the two mean vectors.")
    modality_gap: float = _field("||mean(u_Q) - mean(u_C)|| between the centres of the L2-normalised sets.",
                                 "Liang et al., NeurIPS 2022")
    covariance_frobenius: float = _field("||C_Q - C_C||_F between the covariances (ddof=1).")
    covariance_frobenius_relative: float = _field("That difference over ||C_C||_F.")
    frechet_distance: float = _field("Squared Frechet distance of Gaussians fitted to each set (the FID formula).",
                                     "Dowson & Landau, JMVA 1982; Heusel et al., NeurIPS 2017")
    bures_wasserstein: float = _field("Its square root: the 2-Wasserstein distance of the fitted Gaussians "
                                      "(Bures-Wasserstein when the means agree).", "Bhatia et al., 2019")
    total_variance_ratio: float = _field("tr C_Q / tr C_C (below 1: the queries occupy a smaller region).")
    principal_angles: list = _field("Angles (degrees, smallest first) between the top principal subspaces of "
                                    "the two sets (0 = the same directions, 90 = orthogonal).",
                                    "Bjorck & Golub, Math. Comp. 1973")
    n_components: int = _field("Dimension of the compared principal subspaces (at most d - 1: the top-d "
                               "subspace is the whole space).")
    mmd_linear: float = _field("Unbiased MMD^2 with the linear kernel, over all rows (from the moments).",
                               "Gretton et al., JMLR 2012")
    mmd_linear_sample: float = _field("Unbiased linear-kernel MMD^2 on the samples: the statistic "
                                      "mmd_linear_p_value tests.", "Gretton et al., JMLR 2012")
    mmd_linear_p_value: float | None = _field("Permutation p-value of the linear MMD on the samples "
                                              "(of mmd_linear_sample, not of mmd_linear).",
                                              "Gretton et al., JMLR 2012")
    mmd_rbf: float = _field("Unbiased MMD^2 with a Gaussian kernel on the samples.", "Gretton et al., JMLR 2012")
    mmd_p_value: float | None = _field("Permutation p-value of the Gaussian MMD (below 0.05: the sets differ).",
                                       "Gretton et al., JMLR 2012")
    mmd_bandwidth: float = _field("Gaussian kernel sigma: the median distance between the pooled sample's "
                                  "pairs that do not coincide (median heuristic; None when no two differ).")
    n_permutations: int = _field("Label permutations behind each p-value.")
    sample_size: dict = _field("Rows of each set the MMD, the classifier, the corpus reference scores and the "
                               "retrieval columns of the transform rows used.")
    classifier_auc: float = _field("Held-out AUC of a logistic regression telling queries from corpus rows "
                                   "(0.5 = indistinguishable).", "Lopez-Paz & Oquab, ICLR 2017")
    classifier_auc_ci: tuple = _field("95% percentile-bootstrap interval of that AUC (over the rows).",
                                      "Efron & Tibshirani, 1993")
    n_folds: int = _field("Cross-validation folds of the classifier.")
    knn_distance_median: float = _field("Median distance from a query to its k-th corpus neighbour.",
                                        "Sun et al., ICML 2022")
    knn_corpus_threshold: float = _field("95th percentile of the corpus sample's own k-th neighbour distance.")
    knn_ood_rate: float = _field("Share of queries beyond that threshold (0.05 when they look like the corpus).",
                                 "Sun et al., ICML 2022")
    mahalanobis_median: float = _field("Median Mahalanobis distance of the queries under the corpus mean and "
                                       "covariance (fitted without the held-out reference rows).",
                                       "Rippel, Mertens, Merhof, ICPR 2020")
    mahalanobis_corpus_threshold: float = _field("95th percentile of the corpus sample's Mahalanobis distance, each "
                                                 "row scored by a fit that did not see it.")
    mahalanobis_ood_rate: float = _field("Share of queries beyond it.", "Rippel, Mertens, Merhof, ICPR 2020")
    by_bucket: list = _field("Per Mahalanobis quantile bucket of the queries (near to far): k-th neighbour "
                             "distance, the margin D_{k+1} - D_k, relative contrast and, with an index, recall@k.",
                             "He, Kumar, Chang, ICML 2012; Aumueller et al., 2020")
    hardest: list = _field("The queries farthest from their k-th corpus neighbour.")
    by_label: list | None = _field("The scores per query label, when labels name a few groups.", default=None)
    index: dict | None = _field("The index scored by bucket: setting and recall@k.", default=None)
    transforms: list = _field("The shift after each transform, fitted as named and applied to both sets: "
                              "centroid gap, modality gap, Frechet distance, Gaussian MMD^2 (re-tuned bandwidth: "
                              "not comparable across rows), the classifier AUC with its interval (one scale "
                              "in every space: the verdict reads it), and on the samples the overlap@k of each "
                              "query's exact top-k with the raw space's and, with an index, its recall@k in that "
                              "space (overall and by shift bucket).",
                              "Liang et al., NeurIPS 2022; Su et al., 2021", default_factory=list)
    verdicts: list = _field("Each headline number in plain language, with a status and what to do next.",
                            default_factory=list)
    notes: tuple = _field("What was sampled, left out or could not be computed, and why.", default=())
    timings: dict = _field("Seconds of each part.", default_factory=dict)
    knn_distance: np.ndarray = _field("Distance of every query to its k-th corpus neighbour.", summary=False,
                                      default=None)
    mahalanobis: np.ndarray = _field("Mahalanobis distance of every query (query i under the fit without "
                                     "held-out fold i mod n_folds, as the reference rows are scored).",
                                     summary=False, default=None)
    labels: np.ndarray | None = hidden()
    names: np.ndarray | None = hidden()
    gap_vector: np.ndarray | None = hidden()

    def hardest_queries(self, n: int = 10, *, by: str = "knn") -> list[dict]:
        """The ``n`` queries with the largest k-th neighbour distance (``by="knn"``) or Mahalanobis
        distance (``by="mahalanobis"``), farthest first."""
        if by not in ("knn", "mahalanobis"):
            raise EmbeddingInputError(f"by must be 'knn' or 'mahalanobis', got {by!r}")
        score = self.knn_distance if by == "knn" else self.mahalanobis
        order = np.argsort(-score, kind="stable")[:int(n)]
        return [_query_row(int(i), self.names, self.labels, self.knn_distance, self.mahalanobis) for i in order]

    def __repr__(self) -> str:
        lines = [f"ShiftReport: {self.name_queries!r} ({self.n_queries:,}) against {self.name_corpus!r} "
                 f"({self.n_corpus:,}), d={self.dim}, metric={self.metric}, k={self.k}"]
        for f, value in self._rows():
            if f.name in _TABLES or f.name in ("verdicts", "notes", "timings", "name_corpus", "name_queries",
                                                "metric", "n_corpus", "n_queries", "dim", "k"):
                continue
            meaning = f.metadata.get("meaning", "")
            lines.append(f"  {f.name:<30} {format_value(value):<14}  # {meaning}")
        for name in _TABLES:
            rows = getattr(self, name) or []
            if rows:
                lines.append(f"  {name}:")
                lines += ["    " + ", ".join(f"{k}={_cell(v)}" for k, v in r.items()) for r in rows[:10]]
        lines += [f"  note: {n}" for n in self.notes]
        lines += ["  " + repr(v) for v in self.verdicts]
        return "\n".join(lines)

    def _html_body(self) -> str:
        esc = html.escape
        parts = [verdicts_html(self.verdicts, style=False)]
        rows = []
        for f, value in self._rows():
            if f.name in _TABLES or f.name in ("verdicts", "notes"):
                continue
            ref = f.metadata.get("reference", "")
            rows.append(f"<tr><th>{esc(f.name)}</th><td class='embgeo-value'>{esc(format_value(value))}</td>"
                        f"<td class='embgeo-meaning'>{esc(f.metadata.get('meaning', ''))}"
                        f"{f' <span class=embgeo-ref>({esc(ref)})</span>' if ref else ''}</td></tr>")
        parts.append(f"<table class='embgeo-table'>{''.join(rows)}</table>")
        for name in _TABLES:
            table = getattr(self, name) or []
            if table:
                head = "".join(f"<th>{esc(k)}</th>" for k in table[0])
                body = "".join("<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in r.values()) + "</tr>"
                               for r in table)
                parts.append(f"<details class='embgeo-section' open><summary>{esc(name)}</summary>"
                             f"<table class='embgeo-table'><tr>{head}</tr>{body}</table></details>")
        parts += [f"<p class='embgeo-note'>{esc(n)}</p>" for n in self.notes]
        return "".join(parts)

    def _repr_html_(self) -> str:
        title = html.escape(f"Shift: {self.name_queries} against {self.name_corpus} ({self.metric}, k={self.k})")
        return (f"<style>{stylesheet()}</style><div class='embgeo-result'><div class='embgeo-title'>{title}</div>"
                f"{self._html_body()}</div>")


_TABLES = ("transforms", "by_bucket", "by_label", "hardest")


def _cell(value) -> str:
    return "-" if value is None else format_value(value)


def _query_row(i: int, names, labels, knn, maha) -> dict:
    return {"query": i, "text": None if names is None else str(names[i]),
            "label": None if labels is None else str(labels[i]), "knn_distance": float(knn[i]),
            "mahalanobis": float(maha[i])}


def _as_set(data, role: str) -> EmbeddingSet:
    """An EmbeddingSet of ``data``; arrays are checked here so that errors name the corpus or the queries."""
    if isinstance(data, EmbeddingSet):
        return data
    x = as_float32_matrix(data, name=role)
    check_finite(x, role)
    return EmbeddingSet(x, name=role, validate=False)


def _names(qs: EmbeddingSet):
    """What names each query: the metadata column :meth:`EmbeddingSet.label` reads, whole (or None)."""
    columns = [] if qs.metadata is None else [c for c in ("text", "word", "label", "id") if c in qs.metadata]
    return qs.metadata[columns[0]].astype(str).to_numpy() if columns else None


def _labels(labels, qs: EmbeddingSet):
    if labels is None:
        return None
    if isinstance(labels, str):
        if qs.metadata is None or labels not in qs.metadata.columns:
            raise EmbeddingInputError(f"no metadata column {labels!r} in the queries for labels")
        return qs.metadata[labels].astype(str).to_numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != qs.n:
        raise EmbeddingInputError(f"labels must hold one value per query ({qs.n}); got shape {arr.shape}")
    return arr.astype(str)


def _by_label(labels, knn, maha, knn_thr, maha_thr) -> list | None:
    if labels is None:
        return None
    groups = np.unique(labels)
    if not 2 <= len(groups) <= MAX_LABEL_GROUPS:
        return None
    return [{"label": str(g), "n_queries": int((labels == g).sum()),
             "knn_distance_median": float(np.median(knn[labels == g])),
             "mahalanobis_median": float(np.median(maha[labels == g])),
             "knn_ood_rate": float(np.mean(knn[labels == g] > knn_thr)),
             "mahalanobis_ood_rate": float(np.mean(maha[labels == g] > maha_thr))} for g in groups]


def shift_report(corpus, queries, *, metric: str = "cosine", k: int = 10, labels=None, n_permutations: int = 200,
                 sample_size: int = 1000, n_components: int = 10, n_folds: int = 5, n_buckets: int = 4,
                 n_hardest: int = 10, eps: float = 1e-6, transforms: bool = True, index: str | None = None,
                 index_params: dict | None = None, random_state=0, progress=None) -> ShiftReport:
    """How far a query set sits from the corpus it is searched against, in which directions, and what
    that does to retrieval.

    Parameters
    ----------
    corpus, queries : EmbeddingSet or array-like of shape (n_c, d), (n_q, d)
        The searched set and the queries, of one dimension and any sizes (each at least
        :data:`MIN_TEST_ROWS` rows); a memory-mapped corpus is read in blocks.
    metric : {"cosine", "euclidean", "dot"}
        Under cosine every statistic describes the unit rows (what the search compares); otherwise the
        rows as they are. Under dot the "distance" to the k-th neighbour is minus its inner product.
    k : int
        The k-th corpus neighbour of each query scores it (and the margin D_{k+1} - D_k).
    labels : str or array-like of shape (n_q,), optional
        Query labels (or the name of a metadata column of the queries), listed beside the hardest
        queries (which are named by the queries' text column when there is one); when they form 2 to
        20 groups the scores are also given per group.
    n_permutations : int
        Permutations of each MMD p-value (0: no p-values).
    sample_size : int
        Rows drawn from each set (without replacement; all when fewer) for the quadratic MMD, the
        classifier test and the corpus's reference scores. Pairs formed: (2 sample_size)^2; at most
        :data:`MAX_SHIFT_SAMPLE` (the pooled kernel matrix is the one quadratic array held).
    n_components : int
        Dimension of the principal subspaces compared by principal angles; at most d - 1 (a larger value
        is capped, with a note: the top-d subspace of any set is the whole space, every angle 0).
    n_folds : int
        Cross-validation folds of the classifier two-sample test.
    n_buckets, n_hardest : int
        Mahalanobis quantile buckets of the queries, and how many hardest queries to list.
    eps : float
        Regulariser of the corpus covariance for the Mahalanobis distance, relative to its largest
        eigenvalue (as for :class:`Whitening`).
    transforms : bool
        Also measure the shift after centring on the corpus mean, centring on the pooled mean and ZCA
        whitening fitted on the corpus (:class:`Center`, :class:`Whitening`: fitted, then applied to both
        sets in blocks), and what each does to retrieval, on the samples (``sample_size`` queries
        against ``sample_size`` corpus rows, the same rows in every space): ``overlap_at_k``, the share
        of each query's exact top-k that is also its exact top-k in the raw space (1 in the raw row,
        by definition: the exact search is each space's own ground truth), and with ``index`` that
        index's recall@k in each space (built on the transformed corpus sample), overall and by shift
        bucket (:func:`~embgeo.analysis.shift.retrieval.space_retrieval`).
    index : {"hnsw", "ivf", "ivfpq", "sq8", "flat"}, optional
        Build this faiss index on the corpus and give its recall@k per bucket (:func:`index_sweep`
        against the exact neighbours of the search above), and with ``transforms`` its recall in each
        transformed space. ``index_params`` as for :func:`index_sweep`.
    random_state : int, Generator or None
    progress : None, bool or callable
        A bar, or ``progress(done, total, description)`` after every step; raising
        (:class:`Cancelled`) inside it stops the report.

    Returns
    -------
    ShiftReport

    Raises
    ------
    EmbeddingInputError
        Different dimensions, fewer than :data:`MIN_TEST_ROWS` rows in a set, NaN/inf rows (named),
        zero rows under cosine, k larger than the corpus allows, an unknown index kind, a sample_size,
        n_permutations or eps out of range (all refused before any pass over the rows).

    References
    ----------
    Liang, W., Zhang, Y., Kwon, Y., Yeung, S., Zou, J. "Mind the Gap: Understanding the Modality Gap in
    Multi-modal Contrastive Representation Learning", NeurIPS 2022. Gretton et al., "A Kernel
    Two-Sample Test", JMLR 2012. Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests", ICLR 2017.
    Dowson & Landau, JMVA 1982 (Frechet distance of Gaussians). Rippel, Mertens, Merhof, ICPR 2020
    (Mahalanobis OOD score). Sun, Ming, Zhu, Li, "Out-of-Distribution Detection with Deep Nearest
    Neighbors", ICML 2022 (k-th neighbour distance). Bjorck & Golub, Math. Comp. 1973 (principal angles).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> c = rng.normal(size=(400, 8))
    >>> r = shift_report(c, rng.normal(size=(100, 8)) + 2.0, metric="euclidean", k=5, sample_size=100,
    ...                  n_permutations=49, transforms=False)
    >>> round(r.centroid_gap / 32 ** 0.5, 1), r.mmd_p_value, r.classifier_auc > 0.9
    (1.0, 0.02, True)
    """
    metric = check_metric(metric)
    cs, qs = _as_set(corpus, "corpus"), _as_set(queries, "queries")
    check_same_dim(cs.vectors, qs.vectors)
    for es, role in ((cs, "corpus"), (qs, "queries")):
        if es.n < MIN_TEST_ROWS:
            raise EmbeddingInputError(
                f"too few {role} for the two-sample tests: {es.n} rows, at least {MIN_TEST_ROWS} needed")
        check_no_zero_rows(es.vectors, metric, role)
    k = check_k(k, cs.n - 1, context="corpus neighbours (the corpus's own reference excludes self)")
    if index is not None and index not in INDEX_KINDS:
        raise EmbeddingInputError(f"unknown index kind {index!r}; choose from {', '.join(INDEX_KINDS)}")
    if isinstance(sample_size, bool) or not isinstance(sample_size, (int, np.integer)) or sample_size < MIN_TEST_ROWS:
        raise EmbeddingInputError(f"sample_size must be an integer >= {MIN_TEST_ROWS}, got {sample_size!r}")
    if sample_size > MAX_SHIFT_SAMPLE:
        raise EmbeddingInputError(
            f"sample_size={sample_size:,} would hold a ({2 * sample_size:,})^2 float64 kernel matrix "
            f"({(2 * sample_size) ** 2 * 8 / 2**30:.1f} GiB) for the MMD; use at most {MAX_SHIFT_SAMPLE:,}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 0:
        raise EmbeddingInputError(f"n_permutations must be a non-negative integer, got {n_permutations!r}")
    eps = check_eps(eps)
    n_buckets = check_k(n_buckets, qs.n, what="n_buckets", context="queries")
    n_hardest = check_k(n_hardest, 10**12, what="n_hardest")
    n_components, components_note = subspace_dimension(check_k(n_components, 10**12, what="n_components"), cs.dim)
    if check_k(n_folds, MIN_TEST_ROWS, what="n_folds", context="folds (each set has at least that many rows)") < 2:
        raise EmbeddingInputError(f"n_folds must be at least 2 (cross-validation), got {n_folds}")
    query_labels, names = _labels(labels, qs), _names(qs)  # refused before any work, not after it
    rng = check_random_state(random_state)
    cosine = metric == "cosine"

    def prep(block):  # the rows the statistics describe, in float64
        return prepare_rows(block, metric, dtype=np.float64)

    total = 7 + (index is not None) + (3 if transforms else 0)
    notes, timings = [] if components_note is None else [components_note], {}
    with Progress(progress, total, "shift report") as bar:
        bar_at = lambda: sub_progress(progress, bar.done, total)  # noqa: E731
        clock = [time.perf_counter()]

        def step(name: str) -> None:  # one part done: its seconds, then the bar (a callback may cancel here)
            now = time.perf_counter()
            timings[name] = now - clock[0]
            clock[0] = now
            bar.update()

        mc, mq = cs.moments(normalize=cosine), qs.moments(normalize=cosine)
        step("moments")
        mean_norm = 1.0 if cosine else (mc.norm_mean + mq.norm_mean) / 2.0
        s = centroid_statistics(mc, mq, mean_norm)
        s["modality_gap"] = float(np.linalg.norm(mq.unit_mean - mc.unit_mean))
        s.update(covariance_statistics(mc, mq, n_components=n_components))
        sq_c, sq_q = (float(cs.n), float(qs.n)) if cosine else (mc.norm_sq_sum, mq.norm_sq_sum)
        s["mmd_linear"] = mmd_linear_from_sums(mc.mean * cs.n, sq_c, cs.n, mq.mean * qs.n, sq_q, qs.n)
        step("gaps_and_covariances")

        rows_c = sample_rows(cs.n, sample_size, rng, what="sample_size")
        rows_q = sample_rows(qs.n, sample_size, rng, what="sample_size")
        xc = prep(cs.vectors if rows_c is None else cs.vectors[rows_c])
        xq = prep(qs.vectors if rows_q is None else qs.vectors[rows_q])
        rbf = mmd_test(xc, xq, kernel="rbf", n_permutations=n_permutations, random_state=rng)
        lin = mmd_test(xc, xq, kernel="linear", n_permutations=n_permutations, random_state=rng)
        if not np.isfinite(rbf["bandwidth"]):
            notes.append("no two rows of the pooled MMD sample differ: the Gaussian bandwidth is undefined "
                         "(every kernel value is 1, so the Gaussian MMD^2 is 0)")
        step("mmd")
        clf_seed = int(rng.integers(2**31 - 1))  # the same folds for the raw rows and every transform
        clf = classifier_test(xc, xq, n_folds=n_folds, random_state=clf_seed)
        step("classifier")

        depth = min(k + 1, cs.n)
        table = exact_knn(cs.vectors, qs.vectors, k=depth, metric=metric, mean_distance=metric != "dot",
                          progress=bar_at(), validate=False)
        knn = table.distances[:, k - 1].astype(np.float64)
        margin = (table.distances[:, k] - table.distances[:, k - 1]).astype(np.float64) if depth > k else None
        rc = None if table.mean_distance is None else \
            table.mean_distance / np.where(knn > 0, knn, np.nan)
        if metric != "dot":
            copies = int(duplicate_mask(table).sum())
            if copies:
                notes.append(f"{copies:,} of {qs.n:,} queries coincide with a corpus row (nearest corpus distance "
                             "0): their own copy is one of their k neighbours, so their k-th neighbour distance "
                             "and the k-NN OOD rate are biased low")
        step("query_search")
        cached = cs.cached_neighbors(k, metric=metric)
        if cached is not None:
            ref = cached.distances[:, k - 1] if rows_c is None else cached.distances[rows_c, k - 1]
        elif rows_c is None:
            ref = cs.neighbors(k, metric=metric, progress=bar_at()).distances[:, k - 1]
        else:
            ref = exact_knn(cs.vectors, k=k, metric=metric, query_indices=rows_c, progress=bar_at(),
                            validate=False).distances[:, k - 1]
        knn_thr = float(np.percentile(ref, OOD_PERCENTILE))
        step("corpus_reference")
        s.pop("axes")
        # the reference rows are scored by fits that did not see them, and so are the queries (query i
        # by fold i mod n_folds): a fitted row sits closer to its own mean and covariance than a new one
        maha, maha_ref = held_out_scores(mc, cs.vectors, qs.vectors, held_out_folds(cs.n, rows_c), prepare=prep,
                                         eps=eps)
        maha_thr = float(np.percentile(maha_ref, OOD_PERCENTILE))
        if cs.n < ROWS_PER_DIM * cs.dim:
            notes.append(f"the corpus has {cs.n:,} rows for {cs.dim} dimensions (fewer than {ROWS_PER_DIM} per "
                         "dimension): its covariance is poorly estimated, so the Mahalanobis score mostly measures "
                         "the directions the corpus does not span; its OOD rate stays calibrated (held-out "
                         "reference rows) but tells the sets apart less well than the k-NN score")
        step("mahalanobis")

        recall = index_row = None
        if index is not None:
            recall, index_row = recall_by_index(cs, qs, table, k=k, metric=metric, kind=index,
                                                params=index_params, random_state=rng)
            step("index")
        transform_table = []
        if transforms:  # and the retrieval in each space, on the samples, by the queries' shift buckets
            search = dict(k=k, buckets=query_buckets(maha, n_buckets)[1][slice(None) if rows_q is None else rows_q],
                          n_buckets=n_buckets, index=index, index_params=index_params,
                          index_seed=int(rng.integers(2**31 - 1)))
            transform_table = transform_rows(cs, qs, mc, mq, xc_raw=cs.vectors if rows_c is None else cs.vectors[rows_c],
                                             xq_raw=qs.vectors if rows_q is None else qs.vectors[rows_q],
                                             base={**s, "mmd_rbf": rbf["mmd2"], "classifier_auc": clf["auc"],
                                                   "classifier_auc_ci": clf["ci"]}, metric=metric, eps=eps,
                                             n_folds=n_folds, classifier_seed=clf_seed, progress=bar, notes=notes,
                                             search=search)
            timings["transforms"] = time.perf_counter() - clock[0]

    order = np.argsort(-knn, kind="stable")[:n_hardest]
    summary = dict(
        name_corpus=cs.name, name_queries=qs.name, metric=metric, n_corpus=cs.n, n_queries=qs.n, dim=cs.dim, k=k,
        centroid_gap=s["centroid_gap"], centroid_gap_share=s["centroid_gap_share"],
        centroid_gap_in_spreads=s["centroid_gap_in_spreads"],
        mean_cosine_between_means=s["mean_cosine_between_means"], modality_gap=s["modality_gap"],
        covariance_frobenius=s["covariance_frobenius"],
        covariance_frobenius_relative=s["covariance_frobenius_relative"], frechet_distance=s["frechet_distance"],
        bures_wasserstein=s["bures_wasserstein"], total_variance_ratio=s["total_variance_ratio"],
        principal_angles=[float(a) for a in s["principal_angles"]], n_components=s["n_components"],
        mmd_linear=s["mmd_linear"], mmd_linear_sample=lin["mmd2"], mmd_linear_p_value=lin["p_value"],
        mmd_rbf=rbf["mmd2"],
        mmd_p_value=rbf["p_value"], mmd_bandwidth=rbf["bandwidth"], n_permutations=int(n_permutations),
        sample_size={"corpus": len(xc), "queries": len(xq)}, classifier_auc=clf["auc"],
        classifier_auc_ci=clf["ci"], n_folds=clf["n_folds"], knn_distance_median=float(np.median(knn)),
        knn_corpus_threshold=knn_thr, knn_ood_rate=float(np.mean(knn > knn_thr)),
        mahalanobis_median=float(np.median(maha)), mahalanobis_corpus_threshold=maha_thr,
        mahalanobis_ood_rate=float(np.mean(maha > maha_thr)),
    )
    if metric == "dot":
        notes.append("metric='dot': the k-th neighbour 'distance' is minus its inner product, and the relative "
                     "contrast is left out (dot is not a distance)")
    return ShiftReport(
        **summary,
        by_bucket=bucket_table(maha, knn, margin, rc, n_buckets, recall),
        hardest=[_query_row(int(i), names, query_labels, knn, maha) for i in order],
        by_label=_by_label(query_labels, knn, maha, knn_thr, maha_thr),
        index=index_row, transforms=transform_table, verdicts=shift_verdicts(summary, transform_table),
        notes=tuple(notes), timings=timings, knn_distance=knn, mahalanobis=maha, labels=query_labels, names=names, gap_vector=s["gap_vector"],
    )

