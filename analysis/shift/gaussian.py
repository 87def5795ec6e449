"""First and second moments of two sets compared: the centroid gap, the covariance difference, the
Frechet (Bures-Wasserstein) distance, principal angles, and the Mahalanobis map of one set.

Every input is a :class:`~embgeo.analysis._core.Moments` object (streamed, mergeable), so a
memory-mapped corpus is read once in blocks and never held as a whole; the d x d work (eigh of a
covariance) is O(d^3) and independent of the number of rows.
"""

from __future__ import annotations

import numpy as np

from .._core import EmbeddingInputError, Moments, iter_row_blocks

#: Largest share of the corpus one held-out fold of the Mahalanobis reference takes out of the fit.
HELD_OUT_SHARE = 0.1


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    lam, u = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (u * np.sqrt(np.clip(lam, 0.0, None))) @ u.T


def frechet_distance(mean_a, cov_a, mean_b, cov_b, *, root_a: np.ndarray | None = None) -> float:
    """Squared Frechet (2-Wasserstein) distance between the Gaussians N(mean_a, cov_a), N(mean_b, cov_b):

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``.

    The trace of the inner square root is the sum of the square roots of the eigenvalues of a
    symmetric matrix similar to ``S_a S_b``: ``L^T S_b L`` with ``S_a = L L^T`` (Cholesky), or
    ``S_a^{1/2} S_b S_a^{1/2}`` when ``S_a`` is singular or its root ``root_a`` is given; never
    ``sqrtm`` of the non-symmetric ``S_a S_b``, whose rounding leaves imaginary parts. One
    factorisation and one ``eigvalsh``; the result is clipped at 0. Its square root is the
    2-Wasserstein distance of the Gaussians (the Bures-Wasserstein distance when the means agree).

    References
    ----------
    Dowson, D. C., Landau, B. V. "The Frechet distance between multivariate normal distributions",
    J. Multivariate Analysis 1982. Heusel, M. et al. "GANs trained by a two time-scale update rule
    converge to a local Nash equilibrium", NeurIPS 2017 (the FID). Bhatia, R., Jain, T., Lim, Y.
    "On the Bures-Wasserstein distance between positive definite matrices", Expositiones Math. 2019.

    Examples
    --------
    >>> import numpy as np
    >>> round(frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2)), 6)  # 2 + 2 (2 - 1)^2
    4.0
    """
    mean_a, mean_b = np.asarray(mean_a, dtype=np.float64), np.asarray(mean_b, dtype=np.float64)
    cov_a, cov_b = np.asarray(cov_a, dtype=np.float64), np.asarray(cov_b, dtype=np.float64)
    if root_a is None:
        try:
            factor = np.linalg.cholesky(cov_a)
            inner = factor.T @ cov_b @ factor
        except np.linalg.LinAlgError:  # singular (fewer rows than dimensions): the symmetric root
            root_a = _sqrt_psd(cov_a)
    if root_a is not None:
        inner = root_a @ cov_b @ root_a
    fidelity = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2.0), 0.0, None)).sum())
    gap = mean_a - mean_b
    return max(0.0, float(gap @ gap + np.trace(cov_a) + np.trace(cov_b) - 2.0 * fidelity))


