"""Transforms: the scikit-learn contract, and each transform against what its definition implies."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from embgeo.analysis import EmbeddingInputError
from embgeo.analysis.transforms import (
    PHIS,
    AllButTheTop,
    Center,
    L2Normalize,
    RogueDimensions,
    Whitening,
    ZipfianWhitening,
    equal_diagonal_rotation,
    hadamard,
)

ALL = [
    Center(), L2Normalize(), AllButTheTop(), Whitening(), Whitening(method="zca"), ZipfianWhitening(),
    PHIS(), RogueDimensions(), RogueDimensions(mode="standardize"),
]

_RANK_DEFICIENT = (
    "the check's data have fewer rows than dimensions, so the covariance has a repeated zero "
    "eigenvalue whose eigenvectors are arbitrary; the basis chosen for that null space differs "
    "between the weighted and repeated fits, and whitening/PHI-S scale it by 1/sqrt(eps). "
    "Weighted equivalence on full-rank data is tested in test_sample_weight_equals_repetition"
)


def _expected_failures(est):
    if isinstance(est, L2Normalize):
        return {"check_estimators_dtypes": "the check's integer data contain an all-zero row, which "
                "has no direction; L2Normalize refuses it by design"}
    if isinstance(est, PHIS) or (isinstance(est, Whitening) and est.method == "pca"):
        return {"check_sample_weight_equivalence_on_dense_data": _RANK_DEFICIENT}
    if isinstance(est, Whitening) and est.method == "zca":
        # U diag U^T is the same for any basis of the null space in exact arithmetic, but the
        # 1/sqrt(eps) scale there magnifies rounding: on a 2-core AMD EPYC (Zen 3, OpenBLAS Haswell
        # kernels) one of 450 outputs differed by one float32 ulp (2.1e-7 relative, tolerance 1e-7).
        return {"check_sample_weight_equivalence_on_dense_data": _RANK_DEFICIENT + "; for ZCA the "
                "scale magnifies rounding, which on some CPUs leaves one float32 ulp of difference"}
    return {}


@parametrize_with_checks(ALL, expected_failed_checks=_expected_failures)
def test_sklearn_contract(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------------- data


def anisotropic(n=2000, d=16, seed=0, offset=3.0):
    """Correlated Gaussian data with a known, well-conditioned covariance and a non-zero mean."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A = np.linspace(3.0, 0.5, d)[:, None] * Q  # standard deviations 3 ... 0.5 along rotated axes
    return (rng.normal(size=(n, d)) @ A + offset).astype(np.float32)


def weighted_cov(z, p):
    z = z.astype(np.float64)
    mu = p @ z
    return ((z - mu) * p[:, None]).T @ (z - mu), mu


# --------------------------------------------------------------------------------------------- whitening


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_whitening_gives_identity_covariance(method):
    x = anisotropic()
    est = Whitening(method=method)
    z = est.fit_transform(x)
    assert z.dtype == np.float32 and z.shape == x.shape
    cov, mu = weighted_cov(z, np.full(len(z), 1 / len(z)))
    np.testing.assert_allclose(mu, 0, atol=1e-5)
    np.testing.assert_allclose(cov, np.eye(x.shape[1]), atol=2e-3)
    # Exactly: the whitened spectrum is lambda / (lambda + eps lambda_1), from an independent eigh.
    lam, U = np.linalg.eigh(np.cov(x.T.astype(np.float64), bias=True))
    shrink = lam / (lam + 1e-6 * lam.max())
    expected = np.diag(shrink[::-1]) if method == "pca" else (U * shrink) @ U.T
    np.testing.assert_allclose(cov, expected, atol=2e-5)


def test_zca_stays_closest_to_the_original_axes():
    # Among all whitening matrices, ZCA maximises the cross-covariance between x and x' (Kessy et
    # al., 2018): its cross-covariance with the input is symmetric positive definite.
    x = anisotropic()
    z = Whitening(method="zca").fit_transform(x)
    cross = ((x - x.mean(0)).T.astype(np.float64) @ z) / len(x)
    np.testing.assert_allclose(cross, cross.T, atol=1e-3)
    assert np.linalg.eigvalsh((cross + cross.T) / 2).min() > 0


def test_pca_whitening_keeps_leading_components():
    x = anisotropic()
    full = Whitening().fit(x)
    cut = Whitening(n_components=5).fit(x)
    z = cut.transform(x)
    assert z.shape == (len(x), 5)
    np.testing.assert_allclose(z, full.transform(x)[:, :5], atol=1e-5)
    assert list(cut.get_feature_names_out()) == [f"whitening{i}" for i in range(5)]


