"""Intrinsic dimension estimators against data of known dimension and against scikit-dimension."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import skdim  # an independent implementation, a declared test dependency: missing, the run must fail

from embgeo.analysis import EmbeddingInputError, EmbeddingSet
from embgeo.analysis.geometry.scale import gride_curve
from embgeo.analysis import (
    IntrinsicDimensionReport,
    intrinsic_dimension,
    local_intrinsic_dimension,
    mle_dimension,
    twonn,
)

N, D = 2000, 32


def _isometry(rng, d, k):
    """d x k matrix with orthonormal columns: a random isometric embedding of R^k into R^d."""
    return np.linalg.qr(rng.normal(size=(d, k)))[0]


def sphere(k, *, n=N, d=D, seed=0, random_norms=False):
    """Uniform points on the unit k-sphere S^k in R^(k+1), rotated into R^d.

    With ``random_norms`` each point is scaled by a random factor: the directions (what cosine
    sees) still form a k-sphere, while the euclidean point cloud becomes (k+1)-dimensional.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k + 1))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    if random_norms:
        z *= rng.uniform(0.5, 2.0, size=(n, 1))
    return (z @ _isometry(rng, d, k + 1).T).astype(np.float32)


def subspace(k, *, n=N, d=D, seed=0, offset=0.0):
    """Gaussian points on a k-dimensional affine subspace of R^d (a random isometry of R^k).

    ``offset`` moves the subspace off the origin along a unit direction orthogonal to it; under
    cosine, normalising then maps it one-to-one onto a k-dimensional patch of the unit sphere (a
    linear subspace through the origin would lose a dimension to normalisation).
    """
    rng = np.random.default_rng(seed)
    q = _isometry(rng, d, k + 1)
    x = rng.normal(size=(n, k)) @ q[:, :k].T + offset * q[:, k]
    return x.astype(np.float32)


def _data(kind, k, metric, seed=0):
    if kind == "sphere":
        return sphere(k, seed=seed, random_norms=metric == "cosine")
    return subspace(k, seed=seed, offset=6.0 if metric == "cosine" else 0.0)


# ------------------------------------------------------------------------------------ known answers


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("kind", ["sphere", "subspace"])
@pytest.mark.parametrize("k", [2, 5, 8])
def test_estimators_recover_known_dimension(kind, k, metric):
    es = EmbeddingSet(_data(kind, k, metric, seed=k))
    two = twonn(es, metric=metric, bootstrap=0)
    mle = mle_dimension(es, metric=metric, k=10, bootstrap=0)
    lid = local_intrinsic_dimension(es, metric=metric, k=10)
    assert two.dimension == pytest.approx(k, rel=0.10)
    assert two.dimension_linefit == pytest.approx(k, rel=0.10)
    assert mle.dimension == pytest.approx(k, rel=0.10)
    assert np.median(lid) == pytest.approx(k, rel=0.10)
    assert two.n_duplicates == mle.n_duplicates == 0


def test_cosine_sees_directions_only():
    """Random norms add a dimension for euclidean distance but none for cosine (chord) distance."""
    x = sphere(3, random_norms=True, seed=1)
    assert twonn(x, metric="cosine", bootstrap=0).dimension == pytest.approx(3, rel=0.10)
    assert twonn(x, metric="euclidean", bootstrap=0).dimension == pytest.approx(4, rel=0.10)


def test_cosine_uses_chord_not_one_minus_cos():
    """1 - cos is half a squared chord: using it would halve the estimate (here 4 -> 2)."""
    x = sphere(4, seed=2)  # unit vectors: chord distance == euclidean distance
    assert twonn(x, metric="cosine", bootstrap=0).dimension == pytest.approx(
        twonn(x, metric="euclidean", bootstrap=0).dimension, rel=1e-4)


def test_hill_form_is_mle_form_times_k_over_k_minus_1():
    es = EmbeddingSet(sphere(3, n=800))
    mle_form = local_intrinsic_dimension(es, metric="euclidean", k=12)
    hill = local_intrinsic_dimension(es, metric="euclidean", k=12, form="hill")
    np.testing.assert_allclose(hill, mle_form * 12 / 11, rtol=1e-12)
    rows = np.array([5, 17, 400])
    np.testing.assert_allclose(
        local_intrinsic_dimension(es, metric="euclidean", k=12, query_indices=rows), mle_form[rows], rtol=1e-5)


