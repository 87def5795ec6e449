"""The shared pairwise squared distances and median-heuristic bandwidth against scipy's pdist."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from embgeo.analysis._core import EmbeddingInputError, median_distance, pairwise_sq_distances


def test_pairwise_sq_distances_match_pdist_and_leave_the_input_alone():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 9)) * 0.1 + 1e3  # a large common offset: centring keeps the digits
    before = x.copy()
    d2 = pairwise_sq_distances(x)
    assert d2.dtype == np.float64 and d2.shape == (120, 120)
    np.testing.assert_allclose(d2, squareform(pdist(x, "sqeuclidean")), rtol=1e-9, atol=1e-12)
    assert np.array_equal(np.diagonal(d2), np.zeros(120)) and np.allclose(d2, d2.T, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(x, before)


def test_median_distance_is_the_pdist_median_of_the_pairs_that_do_not_coincide():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 5))
    assert median_distance(x) == pytest.approx(np.median(pdist(x)), rel=1e-12)
    assert median_distance(d2=pairwise_sq_distances(x)) == pytest.approx(np.median(pdist(x)), rel=1e-12)
    # 80 copies of one point and 20 others: most pairs coincide, the old rule fell back to sigma = 1
    y = np.vstack([np.repeat(x[:1], 80, axis=0), x[1:21]])
    d = pdist(y)
    assert np.median(d) == 0.0
    assert median_distance(y) == pytest.approx(np.median(d[d > 0]), rel=1e-12)
    assert np.isnan(median_distance(np.ones((10, 3)))) and np.isnan(median_distance(np.ones((1, 3))))
    with pytest.raises(EmbeddingInputError, match="one of them"):
        median_distance()


def test_median_distance_of_a_large_sample_reads_a_random_subset_of_pairs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 4))
    exact = np.median(pdist(x))
    from_rows = median_distance(x, max_pairs=20_000, random_state=3)
    from_matrix = median_distance(d2=pairwise_sq_distances(x), max_pairs=20_000, random_state=3)
    assert from_rows == pytest.approx(from_matrix, rel=1e-9)  # the same pairs either way
    assert from_rows != exact and from_rows == pytest.approx(exact, rel=0.02)
    d = np.sort(pdist(x))  # the subset's median sits near the middle of the exact distribution
    assert 0.45 < np.searchsorted(d, from_rows) / len(d) < 0.55
