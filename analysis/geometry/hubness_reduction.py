"""Hubness reduction: re-scoring k-NN candidate lists so that hubs stop crowding every list.

In high dimension a few points (hubs) sit among the nearest neighbours of very many others
(Radovanovic et al., 2010). The methods here re-score each query's candidate neighbours with
statistics of both ends of the pair, which makes similarity more symmetric:

==================  ==========================================================================
``local_scaling``   exp(-d^2 / (sigma_x sigma_y)), sigma = distance to the k-th neighbour
                    (Zelnik-Manor & Perona, 2005; for hubness: Schnitzer et al., 2012)
``nicdm``           d / sqrt(mu_x mu_y), mu = mean distance to the k nearest neighbours
                    (Jegou et al., 2007; Schnitzer et al., 2012); lower is nearer
``mp_empirical``    mutual proximity P(D_x > d and D_y > d), counted over reference points
``mp_gaussian``     mutual proximity with D_x ~ N(mu_x, sigma_x^2), D_x and D_y independent
                    (Schnitzer, Flexer, Schedl, Widmer, JMLR 2012)
``csls``            2 s(x, y) - r(x) - r(y), r = mean similarity to the k nearest neighbours on
                    the other side (Conneau et al., ICLR 2018)
``inverted_softmax`` beta s(q, y) - log sum_b exp(beta s(b, y)) over a query bank B
                    (Smith et al., ICLR 2017)
``qb_norm``         dynamic inverted softmax: inverted softmax only for queries whose top raw
                    candidate is in the bank's activation set (Bogolin et al., CVPR 2022)
==================  ==========================================================================

Every method re-ranks a candidate list of ``n_candidates`` exact neighbours from the shared engine
(:func:`embgeo.analysis.exact_knn`); items outside the list cannot enter the result, the usual
practice (scikit-hubness does the same) that keeps the cost at one k-NN search plus O(n) statistics.
Statistics over all points (mutual proximity, the query bank) are computed by blocked products
against a random sample of reference points, never as an n x n matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._core import (
    EmbeddingInputError,
    Result,
    as_float32_matrix,
    check_k,
    check_metric,
    check_random_state,
    check_same_dim,
    metric as _field,
    prepare_rows,
    skewness,
    validate_estimator_input,
)
from ..embeddings import EmbeddingSet, as_embedding_set
from ..neighbors import Neighbors, exact_knn, k_occurrence
from .hubness import robin_hood_index

METHODS = ("local_scaling", "nicdm", "mp_empirical", "mp_gaussian", "csls", "inverted_softmax", "qb_norm")
#: Methods whose score is a similarity in [0, 1]: their secondary distance is 1 - score (else -score).
_UNIT_SCORES = ("local_scaling", "mp_empirical", "mp_gaussian")
#: Methods defined on distances; they refuse metric="dot", whose "distance" -<x, y> is not one.
DISTANCE_METHODS = ("local_scaling", "nicdm", "mp_empirical", "mp_gaussian")
#: Bytes of one float32 score tile in the blocked passes.
_TILE_BYTES = 64 * 2**20


# --------------------------------------------------------------------------------------------- blocked pairs


def _similarity(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Similarity as :attr:`Neighbors.similarities` defines it, for prepared blocks a, b."""
    s = a @ b.T
    if metric == "euclidean":
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * s
        return -np.sqrt(np.clip(d2, 0.0, None))
    return s