def principal_angles(basis_a: np.ndarray, basis_b: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, smallest first) between the column spans of two orthonormal bases:
    the arccos of the singular values of ``A^T B`` (Bjorck & Golub, Math. Comp. 1973)."""
    s = np.linalg.svd(np.asarray(basis_a).T @ np.asarray(basis_b), compute_uv=False)
    return np.degrees(np.arccos(np.clip(s, -1.0, 1.0)))


def centroid_statistics(mc: Moments, mq: Moments, mean_norm: float) -> dict:
    """Centroid gap, its share of the mean norm and of the corpus spread, and the cosine of the means.

    ``mean_norm`` is the norm the share is relative to (1 for unit rows)."""
    mu_c, mu_q = mc.mean, mq.mean
    gap = mu_q - mu_c
    size = float(np.linalg.norm(gap))
    spread = float(np.sqrt(max(mc.total_variance(ddof=1), 0.0)))
    nc, nq = float(np.linalg.norm(mu_c)), float(np.linalg.norm(mu_q))
    return {
        "centroid_gap": size,
        "centroid_gap_share": size / mean_norm if mean_norm > 0 else float("nan"),
        "centroid_gap_in_spreads": size / spread if spread > 0 else float("nan"),
        "mean_cosine_between_means": float(mu_c @ mu_q / (nc * nq)) if nc > 0 and nq > 0 else float("nan"),
        "gap_vector": gap,
    }


def covariance_statistics(mc: Moments, mq: Moments, *, n_components: int) -> dict:
    """Frobenius and Frechet distances of the covariances (ddof=1), total-variance ratio, principal
    angles between the top ``n_components`` principal subspaces (at most d - 1: see
    :func:`subspace_dimension`)."""
    cov_c, cov_q = mc.covariance(ddof=1), mq.covariance(ddof=1)
    diff = float(np.linalg.norm(cov_q - cov_c))
    norm_c = float(np.linalg.norm(cov_c))
    lam_c, axes_c = mc.principal_axes(ddof=1)  # one eigh serves the root, the angles and Mahalanobis
    fd = frechet_distance(mc.mean, cov_c, mq.mean, cov_q, root_a=(axes_c * np.sqrt(lam_c)) @ axes_c.T)
    tv_c, tv_q = float(np.trace(cov_c)), float(np.trace(cov_q))
    r = min(int(n_components), mc.dim - 1)  # the top-d subspace of any set is the whole space
    angles = principal_angles(axes_c[:, :r], mq.principal_axes(ddof=1, n_components=r)[1]) if r > 0 else np.empty(0)
    return {
        "axes": (lam_c, axes_c),
        "covariance_frobenius": diff,
        "covariance_frobenius_relative": diff / norm_c if norm_c > 0 else float("nan"),
        "frechet_distance": fd,
        "bures_wasserstein": float(np.sqrt(fd)),
        "total_variance_ratio": tv_q / tv_c if tv_c > 0 else float("nan"),
        "principal_angles": angles,
        "n_components": max(r, 0),
    }


class MahalanobisMap:
    """Mahalanobis distance under one set's mean and covariance, regularised relative to its spectrum.

    With ``C = U diag(lambda) U^T`` (ddof=1) and ``e = eps * lambda_1``, the distance of a row x is
    ``||(x - mu) U diag(lambda + e)^(-1/2)||``: the row norm after PCA whitening fitted on the set,
    which equals ``sqrt((x - mu)^T (C + e I)^(-1) (x - mu))``. The regulariser keeps directions the
    set does not vary in (fewer rows than dimensions) finite but large. Wide moments (fewer rows than
    dimensions) keep only the r axes they span: the rest of ``x - mu`` adds ``||residual||^2 / e``
    (those eigenvalues are exactly 0), so no d x d basis is built.

    References
    ----------
    Mahalanobis, P. C. "On the generalised distance in statistics", 1936. Rippel, O., Mertens, P.,
    Merhof, D. "Modeling the Distribution of Normal Data in Pre-Trained Deep Features for Anomaly
    Detection", ICPR 2020 (the Mahalanobis distance to a Gaussian fitted on in-distribution features
    as an out-of-distribution score). Lee, K. et al. NeurIPS 2018.
    """

    def __init__(self, moments: Moments, *, eps: float = 1e-6, axes=None):
        check_eps(eps)
        if axes is None:  # axes: the result of principal_axes(ddof=1) or eigensystem(ddof=1)
            axes = moments.eigensystem(ddof=1) if moments.wide else moments.principal_axes(ddof=1)
        self._fit(moments.mean, *axes, eps=eps, dim=moments.dim)

    @classmethod
    def from_covariance(cls, mean, covariance, *, eps: float = 1e-6) -> "MahalanobisMap":
        """The map of a given mean and (ddof=1) covariance, e.g. moments with some rows taken out."""
        check_eps(eps)
        lam, u = np.linalg.eigh((covariance + covariance.T) / 2.0)
        out = cls.__new__(cls)
        out._fit(np.asarray(mean, dtype=np.float64), np.clip(lam[::-1], 0.0, None), u[:, ::-1], eps=eps,
                 dim=len(lam))
        return out

    def _fit(self, mean, lam, u, *, eps: float, dim: int) -> None:
        if not lam[0] > 0:
            raise EmbeddingInputError("the corpus has no variance (every row alike): the Mahalanobis distance "
                                      "to it is undefined")
        e = eps * lam[0]
        if not (lam + e > 0).all():
            raise EmbeddingInputError(
                f"the corpus covariance has rank {int((lam > 0).sum())} of {dim} and eps=0 leaves the "
                "other directions without variance; use eps > 0")
        r = u.shape[1]
        self.mean_ = mean
        self.axes_ = u
        self.matrix_ = u / np.sqrt(lam[:r] + e)
        self.regulariser_ = float(e)
        self.residual_weight_ = 1.0 / e if r < dim else 0.0  # the directions without an axis

    def distances(self, x, *, prepare=None, block_rows: int = 16_384) -> np.ndarray:
        """Distances of the rows of ``x`` (read in blocks; ``prepare(block)`` maps each block into the
        space the moments describe, e.g. unit rows)."""
        out = np.empty(x.shape[0], dtype=np.float64)
        for start, block in iter_row_blocks(x, block_rows):
            b = np.asarray(block if prepare is None else prepare(block), dtype=np.float64) - self.mean_
            z = b @ self.matrix_
            d2 = np.einsum("ij,ij->i", z, z)
            if self.residual_weight_:
                p = b @ self.axes_
                d2 += np.clip(np.einsum("ij,ij->i", b, b) - np.einsum("ij,ij->i", p, p), 0.0, None) \
                    * self.residual_weight_
            out[start:start + len(b)] = np.sqrt(d2)
        return out


def subspace_dimension(n_components: int, dim: int) -> tuple[int, str | None]:
    """The dimension of the principal subspaces to compare in d = ``dim`` dimensions, and a note when
    it is not ``n_components``: at most d - 1, since the top-d principal subspace of any set is the
    whole space, so its angles with another set's would all be 0 whatever the two sets are (d = 1:
    no subspace to compare, no angles)."""
    r = min(int(n_components), dim - 1)
    if r == n_components:
        return r, None
    if r < 1:
        return 0, f"d={dim}: no proper principal subspace to compare, so no principal angles"
    return r, (f"n_components={n_components} is not below d={dim}: the top-{n_components} subspace of any set "
               f"would be the whole space (every principal angle 0); the top {r} directions were compared")


def check_eps(eps) -> float:
    """The Mahalanobis regulariser: a number in [0, 1], relative to the largest eigenvalue."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) or \
            not (np.isfinite(eps) and 0 <= eps <= 1):
        raise EmbeddingInputError(f"eps must be a number in [0, 1] (relative to the largest eigenvalue), got {eps!r}")
    return float(eps)