def test_eps_is_relative_to_the_spectrum():
    # Tiny-scale data (variances ~1e-6, as in some real embeddings): an absolute 1e-6 would shrink
    # the whitened variances to about 1/2; eps relative to lambda_1 keeps them at 1.
    x = anisotropic() * 1e-3
    z = Whitening().fit_transform(x)
    np.testing.assert_allclose(np.var(z.astype(np.float64), axis=0), 1.0, atol=1e-4)
    est = Whitening(eps=1e-2).fit(x)
    lam = est.eigenvalues_
    np.testing.assert_allclose(np.var(est.transform(x).astype(np.float64), axis=0),
                               lam / (lam + 1e-2 * lam[0]), rtol=1e-3)


def test_zipfian_whitening_gives_weighted_identity():
    x = anisotropic(n=3000)
    freq = 1.0 / np.arange(1, len(x) + 1)  # Zipf's law over the rows
    p = freq / freq.sum()
    z = ZipfianWhitening().fit(x, sample_weight=freq).transform(x)
    cov, mu = weighted_cov(z, p)
    np.testing.assert_allclose(mu, 0, atol=1e-5)
    np.testing.assert_allclose(cov, np.eye(x.shape[1]), atol=1e-4)
    # ... and is not the uniform whitening: the uniform covariance is off the identity.
    cov_u, _ = weighted_cov(z, np.full(len(z), 1 / len(z)))
    assert np.abs(cov_u - np.eye(x.shape[1])).max() > 0.05


@pytest.mark.parametrize("est", [Center(), AllButTheTop(n_components=2), Whitening(), ZipfianWhitening(),
                                 Whitening(method="zca"), PHIS(), RogueDimensions(mode="standardize")])
def test_sample_weight_equals_repetition(est):
    x = anisotropic(n=300, d=8)
    counts = np.random.default_rng(1).integers(0, 4, size=len(x))
    weighted = est.fit(x, sample_weight=counts).transform(x)
    repeated = type(est)(**est.get_params()).fit(np.repeat(x, counts, axis=0)).transform(x)
    np.testing.assert_allclose(weighted, repeated, atol=1e-4)


# --------------------------------------------------------------------------------------------- ABTT


def test_all_but_the_top_removes_the_top_directions():
    x = anisotropic(n=2000, d=32)
    est = AllButTheTop(n_components=3).fit(x)
    z = est.transform(x)
    # The removed directions are the covariance's top-3 eigenvectors, found independently here.
    lam, U = np.linalg.eigh(np.cov(x.T.astype(np.float64), bias=True))
    top = U[:, ::-1][:, :3]
    np.testing.assert_allclose(np.abs(est.components_ @ top), np.eye(3), atol=1e-6)
    assert np.abs(z @ top).max() < 1e-4
    # Everything orthogonal to them is kept: the variance left is the sum of the other eigenvalues.
    np.testing.assert_allclose(z.astype(np.float64).var(0).sum(), lam[::-1][3:].sum(), rtol=1e-4)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)


def test_all_but_the_top_default_is_d_over_100():
    rng = np.random.default_rng(0)
    assert AllButTheTop().fit(rng.normal(size=(50, 40))).n_components_ == 1
    assert AllButTheTop().fit(rng.normal(size=(50, 149))).n_components_ == 1
    assert AllButTheTop().fit(rng.normal(size=(50, 250))).n_components_ == 3
    with pytest.raises(EmbeddingInputError, match="n_components=50 is out of range"):
        AllButTheTop(n_components=50).fit(rng.normal(size=(50, 40)))


# --------------------------------------------------------------------------------------------- PHI-S


def test_hadamard_is_orthogonal_with_flat_entries():
    H = hadamard(16)
    np.testing.assert_allclose(H @ H.T, np.eye(16), atol=1e-12)
    np.testing.assert_allclose(np.abs(H), 0.25)
    with pytest.raises(EmbeddingInputError, match="powers of two"):
        hadamard(12)


@pytest.mark.parametrize("d", [16, 12])  # Hadamard for 2^m; Givens construction otherwise
def test_phis_equalises_variance_and_preserves_geometry(d):
    x = anisotropic(n=3000, d=d)
    est = PHIS().fit(x)
    assert est.rotation_kind_ == ("hadamard" if d == 16 else "givens")
    z = est.transform(x)
    np.testing.assert_allclose(z.astype(np.float64).var(0), 1.0, atol=1e-4)
    # Orthogonal rotation and one scale: centred distances shrink by exactly 1 / scale_.
    R = est.rotation_
    np.testing.assert_allclose(R.T @ R, np.eye(d), atol=1e-10)
    xc = x - est.mean_
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), np.linalg.norm(xc, axis=1) / est.scale_, rtol=1e-4)
    np.testing.assert_allclose(est.scale_ ** 2, np.trace(np.cov(x.T.astype(np.float64), bias=True)) / d, rtol=1e-6)


