"""How similar are two representations of the same items? CKA, CCA, Procrustes, mutual k-NN, RSA.

* :func:`representation_similarity` compares two sets (or arrays) of the same n items, of any two
  dimensions, with the statistics of the representation-similarity literature. The linear ones
  (linear and debiased CKA, SVCCA, PWCCA, the Procrustes and angular shape distances) come from one
  streamed pass of mergeable cross-moments (:class:`~embgeo.analysis._core.CrossMoments`), so they
  work on memory-mapped sets without loading either whole; the kernel and distance-matrix ones (RBF
  CKA, RSA) are quadratic in n and run on a stated row sample; mutual k-NN reads the two sets' shared
  neighbour tables (:meth:`EmbeddingSet.neighbors`).
* :func:`~.matrix.similarity_matrix` (in :mod:`.matrix`) fills a layers x layers or models x models
  matrix of one statistic (the CKA heat map), from one pass over all the sets' rows (their stacked
  cross-moments).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import (
    CROSS_BLOCK_ROWS,
    CrossMoments,
    EmbeddingInputError,
    Result,
    check_k,
    check_metric,
    check_random_state,
    hidden,
    median_distance,
    metric as _field,
    pairwise_sq_distances,
    pca_dimension,
    sample_rows,
    scan_cross_moments,
    spearman,
    sub_progress,
    unit_rows,
)
from ..embeddings import EmbeddingSet, as_embedding_set
from ..neighbors import recall_per_query

#: Variance share of the SVD directions SVCCA keeps on each side (Raghu et al., 2017).
SVCCA_SHARE = 0.99
#: Eigenvalues of a scatter below this fraction of its largest are null directions (left out of CCA).
CCA_RANK_TOL = 1e-10
#: Default and largest rows of the sampled (quadratic) statistics, RBF CKA and RSA (s x s float64 matrices).
SIMILARITY_SAMPLE, MAX_SIMILARITY_SAMPLE = 2_000, 20_000
#: The statistics :func:`linear_statistics` computes from cross-moments, and the value of a set with itself.
LINEAR_STATISTICS = {"linear_cka": 1.0, "debiased_cka": 1.0, "svcca": 1.0, "pwcca": 1.0,
                     "procrustes_distance": 0.0, "angular_shape_distance": 0.0}
_CKA_REF = "Kornblith, Norouzi, Lee & Hinton, ICML 2019"


@dataclass(frozen=True, repr=False)
class RepresentationSimilarity(Result):
    """Two representations of the same n items compared by the representation-similarity statistics."""

    _title = "how similar two representations of the same items are"
    name_a: str = _field("Name of representation A.")
    name_b: str = _field("Name of representation B.")
    n: int = _field("Items (rows) compared.")
    dim_a: int = _field("Dimension of A.")
    dim_b: int = _field("Dimension of B.")
    linear_cka: float = _field(
        "Linear CKA ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) over all n items: 1 = the same up to "
        "rotation and isotropic scaling; biased upwards at small n / large d.", _CKA_REF)
    debiased_cka: float = _field(
        "Linear CKA from the unbiased HSIC estimator: near 0 for independent representations at any n.",
        "Song et al., JMLR 2012; Kornblith et al., ICML 2019; Nguyen, Raghu & Kornblith, ICLR 2021")
    rbf_cka: float = _field(
        "CKA with Gaussian kernels (bandwidth = the sample's median pairwise Euclidean distance over the "
        "pairs that do not coincide, per space) "
        "on `sample_size` items.", _CKA_REF)
    svcca: float = _field(
        "Mean canonical correlation after keeping each side's top SVD directions (99 % of the variance).",
        "Raghu, Gilmer, Yosinski & Sohl-Dickstein, NeurIPS 2017")
    svcca_dims: tuple = _field("SVD directions SVCCA kept in A and in B.")
    pwcca: float = _field(
        "Projection-weighted mean canonical correlation, weighted by how much of the smaller-dimensional "
        "representation (A on a tie) each canonical variate accounts for.",
        "Morcos, Raghu & Bengio, NeurIPS 2018")
    procrustes_distance: float = _field(
        "min over orthogonal Q of ||X - Y Q||_F after centring and scaling each to unit Frobenius norm "
        "(the smaller padded with zeros): sqrt(2 - 2 ||Xc^T Yc||_*); 0 = a rotation, at most sqrt(2).",
        "Schonemann 1966; Williams, Kunz, Kornblith & Linderman, NeurIPS 2021")
    angular_shape_distance: float = _field(
        "arccos of the normalised nuclear norm ||Xc^T Yc||_*, in radians: a metric on shapes, 0 = a "
        "rotation (with scaling and translation), pi/2 = orthogonal.",
        "Williams, Kunz, Kornblith & Linderman, NeurIPS 2021")
    mutual_knn: float | None = _field(
        "Mean over items of |kNN_A(i) & kNN_B(i)| / k (self excluded), from the sets' neighbour tables: "
        "1 = the same neighbours, k / (n - 1) = unrelated. None when not computed (see notes).",
        "Huh, Cheung, Wang & Isola, ICML 2024")
    rsa_spearman: float = _field(
        "Spearman correlation of the two pairwise-distance matrices' upper triangles on `sample_size` items.",
        "Kriegeskorte, Mur & Bandettini, Front. Syst. Neurosci. 2008")
    k: int = _field("Neighbours per item of mutual k-NN.")
    metric: str = _field("Metric of the neighbour tables and the RSA distances (cosine: 1 - cos).")
    sample_size: int = _field("Items of the sample RBF CKA and RSA are computed on (all n when smaller).")
    canonical_correlations: np.ndarray = _field(
        "Every canonical correlation of A and B, largest first (the CCA of PWCCA).",
        "Hotelling, Biometrika 1936", summary=False)
    notes: tuple = _field("What was left out or is degenerate, and why.", default=())
    cross_moments: CrossMoments = hidden()

    def headline(self) -> str:
        """One line with the main numbers (what ``embgeo compare`` prints first)."""
        knn = "-" if self.mutual_knn is None else f"{self.mutual_knn:.3f}"
        return (f"linear CKA {self.linear_cka:.3f} (debiased {self.debiased_cka:.3f}), RBF CKA {self.rbf_cka:.3f}, "
                f"SVCCA {self.svcca:.3f}, PWCCA {self.pwcca:.3f}, Procrustes {self.procrustes_distance:.3f} "
                f"(angular {self.angular_shape_distance:.3f} rad), mutual {self.k}-NN {knn}, "
                f"RSA {self.rsa_spearman:.3f}")


# ----------------------------------------------------------------------------------------------- input


def _as_set(data, tag: str) -> EmbeddingSet:
    try:
        return as_embedding_set(data, name=tag)
    except EmbeddingInputError as err:
        raise EmbeddingInputError(f"{tag}: {err}") from None


def check_same_items(ea: EmbeddingSet, eb: EmbeddingSet, *, what: str = "representation similarity") -> None:
    """Raise unless the two sets can hold the same items row for row: the same n, no rows dropped from only
    one of them, and, where both carry an ``id`` metadata column, the same ids in the same order (an error,
    not a silent re-alignment: the message says how to reorder)."""
    if ea.n != eb.n:
        raise EmbeddingInputError(
            f"{what} needs the same items in both: {ea.name!r} holds {ea.n:,} and {eb.name!r} {eb.n:,}")
    for es, other in ((ea, eb), (eb, ea)):
        if len(es.dropped_rows) and not np.array_equal(es.dropped_rows, other.dropped_rows):
            raise EmbeddingInputError(
                f"{es.name!r} was loaded with on_invalid='drop' and lost {len(es.dropped_rows)} rows (first: "
                f"{es.dropped_rows[:5].tolist()}) that {other.name!r} still has, so their rows no longer hold "
                "the same items; drop the same rows from both")
    if ea.metadata is None or eb.metadata is None or "id" not in ea.metadata or "id" not in eb.metadata:
        return
    ia = np.asarray(ea.metadata["id"].to_numpy(), dtype=object)
    ib = np.asarray(eb.metadata["id"].to_numpy(), dtype=object)
    differ = np.flatnonzero(ia != ib)
    if len(differ) == 0:
        return
    r = int(differ[0])
    same = set(ia.tolist()) == set(ib.tolist())
    raise EmbeddingInputError(
        f"the 'id' columns of {ea.name!r} and {eb.name!r} disagree at {len(differ):,} rows (first: row {r}, "
        f"{ia[r]!r} against {ib[r]!r}): "
        + ("the same ids in a different order; reorder B to A's order first, e.g. "
           "b = b.subset(pandas.Index(b.metadata['id']).get_indexer(a.metadata['id']))" if same else
           "they are not the same items"))


# ------------------------------------------------------------------------------------ linear statistics


def _whitening(scatter: np.ndarray):
    """Eigenvalues (descending, clipped at 0) and eigenvectors of a centred scatter, and its whitening
    basis U diag(lambda)^-1/2 on the directions above the rank tolerance."""
    lam, u = np.linalg.eigh(scatter)
    lam, u = lam[::-1], u[:, ::-1]
    keep = lam > CCA_RANK_TOL * max(lam[0], 0.0)
    return np.clip(lam, 0.0, None), u, u[:, keep] / np.sqrt(lam[keep])


def _hsic_unbiased(frob2: float, q: float, ta: float, tb: float, n: int) -> float:
    """n (n - 3) x the unbiased HSIC of two linear kernels, from centred feature moments.

    With K = Xc Xc^T (so 1^T K = 0) and a_i = K_ii, Song et al.'s estimator
    tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2 / (n-2) 1^T K~ L~ 1 (K~: K with a zero diagonal)
    reduces to ||Xc^T Yc||_F^2 - n / (n-2) sum a_i b_i + (sum a)(sum b) / ((n-1)(n-2)); the estimator is
    unchanged by centring, so this is the HSIC of the raw rows too."""
    return frob2 - n / (n - 2.0) * q + ta * tb / ((n - 1.0) * (n - 2.0))


def _pwcca(rho: np.ndarray, wa: np.ndarray, u: np.ndarray, saa: np.ndarray) -> float:
    """Morcos et al.'s weights: alpha_i = sum_j |<h_i, x_j>| with h_i the unit canonical variate i of A
    and x_j the j-th column of A; <h_i, x_j> = (Saa w_i)_j for the whitened direction w_i = Wa u_i."""
    directions = wa @ u[:, :len(rho)]
    alpha = np.abs(saa @ directions).sum(axis=0)
    return float(alpha @ rho / alpha.sum()) if alpha.sum() > 0 else float("nan")


def linear_statistics(cross_moments: CrossMoments) -> dict:
    """Linear CKA, debiased CKA, SVCCA, PWCCA and the Procrustes distances from cross-moments.

    The moments may be about any pivot (they are centred here). Returns a dict named as the fields of
    :class:`RepresentationSimilarity`, plus ``canonical_correlations``.
    """
    return _linear_statistics(cross_moments)[0]


def _linear_statistics(cross_moments: CrossMoments, only: str | None = None) -> tuple[dict, float]:
    """:func:`linear_statistics` and the PWCCA of (B, A) (weighted by B on a tie), from the same
    factorisations (what a similarity matrix fills its lower triangle with). ``only="linear_cka"`` or
    ``"debiased_cka"`` stops after the Frobenius norms: the decompositions of the (d_A + d_B)-sized
    moments that the others need took ~1.5 s a pair at 384 + 384 dimensions (a 7-layer heat map: 47 s)."""
    c = cross_moments.centred()
    n = c.count
    ta, tb = float(np.trace(c.aa)), float(np.trace(c.bb))
    for t, side in ((ta, "A"), (tb, "B")):
        if not t > 0:
            raise EmbeddingInputError(f"every row of {side} is the same vector (zero variance): no similarity "
                                      "of its geometry is defined")
    fa, fb, fab = (float(np.sum(m * m)) for m in (c.aa, c.bb, c.ab))
    hab, haa, hbb = (_hsic_unbiased(f, q, s, t, n) for f, q, s, t in
                     ((fab, c.q_ab, ta, tb), (fa, c.q_aa, ta, ta), (fb, c.q_bb, tb, tb)))
    debiased = hab / np.sqrt(haa * hbb) if haa > 0 and hbb > 0 else float("nan")
    if only in ("linear_cka", "debiased_cka"):
        return {"linear_cka": float(fab / np.sqrt(fa * fb)), "debiased_cka": float(debiased)}, float("nan")
    nuclear = float(np.linalg.svd(c.ab, compute_uv=False).sum()) / np.sqrt(ta * tb)
    nuclear = min(max(nuclear, 0.0), 1.0)

    lam_a, va, wa = _whitening(c.aa)
    lam_b, vb, wb = _whitening(c.bb)
    u, rho, vt = np.linalg.svd(wa.T @ c.ab @ wb, full_matrices=False)
    rho = np.clip(rho, 0.0, 1.0)
    # weight by the smaller side (as Morcos et al.'s code does); the first one on a tie: A for (A, B),
    # B for (B, A)
    pw_a, pw_b = _pwcca(rho, wa, u, c.aa), _pwcca(rho, wb, vt.T, c.bb)
    pw = pw_b if wb.shape[1] < wa.shape[1] else pw_a
    pw_ba = pw_a if wa.shape[1] < wb.shape[1] else pw_b
    ka, kb = pca_dimension(lam_a, SVCCA_SHARE), pca_dimension(lam_b, SVCCA_SHARE)
    pa, pb = va[:, :ka] / np.sqrt(lam_a[:ka]), vb[:, :kb] / np.sqrt(lam_b[:kb])
    sv_rho = np.clip(np.linalg.svd(pa.T @ c.ab @ pb, compute_uv=False), 0.0, 1.0)
    return {"linear_cka": float(fab / np.sqrt(fa * fb)), "debiased_cka": float(debiased),
            "svcca": float(sv_rho.mean()), "svcca_dims": (ka, kb), "pwcca": pw,
            "procrustes_distance": float(np.sqrt(max(2.0 - 2.0 * nuclear, 0.0))),
            "angular_shape_distance": float(np.arccos(nuclear)), "canonical_correlations": rho}, pw_ba


# ---------------------------------------------------------------------------------- sampled statistics


#: Float64 entries of one block of kernel or dissimilarity rows (32 MB), whatever the sample size.
_BLOCK_ENTRIES = 4_000_000


def _block_rows(n: int) -> int:
    return max(1, _BLOCK_ENTRIES // max(n, 1))


def _centred_rbf(x: np.ndarray) -> np.ndarray | None:
    """The doubly centred Gaussian Gram matrix H K H of the rows, sigma = the median distance of the
    pairs that do not coincide (:func:`~embgeo.analysis._core.median_distance`); None when every row
    is the same point. Built in place: one n x n float64 array."""
    d2 = pairwise_sq_distances(x)
    sigma = median_distance(d2=d2)
    if not np.isfinite(sigma):
        return None
    d2 *= -1.0 / (2.0 * sigma * sigma)
    k = np.exp(d2, out=d2)
    k -= k.mean(axis=0)[None, :]
    k -= k.mean(axis=1)[:, None]
    return k


def _rbf_cka(xs: np.ndarray, ys: np.ndarray) -> float:
    """CKA of the Gaussian Grams of the two samples (Kornblith et al., 2019), holding one n x n matrix.

    H Kx H is built whole; K_y is read in row blocks: ``<H Kx H, H Ky H> = <H Kx H, Ky>`` (H is
    idempotent) and ``||H Ky H||_F^2 = ||Ky||_F^2 - 2 ||Ky 1||^2 / n + (1^T Ky 1)^2 / n^2``."""
    kx = _centred_rbf(xs)
    if kx is None:
        return float("nan")
    sigma = median_distance(ys)  # the same pairs as for xs when sampled (one seed)
    if not np.isfinite(sigma):
        return float("nan")
    n = len(ys)
    y = np.array(ys, dtype=np.float64)
    y -= y.mean(axis=0)
    sq = np.einsum("ij,ij->i", y, y)
    cross = frob = 0.0
    row_sums = np.empty(n)
    step = _block_rows(n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = y[start:stop] @ y.T
        block *= -2.0
        block += sq[start:stop, None]
        block += sq[None, :]
        np.maximum(block, 0.0, out=block)
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0  # the diagonal exactly
        block *= -1.0 / (2.0 * sigma * sigma)
        np.exp(block, out=block)
        cross += float(np.einsum("ij,ij->", kx[start:stop], block))
        frob += float(np.einsum("ij,ij->", block, block))
        row_sums[start:stop] = block.sum(axis=1)
    ky2 = frob - 2.0 * float(row_sums @ row_sums) / n + float(row_sums.sum()) ** 2 / n**2
    kx2 = float(np.einsum("ij,ij->", kx, kx))
    return float(cross / np.sqrt(kx2 * ky2)) if kx2 > 0 and ky2 > 0 else float("nan")


def _dissimilarities(x: np.ndarray, metric: str) -> np.ndarray:
    """Upper-triangle pairwise dissimilarities (condensed, in ``scipy.spatial.distance.pdist`` order):
    1 - cos (cosine), Euclidean, or minus the inner product (dot, which ranks pairs as a dot-product
    search does). Built in row blocks: the n (n - 1) / 2 result and one block, never an n x n matrix."""
    n = len(x)
    if metric == "cosine":
        z = unit_rows(x, dtype=np.float64)
    elif metric == "euclidean":
        z = np.array(x, dtype=np.float64)
        z -= z.mean(axis=0)  # a large common offset would cancel in |a|^2 + |b|^2 - 2 a.b
        sq = np.einsum("ij,ij->i", z, z)
    else:
        z = np.asarray(x, dtype=np.float64)
    out = np.empty(n * (n - 1) // 2)
    pos, step = 0, _block_rows(n)
    for start in range(0, n - 1, step):
        stop = min(start + step, n - 1)
        g = z[start:stop] @ z[start:].T  # row i of the block against rows start.. n-1
        if metric == "cosine":
            np.subtract(1.0, g, out=g)
        elif metric == "euclidean":
            g *= -2.0
            g += sq[start:stop, None]
            g += sq[None, start:]
            np.maximum(g, 0.0, out=g)
            np.sqrt(g, out=g)
        else:
            np.negative(g, out=g)
        for r in range(stop - start):
            row = g[r, r + 1:]
            out[pos:pos + len(row)] = row
            pos += len(row)
    return out


# ------------------------------------------------------------------------------------------ the result


def _notes(lin: dict, n: int, dim_a: int, dim_b: int, knn, rbf: float) -> list[str]:
    notes = []
    if dim_a + dim_b >= n:
        notes.append(f"d_A + d_B = {dim_a + dim_b} >= n = {n}: CCA (SVCCA, PWCCA) can match almost any two "
                     "representations this wide, so its correlations approach 1; read CKA instead")
    if knn is None:
        notes.append("mutual k-NN was not computed (knn=None)")
    if not np.isfinite(rbf):
        notes.append("RBF CKA is undefined: every sampled item is the same point in one space (no bandwidth)")
    if not np.isfinite(lin["debiased_cka"]):
        notes.append("debiased CKA is undefined: an unbiased self-HSIC is not positive (too few distinct items)")
    return notes


def representation_similarity(a, b, *, k: int = 10, metric: str = "cosine", knn: str | None = "exact",
                              sample_size: int | None = SIMILARITY_SAMPLE, random_state=0,
                              block_rows: int = CROSS_BLOCK_ROWS, cross_moments: CrossMoments | None = None,
                              progress=None) -> RepresentationSimilarity:
    """How similar two representations of the same n items are: CKA, CCA, Procrustes, mutual k-NN, RSA.

    Parameters
    ----------
    a, b : EmbeddingSet or array-like of shape (n, d_a), (n, d_b)
        The same n items, row for row (dimensions may differ; memory maps are read in blocks). Where
        both sets carry an ``id`` metadata column the ids must agree row for row (else an error says
        how to reorder; nothing is re-aligned silently).
    k : int
        Neighbours per item of mutual k-NN.
    metric : {"cosine", "dot", "euclidean"}
        Metric of the neighbour tables and of the RSA dissimilarities (1 - cos, Euclidean distance, or
        minus the inner product). The linear statistics and RBF CKA read the raw rows, as defined.
    knn : {"exact", "approximate"} or None
        Which shared neighbour table mutual k-NN reads (:meth:`EmbeddingSet.neighbors`, cached on the
        sets); None leaves mutual k-NN out (large sets without a table).
    sample_size : int or None
        Items (drawn once, the same for both) of RBF CKA and RSA, which are quadratic in n; None = all
        (at most :data:`MAX_SIMILARITY_SAMPLE`).
    random_state : int, Generator or None
    block_rows : int
        Rows per block of the cross-moment pass.
    cross_moments : CrossMoments, optional
        Cross-moments of (a, b) computed elsewhere (e.g. merged per chunk by a Dask engine): used
        instead of the pass over the rows. Its dimensions and count are checked.
    progress : None, bool or callable
        ``progress(done, total, description)`` after each block and step; raising in it stops the work.

    Returns
    -------
    RepresentationSimilarity

    Raises
    ------
    EmbeddingInputError
        Different n, disagreeing ``id`` columns, NaN/inf rows (the message names A or B), fewer than 4
        items (the unbiased HSIC divides by n - 3), a k too large, or a set with zero variance.

    Notes
    -----
    Linear statistics come from float64 cross-moments of float32 blocks: O(n (d_a + d_b)^2) time,
    O((d_a + d_b)^2) memory whatever n is. The debiased CKA is written in feature space (the reduction
    is in :func:`_hsic_unbiased`), so it is exact over all n items, not a sample.

    References
    ----------
    Kornblith, S., Norouzi, M., Lee, H., Hinton, G. "Similarity of neural network representations
    revisited", ICML 2019. Song, L. et al. "Feature selection via dependence maximization", JMLR 2012.
    Raghu, M. et al. "SVCCA", NeurIPS 2017. Morcos, A., Raghu, M., Bengio, S. "Insights on representational
    similarity in neural networks with canonical correlation", NeurIPS 2018. Williams, A. H. et al.
    "Generalized shape metrics on neural representations", NeurIPS 2021. Huh, M. et al. "The platonic
    representation hypothesis", ICML 2024. Kriegeskorte, N. et al. "Representational similarity analysis",
    Front. Syst. Neurosci. 2008.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(400, 12))
    >>> q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    >>> s = representation_similarity(x, 3.0 * x @ q, k=5)
    >>> round(s.linear_cka, 6), round(s.procrustes_distance, 6), s.mutual_knn
    (1.0, 0.0, 1.0)
    """
    metric = check_metric(metric)
    if knn not in ("exact", "approximate", None):
        raise EmbeddingInputError(f"knn must be 'exact', 'approximate' or None, got {knn!r}")
    ea, eb = _as_set(a, "A"), _as_set(b, "B")
    check_same_items(ea, eb)
    n = ea.n
    if n < 4:
        raise EmbeddingInputError(f"representation similarity needs at least 4 items (the unbiased HSIC divides "
                                  f"by n - 3); got n={n}")
    if knn is not None:
        k = check_k(k, n - 1, context="neighbours (self excluded)")
    rows = sample_rows(n, sample_size, check_random_state(random_state), minimum=4, what="sample_size")
    if (n if rows is None else len(rows)) > MAX_SIMILARITY_SAMPLE:
        raise EmbeddingInputError(f"sample_size={sample_size} would hold {n if rows is None else len(rows):,}^2 "
                                  f"pairs in memory for RBF CKA and RSA; use at most {MAX_SIMILARITY_SAMPLE:,}")
    steps = 4 if knn is not None else 2

    def done(step: int, what: str):
        if callable(progress):
            progress(step, steps, what)

    if cross_moments is None:
        cross_moments = scan_cross_moments(ea.vectors, eb.vectors, block_rows=block_rows,
                                           progress=sub_progress(progress, 0, steps),
                                           description="cross-moments of A and B")
    elif not isinstance(cross_moments, CrossMoments) or (cross_moments.dim_a, cross_moments.dim_b,
                                                         cross_moments.count) != (ea.dim, eb.dim, n):
        raise EmbeddingInputError(f"cross_moments must be CrossMoments of dims ({ea.dim}, {eb.dim}) over {n} rows")
    lin = linear_statistics(cross_moments)
    done(1, "linear statistics")
    xs = np.asarray(ea.vectors if rows is None else ea.vectors[rows], dtype=np.float64)
    ys = np.asarray(eb.vectors if rows is None else eb.vectors[rows], dtype=np.float64)
    rbf = _rbf_cka(xs, ys)
    rsa = float(spearman(_dissimilarities(xs, metric), _dissimilarities(ys, metric)))
    done(2, "RBF CKA and RSA on a sample")
    mutual = None
    if knn is not None:
        ia = ea.neighbors(k, metric=metric, exact=knn == "exact", progress=sub_progress(progress, 2, steps)).indices
        done(3, "neighbours of A")
        ib = eb.neighbors(k, metric=metric, exact=knn == "exact", progress=sub_progress(progress, 3, steps)).indices
        mutual = float(recall_per_query(ia, ib).mean())
        done(4, "mutual k-NN")
    notes = _notes(lin, n, ea.dim, eb.dim, knn, rbf)
    return RepresentationSimilarity(
        name_a=ea.name, name_b=eb.name, n=n, dim_a=ea.dim, dim_b=eb.dim, rbf_cka=rbf, mutual_knn=mutual,
        rsa_spearman=rsa, k=k, metric=metric, sample_size=len(xs), notes=tuple(notes),
        cross_moments=cross_moments, **lin)