def held_out_folds(n: int, rows: np.ndarray | None) -> list[np.ndarray]:
    """The reference rows (all n when None) split into interleaved folds of at most
    :data:`HELD_OUT_SHARE` of the n rows each (one fold when the sample is that small)."""
    rows = np.arange(n) if rows is None else np.asarray(rows)
    k = max(1, int(np.ceil(len(rows) / (HELD_OUT_SHARE * n))))
    return [rows[f::k] for f in range(k)]


def held_out_scores(moments: Moments, vectors, queries, folds: list[np.ndarray], *, prepare, eps: float):
    """Mahalanobis distances of the queries and of the reference rows, each under a map fitted on the set
    *without* the held-out rows: one :class:`MahalanobisMap` per fold, fitted without that fold, scores
    the fold's rows and the queries ``i`` with ``i mod len(folds)`` equal to the fold's number, so the
    queries and the reference are scored alike. Returns ``(query distances, reference distances in
    fold order)``.

    Scoring the rows a covariance was fitted on biases their distances low: a fitted point has
    ``E[D^2] = d (n - 1) / n``, a new point of the same distribution about ``d (1 + (d + 2) / n)``
    (Gaussian rows), so a threshold taken on fitted rows flags too many new ones. The fold's moments
    are taken out of the full ones (the pairwise update of Chan et al., 1979, run backwards):
    ``n' = n - m``, ``mu' = (n mu - m mu_s) / n'``,
    ``S' = S - S_s - (m n' / n) (mu_s - mu')(mu_s - mu')^T``, with ``S_s`` the fold's own scatter; no
    further pass over the set. Wide moments (fewer rows than dimensions) refit on the other rows.
    """
    n, maps, ref = moments.count, [], []
    for rows in folds:
        xs = np.asarray(prepare(vectors[rows]), dtype=np.float64)
        m = len(rows)
        rest = n - m
        if rest < 2:
            raise EmbeddingInputError(f"too few corpus rows ({n}) to fit a covariance without {m} held-out rows")
        if moments.wide:
            keep = np.setdiff1d(np.arange(n), rows)
            fitted = Moments(moments.dim).update(np.asarray(prepare(vectors[keep]), dtype=np.float64))
            fold_map = MahalanobisMap(fitted, eps=eps)
        else:
            mu_s = xs.mean(axis=0)
            centred = xs - mu_s
            mu = (n * moments.mean - m * mu_s) / rest
            delta = mu_s - mu
            scatter = moments.scatter_ - centred.T @ centred - np.outer(delta, delta * (m * rest / n))
            fold_map = MahalanobisMap.from_covariance(mu, scatter / (rest - 1), eps=eps)
        maps.append(fold_map)
        ref.append(fold_map.distances(xs))
    out = np.empty(queries.shape[0])
    for f, fold_map in enumerate(maps):
        out[f::len(maps)] = fold_map.distances(queries[f::len(maps)], prepare=prepare)
    return out, np.concatenate(ref)
