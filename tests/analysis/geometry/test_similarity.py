"""Similarity diagnostics: known answers and brute-force cross-checks on small sets."""

import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from embgeo.analysis import EmbeddingInputError, EmbeddingSet
from embgeo.analysis import cosine_vs_dot, near_duplicates, similarity_distribution


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------- distribution


def test_random_pair_cosine_of_isotropic_gaussian():
    # for i.i.d. isotropic Gaussian vectors, cos of two independent ones has mean 0 and sd 1/sqrt(d)
    d = 64
    x = np.random.default_rng(0).normal(size=(2000, d))
    dist = similarity_distribution(x, k=10, n_pairs=20_000)
    assert abs(dist.random_mean) < 0.005
    assert dist.random_std == pytest.approx(1 / math.sqrt(d), rel=0.05)
    assert dist.random_counts.sum() == 20_000
    assert dist.kth_neighbor_counts.sum() == 2000
    assert len(dist.bin_edges) == 51
    assert dist.kth_neighbor_median > dist.random_mean + 2 * dist.random_std
    assert 0.0 <= dist.overlap < 0.05


def test_kth_neighbour_similarities_match_brute_force():
    x = np.random.default_rng(1).normal(size=(120, 8))
    data = EmbeddingSet(x)
    dist = similarity_distribution(data, k=3, n_pairs=500, bins=10)
    cos = _unit(x) @ _unit(x).T
    np.fill_diagonal(cos, -np.inf)
    kth = -np.sort(-cos, axis=1)[:, 2]
    np.testing.assert_array_equal(dist.kth_neighbor_counts, np.histogram(kth, dist.bin_edges)[0])
    assert dist.kth_neighbor_median == pytest.approx(np.median(kth), abs=1e-5)


def test_shared_direction_shows_in_random_pairs():
    # a common offset (anisotropy) raises the cosine of random pairs and blurs neighbours into them
    rng = np.random.default_rng(2)
    iso = similarity_distribution(rng.normal(size=(500, 32)), k=10, n_pairs=5000)
    cone = similarity_distribution(rng.normal(size=(500, 32)) + 3.0, k=10, n_pairs=5000)
    assert cone.random_mean > 0.8 > 0.05 > iso.random_mean


def test_distribution_rejects_bad_arguments():
    x = np.random.default_rng(3).normal(size=(20, 4))
    with pytest.raises(EmbeddingInputError, match="n_pairs"):
        similarity_distribution(x, n_pairs=0)
    with pytest.raises(EmbeddingInputError, match="k=20"):
        similarity_distribution(x, k=20)


# --------------------------------------------------------------------------------------------- cosine vs dot


@pytest.mark.parametrize("sample", [None, 50])
def test_unit_norm_data_agrees_perfectly(sample):
    x = _unit(np.random.default_rng(4).normal(size=(300, 16)))
    rep = cosine_vs_dot(x, k=10, sample=sample)
    assert rep.jaccard_mean == 1.0 and rep.jaccard_median == 1.0
    assert rep.spearman_median == pytest.approx(1.0)
    assert rep.norm_cv < 1e-6
    assert rep.sample_size == (300 if sample is None else 50)
    assert rep.norm_frequency_spearman is None


def test_jaccard_and_spearman_match_brute_force():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(150, 6)) * rng.lognormal(sigma=0.7, size=(150, 1))  # norms vary
    k = 5
    rep = cosine_vs_dot(x, k=k, sample=None)
    cos, dot = _unit(x) @ _unit(x).T, x @ x.T
    np.fill_diagonal(cos, -np.inf)
    np.fill_diagonal(dot, -np.inf)
    jac, rho = [], []
    for q in range(len(x)):
        a, b = set(np.argsort(-cos[q])[:k]), set(np.argsort(-dot[q])[:k])
        union = sorted(a | b)
        jac.append(len(a & b) / len(union))
        rho.append(spearmanr(cos[q, union], dot[q, union]).statistic)
    np.testing.assert_allclose(rep.jaccard, jac)
    assert rep.jaccard_mean == pytest.approx(np.mean(jac))
    assert rep.spearman_median == pytest.approx(np.nanmedian(rho), abs=1e-9)
    assert rep.jaccard_mean < 0.9  # varying norms do change the neighbours


