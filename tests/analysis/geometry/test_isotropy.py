"""Isotropy report: known answers on synthetic data and cross-checks with independent implementations."""

import json

import numpy as np
import pytest
from scipy.special import logsumexp

from embgeo.analysis.embeddings import EmbeddingSet
from embgeo.analysis.geometry.isotropy import (
    flag_rogue_dimensions,
    isoscore_from_eigenvalues,
    isotropy_report,
    pca_dimension,
    power_law_exponent,
    spectrum_summary,
)
from embgeo.analysis._core.validation import EmbeddingInputError

REPORT_KEYS = {"mean_cosine", "isoscore", "partition_isotropy", "effective_rank", "participation_ratio",
               "common_direction_share", "rogue_dimensions", "pca_dim_90", "pca_dim_95", "pca_dim_99"}


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def gaussian():
    return np.random.default_rng(0).normal(size=(2000, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def anisotropic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(800, 24)) @ rng.normal(size=(24, 24)) * np.linspace(0.2, 3.0, 24) + 0.7
    return x.astype(np.float32)


def test_isotropic_gaussian_is_isotropic(gaussian):
    d = gaussian.shape[1]
    for metric in ("cosine", "euclidean"):
        r = isotropy_report(gaussian, metric=metric)
        assert r.isoscore > 0.95
        assert abs(r.mean_cosine) < 0.01
        assert 0.9 * d < r.participation_ratio <= d
        assert 0.95 * d < r.effective_rank <= d
        assert r.common_direction_share < 0.01
        assert r.rogue_dimensions == []
        assert r.pca_dim_99 >= 0.9 * d
    # unit vectors of a Gaussian are uniform on the sphere: Z(c) is nearly the same in every direction
    assert isotropy_report(gaussian).partition_isotropy > 0.95


def test_data_on_a_line_has_isoscore_zero():
    rng = np.random.default_rng(2)
    v = rng.normal(size=16)
    x = rng.normal(size=(300, 1)) * v  # both signs, so unit vectors are +-v
    for metric in ("cosine", "euclidean"):
        r = isotropy_report(x, metric=metric)
        assert r.isoscore == pytest.approx(0.0, abs=1e-6)
        assert r.pca_dim_99 == 1 and r.effective_rank == pytest.approx(1.0, abs=1e-3)
    assert isoscore_from_eigenvalues([5.0] + [0.0] * 9) == pytest.approx(0.0, abs=1e-12)
    assert isoscore_from_eigenvalues(np.full(9, 0.3)) == pytest.approx(1.0)


def test_mean_cosine_equals_brute_force(anisotropic):
    x = anisotropic[:150]
    u = _unit(x)
    cos = u @ u.T
    expected = cos[~np.eye(len(u), dtype=bool)].mean()
    for metric in ("cosine", "dot"):
        assert isotropy_report(x, metric=metric, block_rows=17).mean_cosine == pytest.approx(expected, rel=1e-6)


def test_isoscore_matches_isoscore_package(anisotropic):
    IsoScore = pytest.importorskip("IsoScore.IsoScore")
    raw = isotropy_report(anisotropic, metric="euclidean").isoscore
    cos = isotropy_report(anisotropic, metric="cosine").isoscore
    assert 0.05 < raw < 0.95  # a case that actually discriminates
    assert raw == pytest.approx(float(IsoScore.IsoScore(anisotropic.astype(np.float64))), rel=1e-6)
    assert cos == pytest.approx(float(IsoScore.IsoScore(_unit(anisotropic))), rel=1e-6)


def test_spectrum_matches_svd_of_centred_data(anisotropic):
    r = isotropy_report(anisotropic, metric="euclidean", block_rows=100)
    # reference: singular values of the centred data, by SVD rather than blocked moments + eigh
    s = np.linalg.svd(anisotropic - anisotropic.mean(0, dtype=np.float64), compute_uv=False)
    lam = s**2 / len(anisotropic)
    np.testing.assert_allclose(r.eigenvalues, lam, rtol=1e-5, atol=1e-9 * lam[0])
    np.testing.assert_allclose(r.explained_variance_ratio, lam / lam.sum(), rtol=1e-5, atol=1e-12)
    assert r.participation_ratio == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-6)
    cum = np.cumsum(lam / lam.sum())
    assert r.pca_dim_95 == int(np.argmax(cum >= 0.95)) + 1
    p = s / s.sum()
    assert r.effective_rank == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-5)


