"""Isotropy and covariance spectrum of an embedding set, from one pass of moments plus one projection pass.

Everything here is built on :class:`~embgeo.analysis.Moments` (mean, covariance, norm sums,
sum of unit vectors), so a memory-mapped set is read in row blocks and no n x n matrix is formed. The
only other pass over the rows projects them on the d eigenvectors of ``X^T X`` for the partition
function of Mu & Viswanath (2018).

Wide data (n < d, e.g. a few LLM embeddings): the moments keep the rows, and the spectrum and axes come
from the n x n side (``Moments.eigensystem``) in O(n^2 d) time and O(n d) memory. IsoScore, the
effective rank and the other spectrum statistics still see all d eigenvalues, the d - n beyond the rows'
span exactly 0; on those directions every ``<c, x_i>`` is 0, so ``Z(c)`` is put in exactly as well.

What is analysed: with ``metric="cosine"`` the mean, covariance and spectrum are those of the unit
vectors ``u_i = x_i / ||x_i||`` (what cosine similarity sees); with ``"dot"`` or ``"euclidean"`` they are
those of the raw vectors. Norm statistics always describe the raw vectors, and the mean cosine and the
rogue-dimension shares are always about the unit vectors. With ``weighted=True`` every mean,
covariance, second moment, norm average and sum over items is p-weighted by the set's normalised item
frequencies (Zipfian view, Yokoi et al., 2024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import (
    MOMENT_BLOCK_ROWS,
    EmbeddingInputError,
    Moments,
    Result,
    check_metric,
    check_no_zero_rows,
    iter_row_blocks,
    metric as _field,
    pca_dimension,
    row_norms,
    scan_moments,
)
from ..embeddings import as_embedding_set

#: Eigenvalues below this fraction of the largest count as zero (numerical rank).
RANK_TOL = 1e-10
#: A dimension is a rogue candidate only if its share of the expected cosine is this many times 1/d.
ROGUE_UNIFORM_FACTOR = 10.0
#: Number of top dimensions listed on the report, flagged or not.
TOP_DIMENSIONS = 10

_REF_ISO = "Rudman et al., Findings of ACL 2022"
_REF_MV = "Mu & Viswanath, ICLR 2018"
_REF_TIMKEY = "Timkey & van Schijndel, EMNLP 2021"


@dataclass(frozen=True, repr=False)
class IsotropyReport(Result):
    """How evenly an embedding set uses its dimensions (see :func:`isotropy_report`)."""

    _title = "isotropy and covariance spectrum"
    metric: str = _field("cosine: statistics of unit vectors; dot/euclidean: of the raw vectors.")
    weighted: bool = _field("True when means and covariances are p-weighted by item frequency.",
                            "Yokoi et al., NeurIPS 2024")
    n: int = _field("Number of vectors.")
    dim: int = _field("Dimension of the vectors.")
    mean_cosine: float = _field(
        "Mean cosine similarity over distinct pairs; 0 for directions spread evenly, near 1 for a narrow cone.",
        "Ethayarajh, EMNLP 2019")
    isoscore: float = _field("IsoScore: 1 = variance spread evenly over all dimensions, 0 = one direction only.",
                             _REF_ISO)
    partition_isotropy: float = _field(
        "min Z(c) / max Z(c) over the eigenvectors of X^T X, Z(c) = sum_i exp(<c, x_i>); 1 = isotropic.",
        _REF_MV)
    participation_ratio: float = _field(
        "(sum lambda)^2 / sum lambda^2 of the covariance eigenvalues: number of dimensions in real use.",
        "Gao et al., 2017")
    effective_rank: float = _field(
        "exp(entropy) of the normalised singular values of the centred data: effective number of directions.",
        "Roy & Vetterli, EUSIPCO 2007")
    pca_dim_90: int = _field("Fewest principal components explaining 90 % of the variance.")
    pca_dim_95: int = _field("Fewest principal components explaining 95 % of the variance.")
    pca_dim_99: int = _field("Fewest principal components explaining 99 % of the variance.")
    power_law_alpha: float = _field(
        "Decay exponent alpha of the eigenspectrum, lambda_k ~ k^-alpha, fitted over alpha_fit_range.",
        "Stringer et al., Nature 2019; Agrawal et al., NeurIPS 2022")
    alpha_fit_range: tuple = _field("Ranks (first, last) of the eigenvalues used to fit alpha.")
    common_direction_share: float = _field(
        "||mean||^2 / mean ||x||^2: share of the average squared length lying along the common direction (cone).",
        "Ethayarajh, EMNLP 2019; Mu & Viswanath, ICLR 2018")
    norm_mean: float = _field("Mean length ||x|| of the raw vectors.")
    norm_std: float = _field("Standard deviation of the raw vector lengths.")
    norm_cv: float = _field("Coefficient of variation of the lengths (std / mean); large when norms carry information.")
    rogue_dimensions: list = _field(
        "Dimensions that dominate the expected cosine (shortest top set covering half of it, at most a few, "
        "each above 10x the uniform share), as {dim, share}.", _REF_TIMKEY)
    top_dimensions: list = _field("The dimensions with the largest shares of the expected cosine, as {dim, share}.",
                                  _REF_TIMKEY)
    eigenvalues: np.ndarray = _field("Covariance eigenvalues, largest first (for plotting the spectrum).")
    explained_variance_ratio: np.ndarray = _field("Share of the total variance on each principal component.")
    zero_rows: int = _field("Zero vectors (no direction), left out of the cosine statistics.", default=0)


def isotropy_report(data, *, metric: str = "cosine", weighted: bool = False,
                    block_rows: int = MOMENT_BLOCK_ROWS) -> IsotropyReport:
    """Isotropy measures and the covariance eigenspectrum of an embedding set.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        The vectors (n >= 2). Never modified; a memory map is read in row blocks.
    metric : {"cosine", "dot", "euclidean"}, default "cosine"
        ``"cosine"`` analyses the unit vectors ``x / ||x||``; the other two analyse the raw vectors.
    weighted : bool, default False
        Use the set's item probabilities ``data.probabilities`` (normalised frequencies) for every mean,
        covariance and sum over items, as in Zipfian whitening (Yokoi et al., 2024). Requires an
        :class:`EmbeddingSet` built with ``weights``.
    block_rows : int
        Rows read per block.

    Returns
    -------
    IsotropyReport
        Definitions (all from the analysed vectors, p-weighted when ``weighted``):

        * ``mean_cosine`` = ``(||S||^2 - n) / (n (n - 1))`` with ``S = sum_i u_i`` (distinct pairs;
          weighted: pairs weighted by ``p_i p_j``).
        * ``isoscore``: lambda = covariance eigenvalues, ``l = sqrt(d) lambda / ||lambda||``,
          ``delta = ||l - 1|| / sqrt(2 (d - sqrt d))``, ``k = (d - delta^2 (d - sqrt d))^2 / d^2``,
          IsoScore = ``(d k - 1) / (d - 1)`` (Rudman et al., 2022).
        * ``partition_isotropy`` = ``min_c Z(c) / max_c Z(c)`` with c over the eigenvectors of the
          uncentred ``X^T X`` and ``Z(c) = sum_i exp(<c, x_i>)`` (weighted: ``sum_i p_i exp(...)``),
          computed with log-sum-exp so large norms do not overflow (Mu & Viswanath, 2018).
        * ``participation_ratio`` and ``effective_rank``: the latter is Roy & Vetterli's (2007)
          ``exp(H(p))`` with ``p_k = sigma_k / sum sigma`` for the singular values of the centred
          (weighted: ``sqrt(p)``-scaled) data matrix, i.e. ``sigma_k`` proportional to ``sqrt(lambda_k)``.
        * ``power_law_alpha``: minus the least-squares slope of ``log lambda_k`` on ``log k`` for
          ``k = 2 .. r // 2``, r the numerical rank (at most ``min(d, n - 1)``). The first eigenvalue
          is skipped because it usually carries the common direction; the tail is skipped because
          sample noise flattens it. NaN when fewer than 3 ranks are available.
        * ``common_direction_share`` = ``||mu||^2 / mean ||x||^2``.
        * rogue dimensions (Timkey & van Schijndel, 2021): the expected cosine of a random pair is
          ``sum_j E[u_j]^2``; dimension j's share is ``E[u_j]^2 / sum_j E[u_j]^2``. Sort the shares;
          take the shortest top set whose shares sum to at least 1/2. If that set has at most
          ``max(3, ceil(d / 100))`` dimensions, its members whose share is at least 10x the uniform
          1/d are flagged; otherwise the cosine is spread over many dimensions and none is flagged.

    Raises
    ------
    EmbeddingInputError
        Fewer than two vectors, NaN/inf values, zero vectors under ``metric="cosine"``, or
        ``weighted=True`` on data without weights.

    References
    ----------
    Rudman, Gillman, Rayne & Eickhoff (2022). IsoScore: Measuring the uniformity of embedding space
    utilization. Findings of ACL 2022.
    Mu & Viswanath (2018). All-but-the-top: simple and effective postprocessing for word
    representations. ICLR 2018 (after Arora, Li, Liang, Ma & Risteski, TACL 2016).
    Roy & Vetterli (2007). The effective rank: a measure of effective dimensionality. EUSIPCO 2007.
    Gao, Trautmann, Yu, Santhanam, Ryu, Shenoy & Ganguli (2017). A theory of multineuronal
    dimensionality, dynamics and measurement. bioRxiv 214262 (participation ratio).
    Stringer, Pachitariu, Steinmetz, Carandini & Harris (2019). High-dimensional geometry of population
    responses in visual cortex. Nature 571 (power-law eigenspectra).
    Timkey & van Schijndel (2021). All bark and no bite: rogue dimensions in transformer language
    models obscure representational quality. EMNLP 2021.
    Ethayarajh (2019). How contextual are contextualized word representations? EMNLP 2019.
    Yokoi, Bao, Kurita & Shimodaira (2024). Zipfian whitening. NeurIPS 2024.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 16))
    >>> r = isotropy_report(x)
    >>> r.isoscore > 0.95 and abs(r.mean_cosine) < 0.01
    True
    """
    metric = check_metric(metric)
    eset = as_embedding_set(data)
    if eset.n < 2:
        raise EmbeddingInputError(f"isotropy needs at least 2 vectors, got {eset.n}")
    weights = None
    if weighted:
        if eset.probabilities is None:
            raise EmbeddingInputError(
                "weighted=True needs item weights (frequencies): build the set with "
                "EmbeddingSet(vectors, weights=...), or use weighted=False"
            )
        weights = eset.probabilities
    check_no_zero_rows(eset.vectors, metric)
    normalize = metric == "cosine"

    if block_rows == MOMENT_BLOCK_ROWS:  # cached on the set, shared with intrinsic_dimension
        mom = eset.moments(normalize=normalize, weighted=weighted)
    else:
        mom = scan_moments(eset.vectors, weights, normalize=normalize, block_rows=block_rows)
    second = mom.total_variance() + float(mom.mean_ @ mom.mean_)
    eig = mom.eigenvalues()  # all 0 for one point or one direction (only rounding noise)
    spec = spectrum_summary(eig, n=eset.n)
    log_z = _log_partition(eset.vectors, mom, weights, block_rows)
    shares = mom.cosine_shares()
    norm_mean, norm_std = mom.norm_mean, mom.norm_std
    return IsotropyReport(
        metric=metric,
        weighted=bool(weighted),
        n=eset.n,
        dim=eset.dim,
        mean_cosine=mom.mean_cosine(),
        isoscore=isoscore_from_eigenvalues(eig),
        partition_isotropy=float(np.exp(log_z.min() - log_z.max())),
        common_direction_share=float(mom.mean_ @ mom.mean_) / second if second > 0 else float("nan"),
        norm_mean=norm_mean,
        norm_std=norm_std,
        norm_cv=norm_std / norm_mean if norm_mean > 0 else float("nan"),
        rogue_dimensions=_dim_list(flag_rogue_dimensions(shares), shares),
        top_dimensions=_dim_list(np.argsort(-np.nan_to_num(shares, nan=-1.0), kind="stable")[:TOP_DIMENSIONS], shares),
        zero_rows=mom.zero_rows,
        **spec,
    )


# ---------------------------------------------------------------------------------------- pieces
def isoscore_from_eigenvalues(eigenvalues) -> float:
    """IsoScore of a covariance spectrum (Rudman et al., 2022), exactly as in the paper.

    ``l = sqrt(d) lambda / ||lambda||_2``; ``delta = ||l - 1||_2 / sqrt(2 (d - sqrt d))``;
    ``k = (d - delta^2 (d - sqrt d))^2 / d^2``; IsoScore ``= (d k - 1) / (d - 1)``.
    NaN when every eigenvalue is zero (no variance) or d = 1.

    Examples
    --------
    >>> isoscore_from_eigenvalues([2.0, 2.0, 2.0]), isoscore_from_eigenvalues([1.0, 0.0, 0.0])
    (1.0, 0.0)
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    d = lam.shape[0]
    norm = np.linalg.norm(lam)
    if d < 2 or norm == 0:
        return float("nan")
    l = math.sqrt(d) * lam / norm
    delta_sq = float(np.sum((l - 1.0) ** 2)) / (2.0 * (d - math.sqrt(d)))
    k = (d - delta_sq * (d - math.sqrt(d))) ** 2 / d**2
    return float((d * k - 1.0) / (d - 1.0))