def test_norms_that_track_frequency():
    rng = np.random.default_rng(6)
    freq = rng.pareto(1.2, size=400) + 1.0  # heavy-tailed, continuous (no ties)
    x = _unit(rng.normal(size=(400, 16))) * (1.0 + np.log(freq))[:, None]  # norm grows with frequency
    before = x.copy()
    rep = cosine_vs_dot(EmbeddingSet(x, weights=freq), k=10, sample=100)
    assert rep.norm_frequency_spearman == pytest.approx(1.0)
    assert rep.jaccard_mean < 0.8
    np.testing.assert_array_equal(x, before)
    json.dumps(rep.to_dict())
    assert "Steck" in rep._repr_html_()


def test_cosine_vs_dot_rejects_zero_rows():
    x = np.random.default_rng(7).normal(size=(30, 4))
    x[5] = 0
    with pytest.raises(EmbeddingInputError, match="zero"):
        cosine_vs_dot(x, k=3)


# --------------------------------------------------------------------------------------------- duplicates


def test_planted_duplicates_are_found():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 32))
    x[10] = 2.5 * x[3]  # same direction, other norm
    x[20] = x[3]  # exact copy
    x[40] = x[41] + 0.01 * rng.normal(size=32)  # cosine ~ 0.9999
    before = x.copy()
    labels = [f"doc {i}" for i in range(300)]
    rep = near_duplicates(EmbeddingSet(x, metadata={"text": labels}), threshold=0.99)
    assert rep.n_points == 5 and rep.rate == pytest.approx(5 / 300)
    assert set(np.flatnonzero(rep.duplicate_of >= 0)) == {3, 10, 20, 40, 41}
    assert rep.duplicate_of[41] == 40 and rep.duplicate_of[40] == 41
    assert rep.n_pairs == 4  # (3, 10), (3, 20), (10, 20), (40, 41)
    pairs = set(zip(rep.examples["i"], rep.examples["j"]))
    assert pairs == {(3, 10), (3, 20), (10, 20), (40, 41)}
    assert rep.examples["cosine"].min() >= 0.99
    assert (rep.examples["cosine"].diff().dropna() <= 0).all()  # most similar first
    assert rep.examples.loc[rep.examples["j"] == 41, "label_i"].item() == "doc 40"
    np.testing.assert_array_equal(x, before)
    json.dumps(rep.to_dict())


def test_no_duplicates_in_random_data_and_threshold_is_a_chord():
    x = np.random.default_rng(9).normal(size=(300, 32))
    rep = near_duplicates(x, threshold=0.99, max_examples=3)
    assert rep.n_points == 0 and rep.n_pairs == 0 and len(rep.examples) == 0
    assert rep.chord_threshold == pytest.approx(math.sqrt(2 - 2 * 0.99))
    # a loose threshold marks exactly the points whose nearest cosine is above it
    loose = near_duplicates(x, threshold=0.3)
    cos = _unit(x) @ _unit(x).T
    np.fill_diagonal(cos, -np.inf)
    assert loose.n_points == int((cos.max(1) >= 0.3).sum()) > 0


@pytest.mark.parametrize("threshold", [1.5, -1.0, float("nan")])
def test_duplicate_threshold_is_checked(threshold):
    with pytest.raises(EmbeddingInputError, match="threshold"):
        near_duplicates(np.random.default_rng(0).normal(size=(20, 4)), threshold=threshold)


def test_sampled_cosine_vs_dot_slices_a_cached_cosine_table_to_the_same_answer():
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(400, 12)) * rng.uniform(0.5, 2.0, size=(400, 1))).astype(np.float32)
    fresh = cosine_vs_dot(EmbeddingSet(x), k=6, sample=50, random_state=3)
    es = EmbeddingSet(x)
    es.neighbors(9, metric="cosine")  # wider than asked: the slice must cut it to k
    assert es.cached_neighbors(6, metric="cosine").k == 6 and es.cached_neighbors(10) is None
    cached = cosine_vs_dot(es, k=6, sample=50, random_state=3)
    np.testing.assert_array_equal(fresh.query_indices, cached.query_indices)
    np.testing.assert_allclose(fresh.jaccard, cached.jaccard)
    assert fresh.spearman_median == pytest.approx(cached.spearman_median)


def test_spearman_matches_scipy_with_ties():
    from embgeo.analysis._core.stats import spearman as _spearman

    rng = np.random.default_rng(11)
    for n in (2, 3, 7, 20):
        a = rng.integers(0, 4, n).astype(float)  # many ties
        b = a * 0.5 + rng.integers(0, 3, n)
        want = spearmanr(a, b).statistic if np.ptp(a) and np.ptp(b) else np.nan
        np.testing.assert_allclose(_spearman(a, b), want, rtol=1e-12, equal_nan=True)