def test_flat_spectrum_known_answers():
    s = spectrum_summary(np.r_[np.full(4, 2.0), np.zeros(6)], n=100)
    assert s["participation_ratio"] == pytest.approx(4.0)
    assert s["effective_rank"] == pytest.approx(4.0)
    assert (s["pca_dim_90"], s["pca_dim_95"], s["pca_dim_99"]) == (4, 4, 4)
    assert pca_dimension([0.5, 0.45, 0.05], 0.95) == 2  # reaches 95 % exactly, despite rounding


def test_subspace_pca_dimension():
    rng = np.random.default_rng(3)
    k, d = 5, 40
    x = rng.normal(size=(1000, k)) @ rng.normal(size=(k, d))
    for metric in ("cosine", "euclidean"):
        r = isotropy_report(x, metric=metric)
        assert r.pca_dim_95 <= k and r.pca_dim_99 <= k
        assert r.effective_rank < k + 0.05


def test_power_law_exponent():
    ks = np.arange(1, 201)
    alpha, k_range = power_law_exponent(3.0 * ks**-1.3)
    assert alpha == pytest.approx(1.3, abs=1e-9) and k_range == (2, 100)
    assert power_law_exponent(ks**-2.0, k_range=(5, 50))[1] == (5, 50)
    assert np.isnan(power_law_exponent([1.0, 0.5, 0.0, 0.0])[0])  # too few ranks to fit
    # Gaussian data whose covariance spectrum is k^-1
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 60)) * np.arange(1, 61) ** -0.5
    assert isotropy_report(x, metric="euclidean").power_law_alpha == pytest.approx(1.0, abs=0.1)


def test_planted_rogue_dimension_is_flagged(gaussian):
    x = np.array(gaussian[:1500])
    x[:, 17] += 4.0
    r = isotropy_report(x)
    assert [e["dim"] for e in r.rogue_dimensions] == [17]
    assert r.rogue_dimensions[0]["share"] > 0.9
    assert r.top_dimensions[0]["dim"] == 17 and len(r.top_dimensions) == 10
    assert r.common_direction_share > 0.25  # ~0.33 = 4^2 / (4^2 + 32)
    # two dominating dimensions are both flagged; a share spread over many is not
    shares = np.full(100, 0.2 / 98)
    shares[[3, 40]] = 0.4
    assert sorted(flag_rogue_dimensions(shares).tolist()) == [3, 40]
    assert flag_rogue_dimensions(np.full(100, 0.01)).size == 0


def test_partition_isotropy_matches_brute_force_and_survives_overflow(anisotropic):
    x = anisotropic[:300].astype(np.float64)
    u = _unit(x)
    _, vecs = np.linalg.eigh(u.T @ u)
    z = np.exp(u @ vecs).sum(axis=0)
    r = isotropy_report(x, block_rows=64)
    assert r.partition_isotropy == pytest.approx(z.min() / z.max(), rel=1e-4)
    # points at radius 800: every exp(<c, x>) overflows float64, yet Z ratios are representable
    rng = np.random.default_rng(8)
    big = 800.0 * _unit(rng.normal(size=(500, 4)))
    _, vecs = np.linalg.eigh(big.T @ big)
    log_z = logsumexp(big @ vecs, axis=0)
    assert (big @ vecs).max() > np.log(np.finfo(np.float64).max)
    got = isotropy_report(big, metric="euclidean", block_rows=64).partition_isotropy
    assert 0.0 < got < 1e-6
    assert np.log(got) == pytest.approx(log_z.min() - log_z.max(), rel=1e-3)