def power_law_exponent(eigenvalues, k_range: tuple[int, int] | None = None) -> tuple[float, tuple[int, int]]:
    """Exponent alpha of ``lambda_k ~ k^-alpha``: minus the slope of log lambda on log k.

    Parameters
    ----------
    eigenvalues : array-like
        Spectrum sorted largest first.
    k_range : (int, int), optional
        First and last rank (1-based, inclusive) of the fit. Default ``(2, r // 2)`` with r the
        numerical rank (eigenvalues above ``1e-10`` times the largest).

    Returns
    -------
    alpha : float
        NaN when the range holds fewer than 3 positive eigenvalues.
    k_range : (int, int)
        The ranks used.

    References
    ----------
    Stringer et al. (2019), Nature 571; Agrawal et al. (2022), NeurIPS (alpha-ReQ).

    Examples
    --------
    >>> k = np.arange(1, 101)
    >>> round(power_law_exponent(k ** -1.5)[0], 6)
    1.5
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if k_range is None:
        rank = int(np.sum(lam > RANK_TOL * lam[0])) if lam.size and lam[0] > 0 else 0
        k_range = (2, rank // 2)
    lo, hi = int(k_range[0]), int(min(k_range[1], lam.size))
    if lo < 1:
        raise EmbeddingInputError(f"k_range must start at rank 1 or later, got {k_range}")
    ks = np.arange(lo, hi + 1)
    vals = lam[lo - 1:hi] if hi >= lo else lam[:0]
    if ks.size < 3 or not (vals > 0).all():
        return float("nan"), (lo, hi)
    slope = np.polyfit(np.log(ks), np.log(vals), 1)[0]
    return float(-slope), (lo, hi)


def spectrum_summary(eigenvalues, *, n: int) -> dict:
    """Spectrum-derived fields of :class:`IsotropyReport` from covariance eigenvalues (largest first)."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    total = lam.sum()
    nan = float("nan")
    if total <= 0:  # every vector the same: no variance, so no spectrum to describe
        return dict(eigenvalues=lam, explained_variance_ratio=np.full(lam.shape, nan), participation_ratio=nan,
                    effective_rank=nan, pca_dim_90=0, pca_dim_95=0, pca_dim_99=0, power_law_alpha=nan,
                    alpha_fit_range=(2, 1))
    ratio = lam / total
    sigma = np.sqrt(lam)  # singular values of the centred data, up to the common factor sqrt(n)
    p = sigma[sigma > 0] / sigma.sum()
    lam_fit = lam[: max(1, min(lam.size, n - 1))]  # the centred data has rank at most n - 1
    alpha, k_range = power_law_exponent(lam_fit)
    return dict(
        eigenvalues=lam,
        explained_variance_ratio=ratio,
        participation_ratio=float(total**2 / np.sum(lam**2)),
        effective_rank=float(np.exp(-np.sum(p * np.log(p)))),
        pca_dim_90=pca_dimension(lam, 0.90),
        pca_dim_95=pca_dimension(lam, 0.95),
        pca_dim_99=pca_dimension(lam, 0.99),
        power_law_alpha=alpha,
        alpha_fit_range=k_range,
    )


