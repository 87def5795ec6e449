"""Post-processing transforms for embeddings, as scikit-learn transformers.

Every transform here follows the scikit-learn contract: the constructor only stores parameters,
``fit(X, y=None, sample_weight=None)`` learns attributes whose names end in ``_`` and returns
``self``, ``transform`` never writes to its input and returns float32. ``sample_weight`` gives the
item probabilities p of weighted (Zipfian) statistics: every mean and covariance is the p-weighted
one, p = sample_weight / sum(sample_weight). Without weights p is uniform. Covariances are population
covariances (divided by the total weight), so integer weights equal repeated rows.

Fitting accumulates means and covariances in float64, block by block (no n x n matrix and no
float64 copy of the whole data); transforming is one blocked float32 matrix product.

Notation follows ``methods.md``: mu is the (weighted) mean, C = U diag(lambda) U^T the (weighted)
covariance with lambda_1 >= ... >= lambda_d.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    OneToOneFeatureMixin,
    TransformerMixin,
)
from sklearn.utils.validation import (
    _check_feature_names_in,
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ._validation import EmbeddingInputError, check_weights, iter_row_blocks

#: Rows handled per block when accumulating moments or transforming.
_BLOCK_ROWS = 16_384


# --------------------------------------------------------------------------------------------- helpers


def _validate(est, X, *, reset: bool, min_samples: int = 1) -> np.ndarray:
    """sklearn's ``validate_data`` with its ValueErrors re-raised as :class:`EmbeddingInputError`.

    float32 and float64 input are kept as they are (no copy); other numeric types become float64.
    The estimator name is prefixed so the message says where the problem is.
    """
    try:
        return validate_data(
            est, X, reset=reset, dtype=[np.float64, np.float32], ensure_min_samples=min_samples
        )
    except EmbeddingInputError:
        raise
    except ValueError as exc:
        raise EmbeddingInputError(f"{type(est).__name__}: {exc}") from None


def _probabilities(sample_weight, X: np.ndarray) -> np.ndarray:
    """Item probabilities p (float64, sum 1) from optional sample weights."""
    if sample_weight is None:
        return np.full(X.shape[0], 1.0 / X.shape[0])
    try:
        w = _check_sample_weight(sample_weight, X, dtype=np.float64)
    except ValueError as exc:
        raise EmbeddingInputError(f"sample_weight: {exc}") from None
    return check_weights(w, X.shape[0])


def weighted_moments(X: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p-weighted mean and population covariance of the rows of ``X``, in float64.

    Two blocked passes: the mean first, then the covariance of the centred rows (centring before
    the product avoids the cancellation of E[x x^T] - mu mu^T).
    """
    d = X.shape[1]
    mean = np.zeros(d)
    for start, block in iter_row_blocks(X, _BLOCK_ROWS):
        mean += p[start:start + len(block)] @ block.astype(np.float64)
    cov = np.zeros((d, d))
    for start, block in iter_row_blocks(X, _BLOCK_ROWS):
        centred = block.astype(np.float64) - mean
        cov += (centred * p[start:start + len(block), None]).T @ centred
    return mean, cov


def weighted_mean(X: np.ndarray, p: np.ndarray) -> np.ndarray:
    mean = np.zeros(X.shape[1])
    for start, block in iter_row_blocks(X, _BLOCK_ROWS):
        mean += p[start:start + len(block)] @ block.astype(np.float64)
    return mean


