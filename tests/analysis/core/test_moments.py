"""Mergeable moments: blocked, merged and weighted results equal one-shot NumPy references."""

import pickle

import numpy as np
import pytest

from embgeo.analysis._core.moments import Moments, scan_moments
from embgeo.analysis._core.validation import EmbeddingInputError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    # a large common offset, as in real embeddings: raw-sum covariance would lose digits here
    x = (rng.normal(size=(1200, 12)) * np.linspace(0.1, 2.0, 12) + 50.0).astype(np.float32)
    w = rng.pareto(1.2, size=1200) + 0.01  # heavy-tailed, Zipf-like frequencies
    return x, w


def _ref(x):
    return x.astype(np.float64)


def test_blocked_equals_one_shot(data):
    x, _ = data
    whole = Moments(12).update(x)
    blocked = scan_moments(x, block_rows=97)
    np.testing.assert_allclose(blocked.mean, _ref(x).mean(0), rtol=1e-12)
    np.testing.assert_allclose(blocked.covariance(ddof=1), np.cov(_ref(x).T), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(blocked.covariance(), whole.covariance(), rtol=1e-9, atol=1e-12)
    norms = np.linalg.norm(_ref(x), axis=1)
    assert blocked.norm_mean == pytest.approx(norms.mean(), rel=1e-12)
    assert blocked.norm_std == pytest.approx(norms.std(), rel=1e-6)
    assert blocked.count == whole.count == 1200


def test_merge_of_halves_equals_whole_and_is_associative(data):
    x, w = data
    a, b, c = (Moments(12).update(x[s], w[s]) for s in (slice(0, 300), slice(300, 1000), slice(1000, None)))
    whole = Moments(12).update(x, w)
    left, right = (a + b) + c, a.merge(b.merge(c))
    for m in (left, right, c.merge(a).merge(b)):
        np.testing.assert_allclose(m.mean, whole.mean, rtol=1e-12)
        np.testing.assert_allclose(m.covariance(), whole.covariance(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(m.unit_sum_, whole.unit_sum_, rtol=1e-12)
        assert m.weight_sum == pytest.approx(whole.weight_sum)
    assert a.count == 300  # merge returns a new object
    # a distributed reduce: pickled chunk results summed in any order
    reduced = sum(pickle.loads(pickle.dumps(m)) for m in (c, a, b))
    np.testing.assert_allclose(reduced.covariance(), whole.covariance(), rtol=1e-9, atol=1e-12)


def test_weighted_matches_numpy_aweights(data):
    x, w = data
    m = scan_moments(x, w, block_rows=128)
    p = w / w.sum()
    np.testing.assert_allclose(m.mean, p @ _ref(x), rtol=1e-12)
    np.testing.assert_allclose(m.covariance(ddof=1), np.cov(_ref(x).T, aweights=w), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(m.covariance(ddof=0), np.cov(_ref(x).T, aweights=w, bias=True), rtol=1e-8, atol=1e-12)
    # scale invariance of weights: frequencies and probabilities give the same moments
    np.testing.assert_allclose(scan_moments(x, p).covariance(), m.covariance(), rtol=1e-9)


def test_normalize_and_second_moment(data):
    x, _ = data
    u = _ref(x) / np.linalg.norm(_ref(x), axis=1, keepdims=True)
    m = scan_moments(x, normalize=True, block_rows=50)
    np.testing.assert_allclose(m.mean, u.mean(0), rtol=1e-10)
    np.testing.assert_allclose(m.second_moment(), u.T @ u / len(u), rtol=1e-9, atol=1e-12)
    assert m.norm_mean == pytest.approx(np.linalg.norm(_ref(x), axis=1).mean())  # norms stay raw


def test_mean_cosine_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5)) + 0.5
    w = rng.random(60)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ u.T
    off = ~np.eye(60, dtype=bool)
    assert scan_moments(x, block_rows=7).mean_cosine() == pytest.approx(cos[off].mean(), rel=1e-5)
    ww = np.outer(w, w)[off]
    assert scan_moments(x, w).mean_cosine() == pytest.approx((cos[off] * ww).sum() / ww.sum(), rel=1e-5)


def test_zero_rows_skip_unit_statistics_or_raise():
    x = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    m = scan_moments(x)
    assert m.zero_rows == 1 and m.unit_weight_sum == 2
    assert m.mean_cosine() == pytest.approx(0.0)
    with pytest.raises(EmbeddingInputError, match="all-zero rows"):
        scan_moments(x, normalize=True)


def test_inputs_untouched_and_memmap(tmp_path, data):
    x, w = data
    path = tmp_path / "x.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    before, w_before = x.copy(), w.copy()
    m = scan_moments(mm, w, normalize=True, block_rows=100)
    scan_moments(x, w)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(w, w_before)
    np.testing.assert_allclose(m.covariance(), scan_moments(x, w, normalize=True).covariance(), rtol=1e-9)


def test_bad_input_messages():
    with pytest.raises(EmbeddingInputError, match="shape"):
        Moments(3).update(np.zeros((4, 2)))
    with pytest.raises(EmbeddingInputError, match="weights have 2 entries"):
        Moments(2).update(np.ones((3, 2)), [1.0, 2.0])
    with pytest.raises(EmbeddingInputError, match="non-negative"):
        scan_moments(np.ones((2, 2)), [1.0, -1.0])
    with pytest.raises(EmbeddingInputError, match="cannot merge"):
        Moments(2).merge(Moments(3))
    with pytest.raises(EmbeddingInputError, match="no rows"):
        Moments(2).covariance()
    with pytest.raises(EmbeddingInputError, match="two rows"):
        Moments(2).update(np.ones((1, 2))).covariance(ddof=1)
    with pytest.raises(EmbeddingInputError, match="block_rows"):
        scan_moments(np.ones((2, 2)), block_rows=0)


def test_embedding_set_caches_its_moments():
    from embgeo.analysis import EmbeddingSet

    x = np.random.default_rng(2).normal(size=(500, 8)).astype(np.float32) + 3.0
    es = EmbeddingSet(x)
    unit = es.moments(normalize=True)
    assert es.moments(normalize=True) is unit and es.moments() is not unit
    np.testing.assert_allclose(unit.mean_, (x / np.linalg.norm(x, axis=1, keepdims=True)).mean(0), rtol=1e-5)
    es.clear_cache()
    assert es.moments(normalize=True) is not unit