def flag_rogue_dimensions(shares, *, factor: float = ROGUE_UNIFORM_FACTOR) -> np.ndarray:
    """Indices of the rogue dimensions, by the rule documented in :func:`isotropy_report`.

    The shortest top set of dimensions whose shares sum to at least 1/2 is a candidate when it has at
    most ``max(3, ceil(d / 100))`` members; of those, the ones with share ``>= factor / d`` are flagged.
    """
    shares = np.asarray(shares, dtype=np.float64)
    d = shares.size
    if d == 0 or not np.isfinite(shares).all():
        return np.empty(0, dtype=np.int64)
    order = np.argsort(-shares, kind="stable")
    size = int(np.searchsorted(np.cumsum(shares[order]), 0.5) + 1)
    if size > max(3, math.ceil(d / 100)):
        return np.empty(0, dtype=np.int64)
    top = order[:size]
    return top[shares[top] >= factor / d]


def _dim_list(dims, shares) -> list[dict]:
    return [{"dim": int(j), "share": float(shares[j])} for j in dims]


def _log_partition(x: np.ndarray, mom: Moments, weights, block_rows: int) -> np.ndarray:
    """``log Z(c)`` for every eigenvector c of the (weighted) uncentred second moment, block by block.

    Wide moments give only the eigenvectors of the (at most n) directions the rows span; on each of the
    others every ``<c, x_i>`` is 0 and ``Z(c) = sum_i p_i`` (``n`` unweighted) exactly.

    Rows are unit-normalised when ``mom.normalize``; with weights, ``Z(c) = sum_i p_i exp(<c, x_i>)``.
    Each block's projections come from one float32 product of the raw rows (divided by the row
    norms afterwards, which is the same as projecting unit rows) and reduce to a per-column
    log-sum-exp in torch (max-shifted, so ``exp`` never overflows; vectorised ``exp``, float32 terms
    summed by cascade: ~1e-6 relative in Z, where NumPy's float64 version took 4x as long); blocks
    are merged with ``logaddexp`` in float64.
    """
    import torch

    # The eigenvectors of X^T X / W as LAPACK's eigh signs them (wide moments: those of the Gram), not
    # principal_axes' fixed signs: Z(c) and Z(-c) differ, and the published estimator (and the
    # reference implementations) take the solver's c.
    _, vecs = mom.eigensystem(centered=False)
    null = mom.dim - vecs.shape[1]
    vecs = vecs.astype(np.float32)
    log_z = np.full(vecs.shape[1], -np.inf)
    for start, block in iter_row_blocks(x, block_rows):
        block = np.ascontiguousarray(block, dtype=np.float32)
        proj = block @ vecs
        if mom.normalize:
            proj /= row_norms(block)[:, None]
        if weights is not None:
            w = weights[start:start + block.shape[0]]
            with np.errstate(divide="ignore"):  # zero weight -> log 0 = -inf, which drops the row
                proj += np.log(w).astype(np.float32)[:, None]
        block_lse = torch.logsumexp(torch.from_numpy(proj), dim=0).double().numpy()
        log_z = np.logaddexp(log_z, block_lse)
    if null:
        log_z = np.r_[log_z, np.full(null, math.log(x.shape[0] if weights is None else float(np.sum(weights))))]
    return log_z
