"""Projection coordinates and trust scores against cases with known answers."""

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet
from embgeo.analysis import project, recall_at_k


def _plane(n=400, d=20, seed=0):
    """Points lying exactly on a random 2-D plane in R^d: a 2-D PCA loses nothing."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, 2)))
    return (rng.uniform(-1, 1, size=(n, 2)) @ basis.T + 3.0).astype(np.float32)


def _brute_preservation(x, y, k):
    def knn(z):
        d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1)[:, :k]
    a, b = knn(x.astype(np.float64)), knn(y.astype(np.float64))
    return np.mean([len(set(r) & set(s)) / k for r, s in zip(a, b)])


def test_pca_of_a_plane_keeps_every_neighbourhood():
    x = _plane()
    before = x.copy()
    p = project(x, "pca", 2, metric="euclidean", k=10)
    assert p.coords.dtype == np.float32 and p.coords.shape == (400, 2)
    assert p.knn_preservation == pytest.approx(1.0)
    assert p.trustworthiness == pytest.approx(1.0, abs=1e-9)
    assert p.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(x, before)  # caller's array untouched


def test_preservation_matches_brute_force_and_is_low_for_isotropic_noise():
    x = np.random.default_rng(1).normal(size=(300, 30)).astype(np.float32)
    p = project(x, "pca", 2, metric="euclidean", k=10)
    assert p.knn_preservation == pytest.approx(_brute_preservation(x, p.coords, 10))
    # 30 isotropic dimensions squeezed into 2: most neighbours are lost
    assert p.knn_preservation < 0.3
    assert p.trustworthiness < 0.9


def test_neighborhood_preservation_counts_overlaps():
    # the projection's preservation is the shared set overlap of two neighbour tables
    a = np.array([[1, 2, 3], [0, 2, 3]])
    b = np.array([[3, 2, 1], [4, 5, 6]])
    assert recall_at_k(a, b) == pytest.approx(0.5)
    with pytest.raises(EmbeddingInputError, match="fewer than k"):
        recall_at_k(a[:, :2], b)


def test_sample_and_trust_sample():
    emb = EmbeddingSet(_plane(n=600))
    p = project(emb, "pca", 3, metric="cosine", sample=250, trust_sample=100, random_state=3)
    assert p.coords.shape == (250, 3) and p.sampled and p.n_total == 600
    assert len(np.unique(p.rows)) == 250 and np.all(np.diff(p.rows) > 0)
    assert p.trust_sample == 100
    assert 0.0 <= p.knn_preservation <= 1.0
    again = project(emb, "pca", 3, metric="cosine", sample=250, trust_sample=100, random_state=3)
    np.testing.assert_array_equal(p.rows, again.rows)


def test_full_trust_sample_reuses_the_cached_neighbour_table():
    emb = EmbeddingSet(_plane(n=200))
    project(emb, "pca", 2, metric="cosine", k=7)
    assert emb.neighbors(7, metric="cosine") is emb.neighbors(7, metric="cosine")
    assert emb.cached_neighbors(7, metric="cosine") is not None


def test_dot_metric_runs_for_pca():
    p = project(_plane(n=200), "pca", 2, metric="dot", k=5)
    assert np.isfinite(p.trustworthiness)


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="tsne"), "unknown projection method"),
    (dict(n_components=4), "n_components"),
    (dict(metric="manhattan"), "unknown metric"),
    (dict(k=500), "too few points"),
    (dict(method="umap", metric="dot"), "UMAP needs a distance"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(EmbeddingInputError, match=message):
        project(_plane(n=100), **kwargs)


@pytest.mark.slow
def test_umap_recovers_a_curved_manifold_better_than_pca():
    # a Swiss-roll-like sheet in 10-D: UMAP should keep more neighbours than a linear 2-D PCA
    rng = np.random.default_rng(0)
    t = rng.uniform(1.5 * np.pi, 4.5 * np.pi, 800)
    h = rng.uniform(0, 10, 800)
    x3 = np.c_[t * np.cos(t), h, t * np.sin(t)]
    rot, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    x = (np.c_[x3, np.zeros((800, 7))] @ rot).astype(np.float32)
    u = project(x, "umap", 2, metric="euclidean", k=10)
    p = project(x, "pca", 2, metric="euclidean", k=10)
    assert u.coords.shape == (800, 2) and u.coords.dtype == np.float32
    assert u.knn_preservation > p.knn_preservation
    assert u.trustworthiness > 0.95