def test_global_mle_is_harmonic_mean_of_local_ids():
    es = EmbeddingSet(subspace(4, n=1000))
    lid = local_intrinsic_dimension(es, metric="euclidean", k=10)
    mle = mle_dimension(es, metric="euclidean", k=10, bootstrap=0).dimension
    assert mle == pytest.approx(1.0 / np.mean(1.0 / lid), rel=1e-12)


def test_pca_dimension_of_subspace_and_spectrum():
    rng = np.random.default_rng(3)
    scales = np.array([10.0, 6.0, 3.0, 1.0, 0.3, 0.1])
    q = _isometry(rng, D, len(scales))
    # a far-off common mean (an embedding "cone") must not spoil the float64 accumulation
    x = (rng.normal(size=(3000, len(scales))) * scales) @ q.T + 50.0 * rng.normal(size=D)
    x = x.astype(np.float32)
    eig = np.linalg.eigvalsh(EmbeddingSet(x).moments().covariance(ddof=1))[::-1]  # what the report reads
    ref = np.linalg.eigvalsh(np.cov(x.astype(np.float64).T))[::-1]
    np.testing.assert_allclose(eig[:6], ref[:6], rtol=1e-6)
    assert np.all(eig[6:] < 1e-6 * eig[0])
    share = np.cumsum(ref) / ref.sum()  # 0.69, 0.94, 0.99, ...: 90 % -> 2, 95 % -> 3, 99 % -> 4
    report = intrinsic_dimension(x, metric="euclidean", bootstrap=0, scale_levels=1)
    expected = [int(np.searchsorted(share, s) + 1) for s in (0.90, 0.95, 0.99)]
    assert (report.pca_90, report.pca_95, report.pca_99) == tuple(expected)