def test_weighted_uniform_equals_unweighted(anisotropic):
    plain = isotropy_report(anisotropic).to_dict()
    weighted = isotropy_report(EmbeddingSet(anisotropic, weights=np.full(len(anisotropic), 3.0)), weighted=True)
    assert weighted.weighted
    for key, value in plain.items():
        if key == "weighted":
            continue
        if key in ("rogue_dimensions", "top_dimensions"):
            assert [e["dim"] for e in weighted.to_dict()[key]] == [e["dim"] for e in value]
        elif isinstance(value, float):
            assert weighted.to_dict()[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
        elif isinstance(value, list) and value and isinstance(value[0], float):
            np.testing.assert_allclose(weighted.to_dict()[key], value, rtol=1e-6, atol=1e-12)


def test_weighted_equals_replicated_rows(anisotropic):
    x = anisotropic[:200]
    counts = np.random.default_rng(5).integers(1, 6, size=len(x))
    w = isotropy_report(EmbeddingSet(x, weights=counts), weighted=True, block_rows=33)
    rep = isotropy_report(np.repeat(x, counts, axis=0))
    for key in ("isoscore", "partition_isotropy", "participation_ratio", "effective_rank",
                "common_direction_share", "norm_mean", "norm_std", "power_law_alpha"):
        assert getattr(w, key) == pytest.approx(getattr(rep, key), rel=1e-5), key
    np.testing.assert_allclose(w.eigenvalues, rep.eigenvalues, rtol=1e-5, atol=1e-10)
    # the mean cosine weights distinct pairs by p_i p_j (copies of one item are not a pair)
    p = counts / counts.sum()
    u = _unit(x)
    off = ~np.eye(len(x), dtype=bool)
    pp = np.outer(p, p)[off]
    assert w.mean_cosine == pytest.approx(((u @ u.T)[off] * pp).sum() / pp.sum(), rel=1e-5)
    assert isotropy_report(EmbeddingSet(x, weights=counts)).n == len(x)  # weights ignored unless asked


def test_memmap_blocks_and_inputs_untouched(tmp_path, anisotropic):
    path = tmp_path / "x.npy"
    np.save(path, anisotropic)
    mm = np.load(path, mmap_mode="r")
    before = anisotropic.copy()
    a = isotropy_report(mm, block_rows=50)
    b = isotropy_report(anisotropic)
    np.testing.assert_array_equal(anisotropic, before)
    np.testing.assert_array_equal(np.asarray(mm), before)
    for key in REPORT_KEYS - {"rogue_dimensions"}:
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-5), key


def test_to_dict_is_json_with_report_keys(anisotropic):
    d = isotropy_report(anisotropic).to_dict()
    assert REPORT_KEYS <= d.keys()
    assert len(d["explained_variance_ratio"]) == anisotropic.shape[1]
    json.dumps(d)
    assert "isoscore" in repr(isotropy_report(anisotropic)) and "<table" in isotropy_report(anisotropic)._repr_html_()


def test_degenerate_and_zero_rows():
    same = np.tile(np.array([[1.0, 2.0, 3.0]]), (10, 1)) * np.arange(1, 11)[:, None]
    r = isotropy_report(same)  # one direction, different lengths: no variance among unit vectors
    assert r.mean_cosine == pytest.approx(1.0)
    assert np.isnan(r.isoscore) and r.pca_dim_95 == 0
    json.dumps(r.to_dict())
    x = np.random.default_rng(6).normal(size=(50, 4))
    x[7] = 0.0
    r = isotropy_report(x, metric="euclidean")
    assert r.zero_rows == 1
    u = _unit(np.delete(x, 7, axis=0))
    assert r.mean_cosine == pytest.approx((np.sum(u.sum(0) ** 2) - 49) / (49 * 48), rel=1e-6)


def test_bad_input_errors():
    x = np.random.default_rng(7).normal(size=(20, 3))
    with pytest.raises(EmbeddingInputError, match="weighted=True needs item weights"):
        isotropy_report(x, weighted=True)
    with pytest.raises(EmbeddingInputError, match="at least 2 vectors"):
        isotropy_report(x[:1])
    with pytest.raises(EmbeddingInputError, match="unknown metric"):
        isotropy_report(x, metric="manhattan")
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(EmbeddingInputError, match="NaN"):
        isotropy_report(bad)
    zero = x.copy()
    zero[5] = 0.0
    with pytest.raises(EmbeddingInputError, match="all-zero"):
        isotropy_report(zero, metric="cosine")
