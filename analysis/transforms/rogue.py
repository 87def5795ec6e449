"""Rogue dimensions (Timkey & van Schijndel, 2021): detect the coordinates that dominate cosine, then
remove them or standardise every dimension."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from .._core import EmbeddingInputError, validate_estimator_input
from ._base import CONSTANT_TOL, EmbeddingTransform, affine, fitted_moments, probabilities


class RogueDimensions(EmbeddingTransform):
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
        Per-dimension mean and standard deviation (``"standardize"``; constant dimensions, those
        whose variance is only rounding noise relative to their mean square, get scale 1).

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
        X = validate_estimator_input(self, X, reset=True)
        n, d = X.shape
        moments = fitted_moments(X, probabilities(sample_weight, X))
        has_direction = moments.unit_weight_sum > 0  # else every row is zero
        m1 = moments.unit_mean if has_direction else np.zeros(d)
        contrib = m1 ** 2
        total = contrib.sum()
        share = np.nan_to_num(moments.cosine_shares(), nan=0.0)  # documented NaN-free
        if self.dims is not None:
            dims = np.unique(np.asarray(self.dims, dtype=np.int64).ravel())
            if len(dims) and (dims.min() < 0 or dims.max() >= d):
                raise EmbeddingInputError(f"dims must be column numbers in [0, {d}); got {self.dims!r}")
        else:
            threshold = 10.0 / d if self.threshold is None else float(self.threshold)
            # In isotropic data the shares are pure sampling noise and one can pass 10 / d by
            # chance, so a rogue mean must also stand out from its standard error (z >= 5).
            n_eff = moments.unit_weight_sum ** 2 / moments.unit_weight_sq_sum if has_direction else 1.0
            var_u = np.clip((moments.unit_sq_mean if has_direction else 0.0) - m1 ** 2, 0.0, None)
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
        if self.mode == "standardize":
            var = np.clip(np.diag(moments.covariance()), 0.0, None)
            mean = moments.mean
            # A dimension that is constant up to the rounding of its mean (identical rows give a
            # variance of ~1e-32) has nothing to standardise; dividing by that noise made unit-scale
            # noise of it. The relative rule is Moments.eigenvalues', per dimension.
            constant = var <= CONSTANT_TOL * (var + mean ** 2)
            self.mean_ = mean
            self.scale_ = np.where(constant, 1.0, np.sqrt(var))
        return self

    def transform(self, X):
        X = self._prepare_transform(X)
        if self.mode == "remove":
            return np.ascontiguousarray(X[:, self.kept_dims_], dtype=np.float32)
        return affine(X, self.mean_, None, who=type(self).__name__, column_scale=1.0 / self.scale_)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        return names if self.mode == "standardize" else names[self.kept_dims_]