# ------------------------------------------------------------------------------------ independent implementation


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_matches_scikit_dimension(metric):
    x = subspace(5, n=1200, seed=4, offset=6.0 if metric == "cosine" else 0.0)
    ref_x = x.astype(np.float64)
    if metric == "cosine":  # chord distance between unit vectors == euclidean distance between them
        ref_x /= np.linalg.norm(ref_x, axis=1, keepdims=True)
    es = EmbeddingSet(x)
    ours = twonn(es, metric=metric, bootstrap=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # skdim's MLE TwoNN with no discarded ratios is (N - 1) / sum log mu, our estimator
        ref_mle = skdim.id.TwoNN(discard_fraction=0.0, method="mle").fit(ref_x).dimension_
        # skdim's linear TwoNN: F(mu_(i)) = i / N over all N, the top 10 % discarded, line through 0
        ref_lin = skdim.id.TwoNN(discard_fraction=0.1, method="linear").fit(ref_x).dimension_
        # skdim MLE without noise model: (k - 1) / sum log(T_k / T_j), combined by 1 / mean(1 / m)
        ref_lb = skdim.id.MLE().fit(ref_x, n_neighbors=10, comb="mle")
        ref_gride = skdim.id.GRIDE(n1=4).fit(ref_x).dimension_
    assert ours.dimension == pytest.approx(ref_mle, rel=1e-4)
    assert ours.dimension_linefit == pytest.approx(ref_lin, rel=1e-4)
    ours_mle = mle_dimension(es, metric=metric, k=10, bootstrap=0).dimension
    assert ours_mle == pytest.approx(ref_lb.dimension_, rel=1e-4)
    lid = local_intrinsic_dimension(es, metric=metric, k=10)
    np.testing.assert_allclose(lid, ref_lb.dimension_pw_, rtol=1e-3)
    n1, gride, _ = gride_curve(es.neighbors(8, metric=metric).distances.astype(np.float64), 8)
    assert list(n1) == [1, 2, 4]
    assert gride[0] == pytest.approx(ref_mle, rel=1e-6)  # GRIDE at (1, 2) is the TwoNN MLE
    # skdim also drops ratios above q50 + 20 (q95 - q50) as DADApy does; we keep them, hence 1 %
    assert gride[2] == pytest.approx(ref_gride, rel=0.01)


# ------------------------------------------------------------------------------------ duplicates, CIs, warnings


def test_duplicates_are_removed_and_reported():
    x = sphere(3, n=1500, seed=5)
    x = np.concatenate([x, x[:40]])  # 40 planted pairs: 40 rows copy another (one copy of each is used)
    two = twonn(x, metric="euclidean", bootstrap=0)
    assert two.n_duplicates == 40
    assert two.n_used == len(x) - 40
    assert two.dimension == pytest.approx(3, rel=0.10)
    assert any("duplicate" in w for w in two.warnings)
    mle = mle_dimension(x, metric="euclidean", bootstrap=0)
    assert mle.n_duplicates == 40 and np.isfinite(mle.dimension)
    lid = local_intrinsic_dimension(x, metric="euclidean")
    assert np.isfinite(lid).all() and np.array_equal(lid[-40:], lid[:40])  # a copy has its point's local ID
    report = intrinsic_dimension(x, metric="euclidean", bootstrap=0, scale_levels=2)
    assert report.n_duplicates == 40 and any("duplicate" in w for w in report.warnings)


def test_same_direction_is_a_duplicate_under_cosine_only():
    x = sphere(3, n=1000, seed=6)
    x = np.concatenate([x, 3.0 * x[:10]])  # same directions, three times the norm
    assert twonn(x, metric="cosine", bootstrap=0).n_duplicates == 10  # one copy of each pair is used
    assert twonn(x, metric="euclidean", bootstrap=0).n_duplicates == 0


def test_no_warning_for_clean_low_dimensional_data():
    assert twonn(sphere(2, n=1000), metric="euclidean", bootstrap=0).warnings == ()


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    es = EmbeddingSet(subspace(4, n=1500, seed=7))
    a = twonn(es, metric="euclidean", bootstrap=300, random_state=1)
    b = twonn(es, metric="euclidean", bootstrap=300, random_state=1)
    c = twonn(es, metric="euclidean", bootstrap=300, random_state=2)
    lo, hi = a.ci
    assert lo < a.dimension < hi
    assert np.array_equal(a.ci, b.ci) and not np.array_equal(a.ci, c.ci)
    # TwoNN: log mu ~ Exp(d), so the estimate's standard error is about d / sqrt(n)
    assert (hi - lo) == pytest.approx(2 * 1.96 * a.dimension / np.sqrt(a.n_used), rel=0.25)
    m = mle_dimension(es, metric="euclidean", bootstrap=300, random_state=1)
    assert m.ci[0] < m.dimension < m.ci[1]
    assert np.isnan(twonn(es, metric="euclidean", bootstrap=0).ci).all()


def test_sample_size_warning_for_high_dimension():
    two = twonn(sphere(8, n=1000, seed=8), metric="euclidean", bootstrap=0)
    assert any("2 log10(n)" in w for w in two.warnings)  # 2 log10(1000) = 6 < 8


def test_scale_dependence_is_flagged():
    """A noisy line: 1-D at large scales, higher-dimensional at the scale of the noise."""
    rng = np.random.default_rng(9)
    t = rng.uniform(0, 1, size=(2000, 1))
    x = (t @ rng.normal(size=(1, D)) + 0.002 * rng.normal(size=(2000, D))).astype(np.float32)
    report = intrinsic_dimension(x, metric="euclidean", bootstrap=0)
    assert report.gride_dimension[0] > 1.5 * report.gride_dimension[-1]
    assert any("depends on the neighbourhood size" in w for w in report.warnings)


# ------------------------------------------------------------------------------------ report


def test_report_fields_and_reprs():
    es = EmbeddingSet(sphere(5, seed=10))
    report = intrinsic_dimension(es, metric="cosine", bootstrap=100)
    assert isinstance(report, IntrinsicDimensionReport)
    assert report.n == report.sample_size == N and report.sample_indices is None
    for est, ci in ((report.twonn, report.twonn_ci), (report.mle, report.mle_ci)):
        assert est == pytest.approx(5, rel=0.10) and ci[0] < est < ci[1]
    assert report.pca_99 == 6  # S^5 spans R^6
    assert report.lid.shape == (N,) and report.lid_median == pytest.approx(5, rel=0.10)
    assert list(report.gride_n1) == [1, 2, 4, 8, 16]
    assert np.all(np.diff(report.gride_distance) > 0)
    assert report.scale_n[0] == N and np.all(np.diff(report.scale_n) < 0)
    assert len(report.scale_n) == len(report.scale_twonn) == len(report.scale_distance)
    assert report.scale_twonn[0] == pytest.approx(report.twonn)
    np.testing.assert_allclose(report.scale_twonn, 5, rtol=0.15)
    assert np.all(np.diff(report.scale_distance) > 0)  # fewer points, larger neighbour distances
    json.dumps(report.to_dict())
    assert "twonn" in repr(report) and "Facco" in report._repr_html_()
    with pytest.raises(AttributeError):
        report.twonn = 1.0  # frozen


def test_report_computes_neighbours_once_through_the_set(monkeypatch):
    import embgeo.analysis.embeddings.embedding_set as es_mod

    calls = []
    real = es_mod.exact_knn
    monkeypatch.setattr(es_mod, "exact_knn", lambda *a, **kw: calls.append(kw["k"]) or real(*a, **kw))
    es = EmbeddingSet(subspace(3, n=600, seed=11))
    intrinsic_dimension(es, metric="euclidean", k=10, bootstrap=0, scale_levels=1)
    twonn(es, metric="euclidean", bootstrap=0)
    mle_dimension(es, metric="euclidean", k=10, bootstrap=0)
    local_intrinsic_dimension(es, metric="euclidean", k=10)
    assert calls == [32]  # one search, of the widest table (GRIDE up to rank 32); the rest slice it


def test_query_sample():
    es = EmbeddingSet(subspace(4, n=3000, seed=12))
    full = intrinsic_dimension(es, metric="euclidean", bootstrap=200, scale_levels=3)
    part = intrinsic_dimension(es, metric="euclidean", bootstrap=200, sample=600, scale_levels=3)
    assert part.sample_size == 600 and part.n == 3000
    assert part.lid.shape == (600,) and len(np.unique(part.sample_indices)) == 600
    assert part.twonn == pytest.approx(4, rel=0.10) and part.mle == pytest.approx(4, rel=0.10)
    assert part.twonn_ci[0] < part.twonn < part.twonn_ci[1]
    assert np.diff(part.twonn_ci)[0] > np.diff(full.twonn_ci)[0]  # fewer queries, wider interval
    # the sampled points' local IDs are those of the full analysis (neighbours searched in the full set)
    np.testing.assert_allclose(part.lid, full.lid[part.sample_indices], rtol=1e-5)
    assert twonn(es, metric="euclidean", bootstrap=0, sample=500).n_used == 500


# ------------------------------------------------------------------------------------ bad input


def test_dot_metric_is_refused():
    with pytest.raises(EmbeddingInputError, match="metric='dot'.*not"):
        twonn(sphere(2, n=100), metric="dot")
    with pytest.raises(EmbeddingInputError, match="metric='dot'"):
        intrinsic_dimension(sphere(2, n=100), metric="dot")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: mle_dimension(x, k=1), "k >= 2"),
        (lambda x: mle_dimension(x, k=500), "too few points"),
        (lambda x: twonn(x, metric="manhattan"), "unknown metric"),
        (lambda x: twonn(x, discard_fraction=1.0), "discard_fraction"),
        (lambda x: twonn(x, bootstrap=-1), "bootstrap"),
        (lambda x: twonn(x, confidence=1.5), "confidence"),
        (lambda x: twonn(x, sample=1), "sample"),
        (lambda x: local_intrinsic_dimension(x, form="levina"), "form"),
        (lambda x: local_intrinsic_dimension(x, query_indices=[0, 999]), "query_indices"),
        (lambda x: intrinsic_dimension(x, gride_max_rank=1), "gride_max_rank"),
        (lambda x: twonn(np.repeat(x[:1], 5, axis=0), metric="euclidean"), "duplicates"),
    ],
)
def test_bad_input_raises_clear_error(call, match):
    with pytest.raises(EmbeddingInputError, match=match):
        call(sphere(2, n=200))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_untouched(dtype):
    x = sphere(3, n=500, seed=13).astype(dtype) * 2.5  # not unit norm, so normalising would show
    before = x.copy()
    intrinsic_dimension(x, metric="cosine", bootstrap=20, scale_levels=2)
    twonn(x, bootstrap=10)
    local_intrinsic_dimension(x)
    np.testing.assert_array_equal(x, before)
    assert x.flags.writeable


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_recovers_dimension_of_shared_generators(metric):
    """The package's own known-answer generators (uniform cube patch: boundaries bias low, so k <= 4)."""
    from embgeo.analysis.datasets import make_sphere, make_subspace

    for x, k in ((make_sphere(2000, 4, 40, random_state=14), 4), (make_subspace(2000, 3, 40, random_state=15), 3)):
        es = EmbeddingSet(x)
        assert twonn(es, metric=metric, bootstrap=0).dimension == pytest.approx(k, rel=0.10)
        assert mle_dimension(es, metric=metric, bootstrap=0).dimension == pytest.approx(k, rel=0.10)
