"""Linear post-processing: centring, L2 normalisation, all-but-the-top, PCA/ZCA and Zipfian whitening.

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
from sklearn.base import ClassNamePrefixFeaturesOutMixin, OneToOneFeatureMixin

from .._core import EmbeddingInputError, find_zero_rows, iter_row_blocks, unit_rows, validate_estimator_input
from ._base import (
    BLOCK_ROWS,
    SPECTRUM_FLOOR,
    EmbeddingTransform,
    affine,
    check_eps,
    check_n_components,
    check_variance,
    fitted_moments,
    probabilities,
)


# --------------------------------------------------------------------------------------------- simple


class Center(OneToOneFeatureMixin, EmbeddingTransform):
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
        X = validate_estimator_input(self, X, reset=True)
        self.mean_ = fitted_moments(X, probabilities(sample_weight, X)).mean
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        return affine(X, self.mean_, None, who=type(self).__name__)


class L2Normalize(OneToOneFeatureMixin, EmbeddingTransform):
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
        X = validate_estimator_input(self, X, reset=True)
        probabilities(sample_weight, X)  # validated for a uniform API; normalising needs no statistics
        self.fitted_ = True  # stateless; marks the estimator as fitted for check_is_fitted
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        out = np.empty(X.shape, dtype=np.float32)
        zero = find_zero_rows(X)
        if len(zero):
            raise EmbeddingInputError(
                f"L2Normalize: rows {zero[:5].tolist()} are all-zero vectors and have no direction to normalise")
        for start, block in iter_row_blocks(X, BLOCK_ROWS):
            out[start:start + len(block)] = unit_rows(block, dtype=np.float64)
        return out


# --------------------------------------------------------------------------------------------- ABTT


class AllButTheTop(OneToOneFeatureMixin, EmbeddingTransform):
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
        X = validate_estimator_input(self, X, reset=True)
        n, d = X.shape
        D = check_n_components(self.n_components, d, n)
        if D is None:
            D = max(1, int(np.floor(d / 100 + 0.5)))  # halves round up
        moments = fitted_moments(X, probabilities(sample_weight, X))
        _, U = moments.principal_axes()
        self.mean_ = moments.mean
        self.components_ = U[:, :D].T.copy()
        self.n_components_ = D
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        P = np.eye(X.shape[1]) - self.components_.T @ self.components_
        return affine(X, self.mean_, P, who=type(self).__name__)


# --------------------------------------------------------------------------------------------- whitening


class Whitening(ClassNamePrefixFeaturesOutMixin, EmbeddingTransform):
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
        Regulariser, relative to lambda_1: a finite number in [0, 1] (above 1 it no longer whitens, it
        only shrinks). ``eps=0`` whitens exactly, and is refused when a kept direction has no
        variance (fewer rows than dimensions, a constant coordinate): it would divide by zero.

    Raises
    ------
    EmbeddingInputError
        From ``fit``: ``eps`` out of range or too small for the spectrum (see ``eps``), and data without
        variance: identical rows, or rows that differ only below float precision relative to their
        scale (the relative test of ``isotropy_report``), which would be whitened into noise.

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
        eps = check_eps(self.eps)
        X = validate_estimator_input(self, X, reset=True, min_samples=2)
        n, d = X.shape
        k = check_n_components(self.n_components, d, n)
        moments = fitted_moments(X, probabilities(sample_weight, X))
        mean = moments.mean
        check_variance(moments, type(self).__name__)
        lam, U = moments.principal_axes()
        k = d if k is None else k
        regularised = lam + eps * lam[0]
        null = np.flatnonzero(regularised[:k] <= SPECTRUM_FLOOR * lam[0])
        if len(null):
            rank = int(np.sum(lam > SPECTRUM_FLOOR * lam[0]))
            raise EmbeddingInputError(
                f"{type(self).__name__}: eps={eps:g} leaves {len(null)} of the {k} whitened directions without "
                f"variance (the covariance has rank {rank} of {d}): whitening them would divide by (nearly) "
                f"zero; use eps >= 1e-12 (default 1e-6) or n_components <= {rank}")
        W = U[:, :k] / np.sqrt(regularised[:k])  # the kept directions only: the others may be 0
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
        return affine(X, self.mean_, self.whitening_, who=type(self).__name__)


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