def _distance(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Chord (cosine) or Euclidean distance for prepared blocks a, b."""
    if metric == "cosine":
        return np.sqrt(np.clip(2.0 - 2.0 * (a @ b.T), 0.0, None))
    return -_similarity(a, b, metric)


def _rows_per_tile(n_cols: int, bytes_per: int = 8) -> int:
    return max(1, _TILE_BYTES // max(1, n_cols * bytes_per))


def _reference_distances(x: np.ndarray, ref: np.ndarray, ref_ids: np.ndarray | None, metric: str) -> np.ndarray:
    """Distances (len(x), len(ref)) float32; a row's own reference column is NaN when x is the corpus."""
    ref_p = prepare_rows(ref, metric)
    out = np.empty((x.shape[0], ref.shape[0]), dtype=np.float32)
    step = _rows_per_tile(ref.shape[0], 4)
    for start in range(0, x.shape[0], step):
        out[start:start + step] = _distance(prepare_rows(x[start:start + step], metric), ref_p, metric)
    if ref_ids is not None:
        out[ref_ids, np.arange(len(ref_ids))] = np.nan
    return out


def _bank_statistics(corpus: np.ndarray, bank: np.ndarray, bank_ids: np.ndarray | None, metric: str,
                     beta: float) -> tuple[np.ndarray, np.ndarray]:
    """log sum_b exp(beta s(b, y)) for every corpus item y, and the activation set.

    The activation set holds the corpus items that are the top-1 neighbour of at least one bank
    query (Bogolin et al., 2022). A bank query that is itself a corpus row (``bank_ids``) skips that
    row. Both come from one blocked pass over bank x corpus tiles, in log space (no overflow).
    """
    n = corpus.shape[0]
    log_z = np.full(n, -np.inf)
    best_s = np.full(bank.shape[0], -np.inf)
    best_i = np.zeros(bank.shape[0], dtype=np.int64)
    c_step = 65_536
    for c_start in range(0, n, c_step):
        cb = prepare_rows(corpus[c_start:c_start + c_step], metric)
        b_step = _rows_per_tile(cb.shape[0])
        for b_start in range(0, bank.shape[0], b_step):
            s = _similarity(prepare_rows(bank[b_start:b_start + b_step], metric), cb, metric).astype(np.float64)
            if bank_ids is not None:
                own = bank_ids[b_start:b_start + b_step] - c_start
                rows = np.flatnonzero((own >= 0) & (own < cb.shape[0]))
                s[rows, own[rows]] = -np.inf
            sl = slice(b_start, b_start + s.shape[0])
            top = np.argmax(s, axis=1)
            top_s = s[np.arange(len(s)), top]
            better = top_s > best_s[sl]
            best_s[sl] = np.where(better, top_s, best_s[sl])
            best_i[sl] = np.where(better, c_start + top, best_i[sl])
            log_z[c_start:c_start + cb.shape[0]] = np.logaddexp(
                log_z[c_start:c_start + cb.shape[0]], logsumexp(beta * s, axis=0))
    active = np.zeros(n, dtype=bool)
    active[best_i[np.isfinite(best_s)]] = True
    return log_z, active


# --------------------------------------------------------------------------------------------- estimator


class HubnessReduction(BaseEstimator):
    """Re-rank k-NN candidate lists with a hubness-reduction score.

    Parameters
    ----------
    method : {"local_scaling", "nicdm", "mp_empirical", "mp_gaussian", "csls", "inverted_softmax", "qb_norm"}
        See the module docstring for each score.
    k : int
        Neighbourhood size of the local statistics (sigma, mu, r); 10 is the usual choice.
    n_candidates : int
        Exact neighbours re-ranked per query (clipped to the corpus size).
    metric : {"cosine", "dot", "euclidean"}
        Distance-based methods refuse ``"dot"``. Similarity-based methods use the similarity of
        :attr:`Neighbors.similarities` (negative distance for ``"euclidean"``); CSLS was designed for
        cosine, and on a planted Euclidean hub it halves the hub's k-occurrence but can raise the
        skewness of N_k.
    n_reference : int
        Reference points sampled from the corpus for mutual proximity (all points when the corpus
        is no larger). Empirical MP keeps an (n, n_reference) float32 table.
    n_bank : int
        Query-bank size when no bank is passed to :meth:`fit`: that many corpus rows, sampled.
    beta : float
        Inverse temperature of the inverted softmax; 20 as in Bogolin et al. for cosine scores.
    random_state : int or Generator, optional
        Seeds the reference and bank samples.
    backend : str
        Passed to :func:`exact_knn`.

    Attributes
    ----------
    corpus_ : EmbeddingSet
    sigma_, mu_ : ndarray of shape (n,)
        Distance to the k-th neighbour, mean distance to the k nearest neighbours.
    r_ : ndarray of shape (n,)
        Mean similarity of each corpus item to its k nearest bank vectors (CSLS).
    log_z_, active_ : ndarray of shape (n,)
        Inverted-softmax log normaliser and activation set (query-bank methods).
    reference_ : ndarray of int
        Corpus rows used as reference points (mutual proximity).

    References
    ----------
    Schnitzer, D., Flexer, A., Schedl, M., Widmer, G. "Local and Global Scaling Reduce Hubs in
    Space", JMLR 13, 2012.
    Conneau, A., Lample, G., Ranzato, M., Denoyer, L., Jegou, H. "Word Translation Without Parallel
    Data", ICLR 2018.
    Smith, S. L., Turban, D. H. P., Hamblin, S., Hammerla, N. Y. "Offline bilingual word vectors,
    orthogonal transformations and the inverted softmax", ICLR 2017.
    Bogolin, S.-V., Croitoru, I., Jin, H., Liu, Y., Albanie, S. "Cross Modal Retrieval with
    Querybank Normalisation", CVPR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 50)).astype(np.float32)
    >>> dist, ids = HubnessReduction(method="csls", k=10).fit(x).kneighbors(n_neighbors=5)
    >>> ids.shape, bool((np.diff(dist, axis=1) >= 0).all())
    ((500, 5), True)
    """

    def __init__(self, method="csls", k=10, n_candidates=50, metric="cosine", n_reference=1000,
                 n_bank=5000, beta=20.0, random_state=0, backend="auto"):
        self.method = method
        self.k = k
        self.n_candidates = n_candidates
        self.metric = metric
        self.n_reference = n_reference
        self.n_bank = n_bank
        self.beta = beta
        self.random_state = random_state
        self.backend = backend

    # ----------------------------------------------------------------------------------- fit
    def fit(self, X, y=None, querybank=None):
        """Learn the corpus-side statistics of ``self.method``; returns ``self``.

        Parameters
        ----------
        X : EmbeddingSet or array-like of shape (n, d)
            The corpus. A set's self k-NN table comes from (and is cached on) the set, so a report
            that has searched it already costs no second search.
        y : ignored
        querybank : array-like of shape (m, d), optional
            Typical queries (for example training queries): CSLS takes r(y) over them and the
            inverted softmax normalises by them. Default: the corpus itself (CSLS) or ``n_bank``
            sampled corpus rows (inverted softmax), a row never counting against itself.
        """
        if self.method not in METHODS:
            raise EmbeddingInputError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        metric = check_metric(self.metric)
        if metric == "dot" and self.method in DISTANCE_METHODS:
            raise EmbeddingInputError(
                f"{self.method} is defined on distances; metric='dot' has none. Use 'cosine' or 'euclidean'"
            )
        if isinstance(X, EmbeddingSet):
            es = X
            self.n_features_in_ = es.dim
        else:  # the scikit-learn contract: n_features_in_, its messages for NaN, 1-D, sparse, ...
            es = EmbeddingSet(validate_estimator_input(self, X, reset=True, min_samples=2), validate=False)
        k = check_k(self.k, es.n - 1, context="neighbours in the corpus (self excluded)")
        rng = check_random_state(self.random_state)
        x = es.vectors
        bank = None if querybank is None else as_float32_matrix(querybank, name="querybank")
        if bank is not None:
            check_same_dim(x, bank)
        self.corpus_ = es
        # Search once at the candidate depth (cached on the set); the statistics use its head.
        n_cand = max(k, min(int(self.n_candidates), es.n - 1))
        nb = es.neighbors(n_cand, metric=metric, backend=self.backend).head(k)
        self.sigma_ = nb.distances[:, k - 1].astype(np.float64)
        self.mu_ = nb.distances.mean(axis=1, dtype=np.float64)
        if self.method == "csls":
            if bank is None:
                self.r_ = nb.similarities.mean(axis=1)
            else:
                check_k(k, len(bank), context="query-bank vectors")
                back = exact_knn(bank, x, k, metric=metric, backend=self.backend)
                self.r_ = back.similarities.mean(axis=1)
        if self.method in ("mp_empirical", "mp_gaussian"):
            m = min(es.n, int(self.n_reference))
            self.reference_ = np.sort(rng.choice(es.n, size=m, replace=False))
            ref_d = _reference_distances(x, x[self.reference_], self.reference_, metric)
            self.ref_mean_ = np.nanmean(ref_d, axis=1, dtype=np.float64)
            self.ref_std_ = np.nanstd(ref_d, axis=1, dtype=np.float64)
            self.ref_distances_ = ref_d if self.method == "mp_empirical" else None
        if self.method in ("inverted_softmax", "qb_norm"):
            if bank is None:
                ids = np.sort(rng.choice(es.n, size=min(es.n, int(self.n_bank)), replace=False))
                bank, bank_ids = x[ids], ids
            else:
                bank_ids = None
            self.log_z_, self.active_ = _bank_statistics(x, bank, bank_ids, metric, float(self.beta))
        return self

    # ----------------------------------------------------------------------------------- query
    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Re-ranked neighbours of the queries ``X`` (or of every corpus item, self excluded).

        Follows scikit-learn's ``KNeighborsMixin.kneighbors``: ``(distances, indices)``, nearest first.

        Parameters
        ----------
        X : array-like of shape (m, d), optional
            New queries; by default the corpus is queried against itself (each item's own row left out).
        n_neighbors : int, optional
            Neighbours returned per query (default ``k``); at most ``n_candidates``.
        return_distance : bool
            Return the secondary distances too (default, as scikit-learn).

        Returns
        -------
        distances : ndarray of float64, shape (m, n_neighbors), when ``return_distance``
            The hubness-reduced (secondary) distance, ascending: ``d / sqrt(mu_x mu_y)`` for NICDM,
            ``1 - LS`` for local scaling, ``1 - MP`` for mutual proximity, and the negated score for
            CSLS, the inverted softmax and QB-Norm (which define a similarity, not a distance).
        indices : ndarray of int64, shape (m, n_neighbors)
            Corpus rows, nearest first. Ties in the score keep the original distance order.
        """
        check_is_fitted(self)
        es, metric, k = self.corpus_, self.metric, int(self.k)
        self_join = X is None
        n_avail = es.n - 1 if self_join else es.n
        n_cand = max(k, min(int(self.n_candidates), n_avail))
        n_neighbors = k if n_neighbors is None else n_neighbors
        check_k(n_neighbors, n_cand, what="n_neighbors", context="candidates (n_candidates)")
        if self_join:
            cand = es.neighbors(n_cand, metric=metric, backend=self.backend)
            q = None
        else:
            q = as_float32_matrix(validate_estimator_input(self, X, reset=False), name="queries")
            cand = exact_knn(es.vectors, q, n_cand, metric=metric, backend=self.backend)
        scores = self._scores(cand, q, self_join)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :n_neighbors]
        ids = np.take_along_axis(cand.indices, order, axis=1).astype(np.int64)  # scikit-learn returns int64
        if not return_distance:
            return ids
        top = np.take_along_axis(scores, order, axis=1)
        return (1.0 - top if self.method in _UNIT_SCORES else -top), ids

    def _scores(self, cand: Neighbors, q: np.ndarray | None, self_join: bool) -> np.ndarray:
        """Score of every candidate pair (higher is nearer), shape (m, n_candidates)."""
        k, ids, d = int(self.k), cand.indices, cand.distances.astype(np.float64)
        s = cand.similarities
        if self_join:
            sigma_q, mu_q = self.sigma_, self.mu_
        else:
            sigma_q = d[:, k - 1]
            mu_q = d[:, :k].mean(axis=1)
        method = self.method
        if method == "local_scaling":
            denom = np.maximum(sigma_q[:, None] * self.sigma_[ids], np.finfo(np.float64).tiny)
            return np.exp(-d ** 2 / denom)
        if method == "nicdm":
            return -d / np.sqrt(np.maximum(mu_q[:, None] * self.mu_[ids], np.finfo(np.float64).tiny))
        if method == "csls":
            r_q = s[:, :k].mean(axis=1)
            return 2 * s - r_q[:, None] - self.r_[ids]
        if method in ("inverted_softmax", "qb_norm"):
            inverted = float(self.beta) * s - self.log_z_[ids]
            if method == "inverted_softmax":
                return inverted
            use = self.active_[ids[:, 0]]  # top raw candidate in the activation set
            return np.where(use[:, None], inverted, s)
        # mutual proximity: the query's distances to the reference points
        if self_join:
            ref_q, mean_q, std_q = self.ref_distances_, self.ref_mean_, self.ref_std_
        else:
            ref_q = _reference_distances(q, self.corpus_.vectors[self.reference_], None, self.metric)
            mean_q = ref_q.mean(axis=1, dtype=np.float64)
            std_q = ref_q.std(axis=1, dtype=np.float64)
        if method == "mp_gaussian":
            sf_q = norm.sf(d, loc=mean_q[:, None], scale=np.maximum(std_q[:, None], 1e-300))
            sf_y = norm.sf(d, loc=self.ref_mean_[ids], scale=np.maximum(self.ref_std_[ids], 1e-300))
            return sf_q * sf_y
        return self._mp_empirical(d, ids, ref_q)

    def _mp_empirical(self, d, ids, ref_q) -> np.ndarray:
        """Share of reference points farther from both x and y than d(x, y) (NaN self cells never count)."""
        out = np.empty(d.shape, dtype=np.float64)
        ref_y_all = self.ref_distances_
        m = ref_y_all.shape[1]
        step = max(1, (32 * 2**20) // max(1, d.shape[1] * m))
        for start in range(0, len(d), step):
            sl = slice(start, start + step)
            dd = d[sl][:, :, None].astype(np.float32)
            farther_q = ref_q[sl][:, None, :] > dd
            farther_y = ref_y_all[ids[sl]] > dd
            out[sl] = (farther_q & farther_y).sum(axis=2) / m
        return out


# --------------------------------------------------------------------------------------------- report


@dataclass(frozen=True, repr=False)
class HubnessReductionReport(Result):
    """k-occurrence skewness of the k-NN graph before and after each hubness-reduction method."""

    _title = "hubness before and after re-scoring the k-NN lists"
    k: int = _field("Neighbours per list (the k of N_k).")
    metric: str = _field("Similarity used for the candidate lists.")
    n: int = _field("Points (each is a query against the rest).")
    n_candidates: int = _field("Exact neighbours re-ranked per point.")
    skewness_before: float = _field(
        "Skewness of N_k of the plain k-NN graph; above ~1 means strong hubs.", "Radovanovic et al., JMLR 2010")
    skewness_after: dict = _field("Skewness of N_k after each method (lower is better).",
                                  "Schnitzer et al., JMLR 2012; Conneau et al., 2018; Bogolin et al., 2022")
    robin_hood_before: float = _field(
        "Robin Hood index of N_k: share of neighbour slots to move for N_k = k.", "Feldbauer et al., 2018")
    robin_hood_after: dict = _field("Robin Hood index after each method.", "Feldbauer et al., 2018")
    max_occurrence_before: int = _field("Largest N_k (the strongest hub) before.")
    max_occurrence_after: dict = _field("Largest N_k after each method.")
    best_method: str = _field("Method with the lowest skewness after.")


def hubness_reduction_report(data, *, k: int = 10, metric: str = "cosine", methods=None,
                             n_candidates: int = 50, random_state=0, backend: str = "auto",
                             **params) -> HubnessReductionReport:
    """Compare hubness (skewness of N_k) before and after each hubness-reduction method.

    Every point queries the rest; the plain k-NN graph gives N_k before, and each method's re-ranked
    top-k lists give N_k after. The candidate table is computed once and shared through the set's
    neighbour cache.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    k : int
        Neighbours per list, also the neighbourhood size of the methods' local statistics.
    metric : {"cosine", "dot", "euclidean"}
    methods : sequence of str, optional
        Default: every method defined for ``metric`` (distance-based ones are skipped for "dot").
        When the default query bank holds the whole corpus (n <= ``n_bank``), every point's top
        candidate is its own top-1 as a bank row, so ``qb_norm`` equals ``inverted_softmax`` here;
        they differ for new queries or a separate bank.
    n_candidates : int
        Exact neighbours re-ranked per point.
    **params
        Passed to :class:`HubnessReduction` (``n_reference``, ``n_bank``, ``beta``).

    Returns
    -------
    HubnessReductionReport

    References
    ----------
    Radovanovic, Nanopoulos, Ivanovic, "Hubs in space", JMLR 2010 (skewness of N_k).
    Feldbauer, Leodolter, Brandt, Flexer, "A comprehensive empirical comparison of hubness reduction
    in high-dimensional spaces", KAIS 2019 (the comparison this report reproduces).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 100)).astype(np.float32)
    >>> rep = hubness_reduction_report(x, k=10, metric="euclidean", methods=["nicdm", "mp_gaussian"])
    >>> rep.skewness_before > 5 > 1 > rep.skewness_after["mp_gaussian"]
    True
    """
    es = as_embedding_set(data)
    metric = check_metric(metric)
    if methods is None:
        methods = [m for m in METHODS if not (metric == "dot" and m in DISTANCE_METHODS)]
    methods = list(methods)
    for m in methods:
        if m not in METHODS:
            raise EmbeddingInputError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    n_cand = max(k, min(int(n_candidates), es.n - 1))
    es.neighbors(n_cand, metric=metric, backend=backend)  # one search serves every method
    before = k_occurrence(es.neighbors(k, metric=metric, backend=backend), es.n)
    skew, rh, top = {}, {}, {}
    for m in methods:
        est = HubnessReduction(method=m, k=k, n_candidates=n_cand, metric=metric,
                               random_state=random_state, backend=backend, **params).fit(es)
        n_k = k_occurrence(est.kneighbors(n_neighbors=k, return_distance=False), es.n)
        skew[m], rh[m], top[m] = skewness(n_k), robin_hood_index(n_k, k), int(n_k.max())
    return HubnessReductionReport(
        k=int(k), metric=metric, n=es.n, n_candidates=n_cand, skewness_before=skewness(before),
        skewness_after=skew, robin_hood_before=robin_hood_index(before, k), robin_hood_after=rh,
        max_occurrence_before=int(before.max()), max_occurrence_after=top,
        best_method=min(skew, key=skew.get) if skew else "",
    )


def reduce_hubness(corpus, queries=None, *, method: str = "csls", k: int = 10, n_neighbors=None,
                   metric: str = "cosine", querybank=None, **params) -> np.ndarray:
    """Re-ranked neighbour indices in one call: the indices of
    ``HubnessReduction(...).fit(corpus).kneighbors(queries)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(300, 20)).astype(np.float32)
    >>> reduce_hubness(x, method="nicdm", k=5, metric="euclidean").shape
    (300, 5)
    """
    est = HubnessReduction(method=method, k=k, metric=metric, **params).fit(corpus, querybank=querybank)
    return est.kneighbors(queries, n_neighbors=n_neighbors, return_distance=False)