def sorted_eigh(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors with a deterministic sign.

    Each eigenvector is flipped so that its largest-magnitude entry is positive (the convention of
    scikit-learn's ``svd_flip``), so refitting on the same data gives the same rotation.
    """
    lam, U = np.linalg.eigh(cov)
    lam, U = lam[::-1], U[:, ::-1]
    signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])])
    signs[signs == 0] = 1.0
    return np.clip(lam, 0.0, None), U * signs


def _affine(X: np.ndarray, shift: np.ndarray | None, matrix: np.ndarray | None) -> np.ndarray:
    """``(X - shift) @ matrix`` computed block by block into a new float32 array."""
    d_out = X.shape[1] if matrix is None else matrix.shape[1]
    out = np.empty((X.shape[0], d_out), dtype=np.float32)
    for start, block in iter_row_blocks(X, _BLOCK_ROWS):
        # float64 per block (a copy; X is never written): whitening amplifies small-variance
        # directions, and float32 BLAS kernels round rows differently at tile edges, which would
        # make a row's output depend on its position in the batch.
        b = block.astype(np.float64)
        if shift is not None:
            b -= shift
        out[start:start + len(b)] = b if matrix is None else b @ matrix
    return out


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) or not eps >= 0:
        raise EmbeddingInputError(f"eps must be a non-negative number, got {eps!r}")
    return float(eps)


def _check_n_components(n_components, d: int, n: int, *, limit_by_samples: bool = False) -> int | None:
    if n_components is None:
        return None
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise EmbeddingInputError(f"n_components must be an integer or None, got {n_components!r}")
    top = min(d, n) if limit_by_samples else d
    if not 1 <= n_components <= top:
        raise EmbeddingInputError(
            f"n_components={n_components} is out of range: it must be between 1 and {top} "
            f"(data have {n} rows and {d} dimensions)"
        )
    return int(n_components)


class _EmbeddingTransform(TransformerMixin, BaseEstimator):
    """Shared plumbing: float32 output and fitted-state checks."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _prepare_transform(self, X) -> np.ndarray:
        check_is_fitted(self)
        return _validate(self, X, reset=False)


# --------------------------------------------------------------------------------------------- simple


class Center(OneToOneFeatureMixin, _EmbeddingTransform):
    """Subtract the (weighted) mean vector learned on the fitted data.

    Centring removes the common direction that makes raw embeddings occupy a narrow cone
    (Ethayarajh, 2019); it is the first step of all-but-the-top and of every whitening.

    Attributes
    ----------
    mean_ : ndarray of shape (d,)
        The p-weighted mean of the fitted rows (float64).

    References
    ----------
    Mu, J., Viswanath, P. "All-but-the-Top: Simple and Effective Postprocessing for Word
    Representations", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    >>> Center().fit(x).transform(x)
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    """

    def fit(self, X, y=None, sample_weight=None):
        X = _validate(self, X, reset=True)
        self.mean_ = weighted_mean(X, _probabilities(sample_weight, X))
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        return _affine(X, self.mean_, None)


class L2Normalize(OneToOneFeatureMixin, _EmbeddingTransform):
    """Scale every row to unit Euclidean norm (stateless).

    After this, the dot product is the cosine similarity. An all-zero row has no direction and
    raises :class:`EmbeddingInputError` naming the rows.

    Examples
    --------
    >>> import numpy as np
    >>> L2Normalize().fit_transform(np.array([[3.0, 4.0]]))
    array([[0.6, 0.8]], dtype=float32)
    """

    def fit(self, X, y=None, sample_weight=None):
        X = _validate(self, X, reset=True)
        _probabilities(sample_weight, X)  # validated for a uniform API; normalising needs no statistics
        self.fitted_ = True  # stateless; marks the estimator as fitted for check_is_fitted
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        out = np.empty(X.shape, dtype=np.float32)
        for start, block in iter_row_blocks(X, _BLOCK_ROWS):
            norms = np.linalg.norm(block.astype(np.float64), axis=1)
            zero = np.flatnonzero(norms == 0)
            if len(zero):
                raise EmbeddingInputError(
                    f"L2Normalize: rows {(start + zero[:5]).tolist()} are all-zero vectors and have "
                    "no direction to normalise"
                )
            out[start:start + len(block)] = block / norms[:, None]
        return out


# --------------------------------------------------------------------------------------------- ABTT


class AllButTheTop(OneToOneFeatureMixin, _EmbeddingTransform):
    """All-but-the-top: centre, then remove the projections on the top D principal directions.

    x' = (x - mu) - (x - mu) U_D U_D^T, with U_D the D leading eigenvectors of the (weighted)
    covariance. The output keeps all d coordinates; the D dominating directions carry zero variance.

    Parameters
    ----------
    n_components : int, optional
        D, the number of directions removed. ``None`` uses the paper's suggestion d / 100, rounded,
        and at least 1.

    Attributes
    ----------
    mean_ : ndarray of shape (d,)
    components_ : ndarray of shape (D, d)
        The removed directions, one per row.
    n_components_ : int
        D as used.

    References
    ----------
    Mu, J., Viswanath, P. "All-but-the-Top: Simple and Effective Postprocessing for Word
    Representations", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 300)).astype(np.float32)
    >>> AllButTheTop().fit(x).n_components_
    3
    """

    def __init__(self, n_components=None):
        self.n_components = n_components

    def fit(self, X, y=None, sample_weight=None):
        X = _validate(self, X, reset=True)
        n, d = X.shape
        D = _check_n_components(self.n_components, d, n)
        if D is None:
            D = max(1, int(np.floor(d / 100 + 0.5)))  # halves round up
        mean, cov = weighted_moments(X, _probabilities(sample_weight, X))
        _, U = sorted_eigh(cov)
        self.mean_ = mean
        self.components_ = U[:, :D].T.copy()
        self.n_components_ = D
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        P = np.eye(X.shape[1]) - self.components_.T @ self.components_
        return _affine(X, self.mean_, P)


# --------------------------------------------------------------------------------------------- whitening


class Whitening(ClassNamePrefixFeaturesOutMixin, _EmbeddingTransform):
    """PCA or ZCA whitening with a spectrum-scaled regulariser (BERT-whitening).

    With C = U diag(lambda) U^T the (weighted) covariance and e = eps * lambda_1:

    * ``"pca"``: x' = (x - mu) U diag(lambda + e)^(-1/2), keeping the first ``n_components``
      columns (Su et al., 2021);
    * ``"zca"``: x' = (x - mu) U diag(lambda + e)^(-1/2) U^T, which whitens while staying as close
      as possible to the original axes (Bell & Sejnowski, 1997).

    ``eps`` is relative to the largest eigenvalue because an absolute 1e-6 leaves the whitened
    covariance visibly off the identity on real embeddings whose variances are far below 1.

    Parameters
    ----------
    method : {"pca", "zca"}
    n_components : int, optional
        Keep only the k leading components, as BERT-whitening's dimension reduction. With ``"zca"``
        the output keeps d coordinates: the top-k subspace is whitened and rotated back,
        x' = (x - mu) U_k diag(lambda_k + e)^(-1/2) U_k^T.
    eps : float
        Regulariser, relative to lambda_1.

    Attributes
    ----------
    mean_ : ndarray of shape (d,)
    eigenvalues_ : ndarray of shape (d,)
        Covariance spectrum, descending.
    whitening_ : ndarray of shape (d, d_out)
        The matrix W in x' = (x - mu) W.
    n_components_ : int
        Output dimension.

    References
    ----------
    Su, J., Cao, J., Liu, W., Ou, Y. "Whitening Sentence Representations for Better Semantics and
    Faster Retrieval", arXiv:2103.15316, 2021.
    Kessy, A., Lewin, A., Strimmer, K. "Optimal Whitening and Decorrelation", The American
    Statistician, 2018 (PCA versus ZCA whitening).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 4)) * [5.0, 2.0, 1.0, 0.5]
    >>> z = Whitening(method="zca").fit_transform(x)
    >>> np.allclose(np.cov(z.T, bias=True), np.eye(4), atol=1e-3)
    True
    """

    def __init__(self, method="pca", n_components=None, eps=1e-6):
        self.method = method
        self.n_components = n_components
        self.eps = eps

    def fit(self, X, y=None, sample_weight=None):
        if self.method not in ("pca", "zca"):
            raise EmbeddingInputError(f"method must be 'pca' or 'zca', got {self.method!r}")
        eps = _check_eps(self.eps)
        X = _validate(self, X, reset=True, min_samples=2)
        n, d = X.shape
        k = _check_n_components(self.n_components, d, n)
        mean, cov = weighted_moments(X, _probabilities(sample_weight, X))
        lam, U = sorted_eigh(cov)
        if lam[0] <= 0:
            raise EmbeddingInputError(
                f"{type(self).__name__}: the fitted rows have zero variance (all identical); "
                "there is no covariance to whiten"
            )
        scale = 1.0 / np.sqrt(lam + eps * lam[0])
        k = d if k is None else k
        W = U[:, :k] * scale[:k]
        if self.method == "zca":
            W = W @ U[:, :k].T
        self.mean_ = mean
        self.eigenvalues_ = lam
        self.components_ = U.T.copy()
        self.whitening_ = W
        self.n_components_ = W.shape[1]
        self._n_features_out = W.shape[1]
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        return _affine(X, self.mean_, self.whitening_)


class ZipfianWhitening(Whitening):
    """Whitening with the mean and covariance weighted by item (word) frequency.

    Yokoi et al. (2024) show that uniform whitening treats rare and frequent words alike although
    the data are Zipfian; replacing every expectation by its p-weighted version (p = frequency /
    total) gives whitened vectors that are isotropic *under the word distribution*:
    sum_i p_i x'_i = 0 and sum_i p_i x'_i x'_i^T = I. Pass the frequencies as ``sample_weight``;
    without them p is uniform and this is ordinary PCA whitening.

    Parameters
    ----------
    method, n_components, eps
        As in :class:`Whitening` (PCA whitening by default, as in the paper).

    References
    ----------
    Yokoi, S., Bao, H., Kurita, H., Shimodaira, H. "Zipfian Whitening", NeurIPS 2024.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 8)) + 3.0
    >>> freq = 1.0 / np.arange(1, 1001)                      # Zipf's law
    >>> z = ZipfianWhitening().fit(x, sample_weight=freq).transform(x)
    >>> p = freq / freq.sum()
    >>> np.allclose((z * p[:, None]).T @ z, np.eye(8), atol=1e-3)
    True
    """


# --------------------------------------------------------------------------------------------- PHI-S


def hadamard(d: int) -> np.ndarray:
    """The Sylvester Hadamard matrix of order ``d`` (a power of two), normalised to be orthogonal."""
    if d < 1 or d & (d - 1):
        raise EmbeddingInputError(f"Sylvester Hadamard matrices exist for powers of two only, got {d}")
    H = np.ones((1, 1))
    while H.shape[0] < d:
        H = np.block([[H, H], [H, -H]])
    return H / np.sqrt(d)


def equal_diagonal_rotation(variances: np.ndarray) -> np.ndarray:
    """An orthogonal R with diag(R^T diag(v) R) constant, for any dimension (Givens rotations).

    Each step rotates one coordinate whose variance is above the mean with one below it, by the
    angle that sets one of the two exactly to the mean; d - 1 steps equalise all of them (the
    constructive proof of the Schur-Horn theorem used by Davies & Higham, 2000). The covariance
    stays a similarity transform of diag(v), so only the diagonal is equalised, as with a Hadamard
    rotation.
    """
    v = np.asarray(variances, dtype=np.float64)
    d = len(v)
    target = v.mean()
    A = np.diag(v)
    R = np.eye(d)
    tol = 1e-12 * max(abs(target), 1e-300)
    for _ in range(d - 1):
        diag = np.diag(A) - target
        low, high = np.flatnonzero(diag < -tol), np.flatnonzero(diag > tol)
        if len(low) == 0 or len(high) == 0:
            break
        i, j = low[0], high[0]
        # Solve for t = tan(theta) so that the rotated A_ii equals the target.
        a, b, c = diag[j], -2 * A[i, j], diag[i]  # a t^2 + b t + c = 0, with a > 0 > c
        t = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
        cos = 1.0 / np.sqrt(1 + t * t)
        sin = t * cos
        G = np.array([[cos, sin], [-sin, cos]])
        idx = [i, j]
        A[:, idx] = A[:, idx] @ G
        A[idx, :] = G.T @ A[idx, :]
        R[:, idx] = R[:, idx] @ G
    return R


class PHIS(ClassNamePrefixFeaturesOutMixin, _EmbeddingTransform):
    """PHI-S: PCA rotation, Hadamard rotation and one scale, so every dimension has variance 1.

    x' = (x - mu) U H / alpha, with U the covariance eigenvectors, H a normalised Hadamard matrix
    and alpha = sqrt(mean(lambda)). Because every entry of H has magnitude 1/sqrt(d), each output
    coordinate receives an equal share of every PCA variance, so all d coordinates end with variance
    mean(lambda) before scaling, without the noise amplification of whitening (the rotation is
    orthogonal and the scale is isotropic, so cosine and distance ranks are preserved).

    Dimensions that are not a power of two: Sylvester's construction needs d = 2^m, and Hadamard
    matrices of other orders are not available in general. For such d this class uses an orthogonal
    rotation built from d - 1 Givens rotations that gives exactly the same equal-variance property
    (see :func:`equal_diagonal_rotation`); ``rotation_kind_`` records which was used.

    Attributes
    ----------
    mean_ : ndarray of shape (d,)
    rotation_ : ndarray of shape (d, d)
        U H (or U R): the full orthogonal rotation.
    scale_ : float
        alpha.
    rotation_kind_ : {"hadamard", "givens"}

    References
    ----------
    Ranzinger, M., Barker, J., Heinrich, G., Molchanov, P., Catanzaro, B., Tao, A. "PHI-S:
    Distribution Balancing for Label-Free Multi-Teacher Distillation", arXiv:2410.01680, 2024.
    Davies, P. I., Higham, N. J. "Numerically stable generation of correlation matrices and their
    factors", BIT 2000 (the Givens construction).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 8)) * np.arange(1, 9)
    >>> z = PHIS().fit_transform(x)
    >>> np.round(z.var(axis=0), 3)
    array([1., 1., 1., 1., 1., 1., 1., 1.], dtype=float32)
    """

    def fit(self, X, y=None, sample_weight=None):
        X = _validate(self, X, reset=True, min_samples=2)
        d = X.shape[1]
        mean, cov = weighted_moments(X, _probabilities(sample_weight, X))
        lam, U = sorted_eigh(cov)
        if lam[0] <= 0:
            raise EmbeddingInputError("PHIS: the fitted rows have zero variance (all identical)")
        if d & (d - 1) == 0:
            rot, kind = hadamard(d), "hadamard"
        else:
            rot, kind = equal_diagonal_rotation(lam), "givens"
        self.mean_ = mean
        self.eigenvalues_ = lam
        self.rotation_ = U @ rot
        self.rotation_kind_ = kind
        self.scale_ = float(np.sqrt(lam.mean()))
        self._n_features_out = d
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        return _affine(X, self.mean_, self.rotation_ / self.scale_)


# --------------------------------------------------------------------------------------------- rogue dims


def _unit_moments(X: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p-weighted E[u_j] and E[u_j^2] of the unit vectors u = x / ||x|| (zero rows count as 0)."""
    m1, m2 = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    for start, block in iter_row_blocks(X, _BLOCK_ROWS):
        b = block.astype(np.float64)
        norms = np.linalg.norm(b, axis=1)
        u = b / np.where(norms > 0, norms, 1.0)[:, None]
        pb = p[start:start + len(b)]
        m1 += pb @ u
        m2 += pb @ (u * u)
    return m1, m2


def cosine_contributions(X: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
    """Per-dimension contribution E[u_j]^2 to the expected cosine of random pairs.

    With u = x / ||x||, the expected cosine of two independent draws is sum_j E[u_j]^2 (Timkey &
    van Schijndel, 2021), so dimension j contributes E[u_j]^2 (p-weighted expectations). All-zero
    rows have no direction and contribute nothing.
    """
    if p is None:
        p = np.full(X.shape[0], 1.0 / X.shape[0])
    return _unit_moments(X, p)[0] ** 2


class RogueDimensions(_EmbeddingTransform):
    """Detect rogue dimensions and remove them, or standardise every dimension.

    A rogue dimension dominates cosine similarity: its share of the expected cosine of random pairs,
    E[u_j]^2 / sum_k E[u_k]^2 (Timkey & van Schijndel, 2021), is far above the fair share 1/d. When
    ``dims`` is None, a dimension is flagged when its share is at least ``threshold`` (default
    10 / d, ten times the fair share) and its mean E[u_j] is at least five standard errors from 0
    (so sampling noise in isotropic data flags nothing; the standard error uses the effective sample
    size 1 / sum p_i^2).

    Parameters
    ----------
    mode : {"remove", "standardize"}
        ``"remove"`` drops the rogue dimensions (the output has d - len(rogue) columns).
        ``"standardize"`` z-scores *every* dimension with the fitted (weighted) mean and standard
        deviation, the post-processing Timkey & van Schijndel recommend; rogue dimensions are still
        detected and reported in ``rogue_dims_``.
    dims : sequence of int, optional
        Rogue dimensions given by hand instead of detected.
    threshold : float, optional
        Share of expected cosine above which a dimension is rogue; default 10 / d.

    Attributes
    ----------
    cosine_share_ : ndarray of shape (d,)
        Each dimension's share of the expected cosine (sums to 1; NaN-free, zeros if the mean
        direction vanishes).
    expected_cosine_ : float
        sum_j E[u_j]^2, the expected cosine of random pairs.
    rogue_dims_ : ndarray of int
        Flagged (or given) dimensions, by decreasing share.
    mean_, scale_ : ndarray of shape (d,)
        Per-dimension mean and standard deviation (``"standardize"``; constant dimensions get scale 1).

    References
    ----------
    Timkey, W., van Schijndel, M. "All Bark and No Bite: Rogue Dimensions in Transformer Language
    Models Obscure Representational Quality", EMNLP 2021.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 50))
    >>> x[:, 7] += 30.0                                      # one dimension dominates cosine
    >>> RogueDimensions().fit(x).rogue_dims_
    array([7])
    """

    def __init__(self, mode="remove", dims=None, threshold=None):
        self.mode = mode
        self.dims = dims
        self.threshold = threshold

    def fit(self, X, y=None, sample_weight=None):
        if self.mode not in ("remove", "standardize"):
            raise EmbeddingInputError(f"mode must be 'remove' or 'standardize', got {self.mode!r}")
        X = _validate(self, X, reset=True)
        n, d = X.shape
        p = _probabilities(sample_weight, X)
        m1, m2 = _unit_moments(X, p)
        contrib = m1 ** 2
        total = contrib.sum()
        share = contrib / total if total > 0 else np.zeros(d)
        if self.dims is not None:
            dims = np.unique(np.asarray(self.dims, dtype=np.int64).ravel())
            if len(dims) and (dims.min() < 0 or dims.max() >= d):
                raise EmbeddingInputError(f"dims must be column numbers in [0, {d}); got {self.dims!r}")
        else:
            threshold = 10.0 / d if self.threshold is None else float(self.threshold)
            # In isotropic data the shares are pure sampling noise and one can pass 10 / d by
            # chance, so a rogue mean must also stand out from its standard error (z >= 5).
            n_eff = 1.0 / np.sum(p * p)
            var_u = np.clip(m2 - m1 ** 2, 0.0, None)
            significant = contrib >= 25.0 * var_u / n_eff
            dims = np.flatnonzero((share >= threshold) & significant)
        if self.mode == "remove" and len(dims) >= d:
            raise EmbeddingInputError(
                f"RogueDimensions would remove all {d} dimensions; pass fewer dims or a higher threshold"
            )
        self.cosine_share_ = share
        self.expected_cosine_ = float(total)
        self.rogue_dims_ = dims[np.argsort(-share[dims], kind="stable")]
        self.kept_dims_ = np.setdiff1d(np.arange(d), dims)
        mean, cov = weighted_moments(X, p) if self.mode == "standardize" else (None, None)
        if mean is not None:
            std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
            self.mean_ = mean
            self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        if self.mode == "remove":
            return np.ascontiguousarray(X[:, self.kept_dims_], dtype=np.float32)
        out = _affine(X, self.mean_, None)
        out *= (1.0 / self.scale_).astype(np.float32)
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        return names if self.mode == "standardize" else names[self.kept_dims_]
