"""PHI-S (Ranzinger et al., 2024): equal variance in every dimension by an orthogonal rotation and one scale."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin

from .._core import EmbeddingInputError, validate_estimator_input
from ._base import EmbeddingTransform, affine, check_variance, fitted_moments, probabilities


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


class PHIS(ClassNamePrefixFeaturesOutMixin, EmbeddingTransform):
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
        X = validate_estimator_input(self, X, reset=True, min_samples=2)
        d = X.shape[1]
        moments = fitted_moments(X, probabilities(sample_weight, X))
        mean = moments.mean
        check_variance(moments, type(self).__name__)
        lam, U = moments.principal_axes()
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
        return affine(X, self.mean_, self.rotation_ / self.scale_, who=type(self).__name__)