def test_equal_diagonal_rotation_on_a_skewed_spectrum():
    v = np.array([100.0, 10.0, 1.0, 0.1, 0.01])
    R = equal_diagonal_rotation(v)
    np.testing.assert_allclose(R.T @ R, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(np.diag(R.T @ np.diag(v) @ R), v.mean(), rtol=1e-10)


# --------------------------------------------------------------------------------------------- rogue


def test_rogue_dimensions_detected_and_removed():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 64)).astype(np.float32)
    x[:, 5] += 20.0
    x[:, 40] -= 12.0
    est = RogueDimensions().fit(x)
    assert list(est.rogue_dims_) == [5, 40]
    # Share definition: E[u_j]^2 / sum_k E[u_k]^2, computed here directly.
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    share = u.mean(0) ** 2 / (u.mean(0) ** 2).sum()
    np.testing.assert_allclose(est.cosine_share_, share, rtol=1e-4, atol=1e-7)
    # Expected cosine equals the mean cosine over distinct pairs, up to the self-pair term.
    n = len(u)
    pairwise = ((u.sum(0) ** 2).sum() - n) / (n * (n - 1))
    assert est.expected_cosine_ == pytest.approx(pairwise, abs=2e-3)
    z = est.transform(x)
    assert z.shape == (1000, 62)
    np.testing.assert_array_equal(z, np.delete(x, [5, 40], axis=1))
    assert list(est.get_feature_names_out()) == [f"x{i}" for i in range(64) if i not in (5, 40)]


def test_rogue_dimensions_none_in_isotropic_data_and_given_dims():
    x = np.random.default_rng(0).normal(size=(1000, 64))
    assert len(RogueDimensions().fit(x).rogue_dims_) == 0
    assert RogueDimensions(dims=[3, 1]).fit(x).transform(x).shape == (1000, 62)
    with pytest.raises(EmbeddingInputError, match="dims must be column numbers"):
        RogueDimensions(dims=[64]).fit(x)


def test_rogue_standardize_zscores_every_dimension():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 32)) * rng.uniform(0.1, 5, size=32) + 4.0
    x[:, 0] += 30
    est = RogueDimensions(mode="standardize").fit(x)
    z = est.transform(x)
    assert list(est.rogue_dims_) == [0]
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-5)


# --------------------------------------------------------------------------------------------- common


FITTED_BY_HAND = [
    (Center(), lambda e, q: q - e.mean_),
    (AllButTheTop(n_components=2), lambda e, q: (q - e.mean_) - (q - e.mean_) @ e.components_.T @ e.components_),
    (Whitening(), lambda e, q: (q - e.mean_) @ e.whitening_),
    (Whitening(method="zca", n_components=4), lambda e, q: (q - e.mean_) @ e.whitening_),
    (PHIS(), lambda e, q: (q - e.mean_) @ e.rotation_ / e.scale_),
    (RogueDimensions(mode="standardize"), lambda e, q: (q - e.mean_) / e.scale_),
]


@pytest.mark.parametrize("est,by_hand", FITTED_BY_HAND, ids=lambda v: type(v).__name__)
def test_queries_transformed_with_the_corpus_statistics(est, by_hand):
    corpus = anisotropic(n=1500, d=8, seed=0)
    queries = anisotropic(n=40, d=8, seed=7, offset=-1.0)
    est.fit(corpus)
    expected = by_hand(est, queries.astype(np.float64))
    np.testing.assert_allclose(est.transform(queries), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("est", ALL, ids=lambda e: repr(e))
def test_inputs_untouched_and_float32_out(est):
    x = anisotropic(n=200, d=16).astype(np.float64)
    w = np.random.default_rng(0).uniform(0.5, 2, size=len(x))
    x_before, w_before = x.copy(), w.copy()
    z = est.fit(x, sample_weight=w).transform(x)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)
    x32 = x.astype(np.float32)
    x32.flags.writeable = False  # a read-only float32 view (e.g. a memory map) must be accepted
    est.fit(x32).transform(x32)


def test_pipeline_of_transforms():
    x = anisotropic(n=500, d=32)
    pipe = make_pipeline(AllButTheTop(n_components=1), Whitening(n_components=8), L2Normalize())
    z = pipe.fit_transform(x)
    assert z.shape == (500, 8) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    assert len(pipe.get_feature_names_out()) == 8


def test_bad_input_messages():
    with pytest.raises(EmbeddingInputError, match="method must be 'pca' or 'zca'"):
        Whitening(method="pcaa").fit(np.ones((5, 2)))
    with pytest.raises(EmbeddingInputError, match="zero variance"):
        Whitening().fit(np.ones((5, 2)))
    with pytest.raises(EmbeddingInputError, match="NaN"):
        Center().fit(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(EmbeddingInputError, match="rows \\[1\\] are all-zero"):
        L2Normalize().fit_transform(np.array([[1.0, 2.0], [0.0, 0.0]]))
    with pytest.raises(EmbeddingInputError, match="negative"):
        Center().fit(np.ones((3, 2)), sample_weight=[1, -1, 1])
    est = Whitening().fit(anisotropic(n=100, d=8))
    with pytest.raises(EmbeddingInputError, match="8 features"):
        est.transform(np.ones((3, 5)))
