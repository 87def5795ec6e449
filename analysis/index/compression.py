"""Vector compression without an index: how much neighbour recall each byte budget keeps.

Each method encodes the corpus, searches the encoded corpus exhaustively with uncompressed queries
(asymmetric search, as an index would), and scores recall@k (set overlap) against exact search on
the full vectors. The search itself runs on the shared blocked engine (:func:`exact_knn`), so no
n x n matrix is formed; bytes per vector count only the stored codes (a fitted projection or
codebook is shared by all vectors and left out).

Cosine mode works on unit vectors; the asymmetric scores used for each method are:

* PCA (Pearson, 1901): keep the top-m principal directions P of the corpus (centred at mu). For
  euclidean, ``||q - x_hat||`` ranks like ``||P(q - mu) - z||``; for cosine/dot, ``<q, x_hat>`` ranks
  like ``<Pq, z>``, with ``z = P(x - mu)`` the stored code and ``x_hat = mu + P^T z``.
* prefix truncation (Matryoshka; Kusupati et al., NeurIPS 2022): the first m coordinates, re-normalised
  under cosine.
* random Gaussian projection (Johnson & Lindenstrauss, 1984; Dasgupta & Gupta, 2003): R with N(0, 1/m)
  entries; the same metric in the projected space.
* int8 scalar quantisation with faiss's 8-bit scalar quantiser (``QT_8bit``: each dimension's range
  on the corpus mapped to 256 levels), the codec of the index sweep's ``sq8``; search on the decoded
  vectors.
* binary (sign) codes (Charikar, STOC 2002): one bit per dimension, sign of ``x - mu``; Hamming distance
  ranks like the inner product of the +-1 codes. Optional re-ranking of the ``rerank`` best Hamming
  candidates by the full vectors (which then must be kept too).
* product quantisation (Jegou, Douze, Schmid, TPAMI 2011) with ``faiss.ProductQuantizer``: asymmetric
  distance to the decoded codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import (
    EmbeddingInputError,
    Result,
    check_random_state,
    hidden,
    metric as _field,
    prepare_rows,
    scan_moments,
)
from ..neighbors import exact_knn, recall_per_query, refine_distances
from .ground_truth import GroundTruth, ground_truth
from .queries import split_queries

COMPRESSION_METHODS = ("pca", "prefix", "random", "int8", "binary", "pq")


@dataclass(frozen=True, repr=False)
class CompressionSetting(Result):
    """One compression method at one strength."""

    _title = "compression setting"
    method: str = _field("pca, prefix (Matryoshka truncation), random (Gaussian projection), int8, binary, pq.")
    params: dict = _field("Strength: kept dimensions, PQ sub-quantisers and bits, re-ranking depth.")
    bytes_per_vector: float = _field("Bytes stored per vector (codes only; float32 for kept dimensions).")
    compression_ratio: float = _field("Full float32 size / bytes_per_vector.")
    recall_at_k: float = _field("Mean share of the exact k neighbours found by searching the compressed "
                                "vectors (set overlap).")
    needs_full_vectors: bool = _field("True when re-ranking reads the full vectors as well.", default=False)
    per_query_recall: np.ndarray = hidden()


@dataclass(frozen=True, repr=False)
class CompressionReport(Result):
    """Recall@k against exact search for each compression method and strength."""

    _title = "compression versus recall"
    k: int = _field("Neighbours per query.")
    n_queries: int = _field("Queries.")
    metric: str = _field("Similarity.")
    full_bytes_per_vector: int = _field("float32 bytes of one uncompressed vector (4 d).")
    settings: list = _field("One CompressionSetting per method and strength.")
    exact: GroundTruth = hidden()


# --------------------------------------------------------------------------------------------- encoders
# Each returns (corpus codes, query codes, metric to search them with) as float32 arrays, fitted on
# the (prepared) corpus only.


def _pca_basis(x):
    """Corpus mean and principal directions, largest variance first (blocked moments, never n x n)."""
    moments = scan_moments(x)
    _, vecs = moments.principal_axes()
    return moments.mean.astype(np.float32), vecs.astype(np.float32)


def _pca(x, q, m, metric, basis):
    mu, vecs = basis
    top = vecs[:, :m]                                               # (d, m)
    z = (x - mu) @ top
    if metric == "euclidean":
        return z, (q - mu) @ top, "euclidean"
    return z, q @ top, "dot"


def _prefix(x, q, m, metric):
    return x[:, :m], q[:, :m], metric          # cosine re-normalises the prefixes in the engine


def _random_projection(x, q, m, metric, rng):
    r = rng.normal(0.0, 1.0 / math.sqrt(m), size=(x.shape[1], m)).astype(np.float32)
    return x @ r, q @ r, metric


def _int8(x, q, metric):
    """faiss's 8-bit scalar quantiser (the codec of the index sweep's ``sq8``), decoded for the search."""
    import faiss

    sq = faiss.ScalarQuantizer(x.shape[1], faiss.ScalarQuantizer.QT_8bit)
    sq.train(np.ascontiguousarray(x))
    decoded = sq.decode(sq.compute_codes(np.ascontiguousarray(x)))
    return decoded, q, "dot" if metric == "cosine" else metric


def _binary_codes(x, q):
    mu = x.mean(axis=0)
    return np.where(x > mu, 1.0, -1.0).astype(np.float32), np.where(q > mu, 1.0, -1.0).astype(np.float32)


def _pq(x, q, m, nbits, metric, seed):
    import faiss

    pq = faiss.ProductQuantizer(x.shape[1], m, nbits)
    pq.cp.seed = int(seed)
    pq.train(np.ascontiguousarray(x))
    decoded = pq.decode(pq.compute_codes(np.ascontiguousarray(x)))
    return decoded, q, "dot" if metric == "cosine" else metric, float(pq.code_size)


# --------------------------------------------------------------------------------------------- driver


def _default_levels(d: int, n: int) -> dict:
    dims = sorted({max(1, d // f) for f in (2, 4, 8)}, reverse=True)
    pq_ms = [m for m in (d // 4, d // 8) if m >= 1 and d % m == 0]
    nbits = int(np.clip(math.floor(math.log2(max(2, n / 39))), 1, 8))
    return {"pca": dims, "prefix": dims, "random": dims, "int8": [None], "binary": [0, 10],
            "pq": [(m, nbits) for m in pq_ms]}


def _search(codes, qcodes, k, metric, backend):
    return exact_knn(codes, qcodes, k=k, metric=metric, backend=backend, progress=False, validate=False).indices


def _rerank(x, q, candidates, k, metric):
    """Re-order candidate ids by full-vector distance; keep the best k."""
    dist = refine_distances(x, q, candidates, "euclidean" if metric == "cosine" else metric)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(candidates, order, axis=1)


def compression_report(data, *, queries=None, k: int = 10, metric: str | None = None, holdout=None,
                       methods=COMPRESSION_METHODS, levels: dict | None = None, random_state=0,
                       backend: str = "auto") -> CompressionReport:
    """Recall@k of exhaustive search over compressed vectors, for several methods and strengths.

    Parameters
    ----------
    data : EmbeddingSet or array of shape (n, d)
    queries : array of shape (m, d), "benchmark", or None
        As in :func:`~embgeo.analysis._index.index_report`; by default ``holdout`` rows are queries.
    k : int
        Neighbours per query.
    metric : {"cosine", "dot", "euclidean"}, optional
    holdout : int or float, optional
    methods : tuple of str
        From ``pca``, ``prefix``, ``random``, ``int8``, ``binary``, ``pq``.
    levels : dict, optional
        Strengths per method: kept dimensions for pca/prefix/random (e.g. ``[32, 16, 8]``), re-ranking
        depth as a multiple of k for binary (0 = none), ``(m, nbits)`` pairs for pq.

    Returns
    -------
    CompressionReport

    References
    ----------
    Pearson, 1901 (PCA); Kusupati et al., "Matryoshka representation learning", NeurIPS 2022;
    Dasgupta & Gupta, "An elementary proof of a theorem of Johnson and Lindenstrauss", 2003;
    Charikar, "Similarity estimation techniques from rounding algorithms", STOC 2002 (sign bits);
    Jegou, Douze, Schmid, "Product quantization for nearest neighbor search", TPAMI 2011.

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 32)).astype("float32")
    >>> rep = compression_report(x, k=10, holdout=100, methods=("int8",))
    >>> rep.settings[0].recall_at_k > 0.9
    True
    """
    unknown = set(methods) - set(COMPRESSION_METHODS)
    if unknown:
        raise EmbeddingInputError(f"unknown compression methods {sorted(unknown)}; choose from "
                                  f"{', '.join(COMPRESSION_METHODS)}")
    split = split_queries(data, queries, holdout=holdout, metric=metric, random_state=random_state)
    ground = ground_truth(split.eset, k=k, _split=split, backend=backend)
    metric_ = ground.metric
    x = np.ascontiguousarray(prepare_rows(split.corpus, metric_), dtype=np.float32)
    q = np.ascontiguousarray(prepare_rows(split.queries, metric_), dtype=np.float32)
    n, d = x.shape
    plan = {**_default_levels(d, n), **(levels or {})}
    rng = check_random_state(random_state)
    truth = ground.truth
    settings, basis = [], None

    def add(method, params, nbytes, found, full=False):
        per_query = recall_per_query(found, truth)
        settings.append(CompressionSetting(
            method=method, params=params, bytes_per_vector=float(nbytes), compression_ratio=4.0 * d / nbytes,
            recall_at_k=float(per_query.mean()), needs_full_vectors=full, per_query_recall=per_query))

    for method in methods:
        for level in plan[method]:
            if method in ("pca", "prefix", "random"):
                m = int(level)
                if not 1 <= m <= d:
                    raise EmbeddingInputError(f"{method}: kept dimensions must lie in [1, {d}], got {m}")
                if method == "pca":
                    basis = basis or _pca_basis(x)
                    codes, qc, sm = _pca(x, q, m, metric_, basis)
                elif method == "prefix":
                    codes, qc, sm = _prefix(x, q, m, metric_)
                else:
                    codes, qc, sm = _random_projection(x, q, m, metric_, rng)
                add(method, {"dims": m}, 4 * m, _search(codes, qc, k, sm, backend))
            elif method == "int8":
                codes, qc, sm = _int8(x, q, metric_)
                add(method, {}, d, _search(codes, qc, k, sm, backend))
            elif method == "binary":
                depth = int(level or 0)
                codes, qc = _binary_codes(x, q)
                n_cand = min(n, max(k, depth * k))
                cand = _search(codes, qc, n_cand, "dot", backend)
                found = _rerank(x, q, cand, k, metric_) if depth else cand[:, :k]
                add(method, {"rerank": n_cand if depth else 0}, math.ceil(d / 8), found, full=bool(depth))
            else:
                m, nbits = (int(v) for v in level)
                if d % m:
                    raise EmbeddingInputError(f"pq: m={m} sub-quantisers must divide the dimension d={d}")
                codes, qc, sm, nbytes = _pq(x, q, m, nbits, metric_, rng.integers(2**31 - 1))
                add(method, {"m": m, "nbits": nbits}, nbytes, _search(codes, qc, k, sm, backend))
    return CompressionReport(k=int(k), n_queries=ground.n_queries, metric=metric_, full_bytes_per_vector=4 * d,
                             settings=settings, exact=ground)
