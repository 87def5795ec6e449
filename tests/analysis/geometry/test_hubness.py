"""Hubness and concentration: known answers, hand-computed cases, brute-force cross-checks."""

import json

import numpy as np
import pytest
from scipy.stats import skew

from embgeo.analysis import EmbeddingInputError, EmbeddingSet
from embgeo.analysis import concentration_report, hubness_report, robin_hood_index
from embgeo.analysis._core import median_ci


def _planted_hub(metric, n=400, d=50, seed=0):
    """An isotropic cloud around a centre with one point planted at the centre (row 0)."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(d) if metric == "euclidean" else 4.0 * np.eye(d)[0]  # cosine needs a direction
    x = centre + rng.normal(size=(n, d))
    x[0] = centre
    return x


# --------------------------------------------------------------------------------------------- k-occurrence


# --------------------------------------------------------------------------------------------- hubness


def test_hand_computed_star():
    # k = 1, Euclidean. Row 0 is a centre with three spokes at distance <= 1 whose mutual distances
    # exceed 1.7, and row 4 is far out: 0->1, 1->0, 2->0, 3->0, 4->1, so N_1 = [3, 2, 0, 0, 0].
    x = np.array([[0.0, 0.0], [0.9, 0.0], [-0.5, 0.866], [-0.5, -0.866], [5.0, 5.0]])
    rep = hubness_report(x, k=1, metric="euclidean", top=2)
    assert rep.k_occurrence.tolist() == [3, 2, 0, 0, 0]
    # deviations from k = 1 are [2, 1, -1, -1, -1]: m2 = 8/5, m3 = 6/5, skewness = m3 / m2^1.5
    assert rep.skewness == pytest.approx(1.2 / 1.6 ** 1.5)
    assert rep.robin_hood == pytest.approx(6 / 10)  # sum |N - k| / (2 n k)
    assert rep.antihub_rate == pytest.approx(3 / 5)
    assert rep.hub_occupancy == pytest.approx(3 / 5)  # top ceil(1 % of 5) = 1 point holds 3 of 5 slots
    assert rep.max_k_occurrence == 3
    assert rep.top_hubs["index"].tolist() == [0, 1]
    shown = rep.antihub_examples["index"].tolist()  # a sample of top = 2 of the three antihubs
    assert len(shown) == 2 and set(shown) <= {2, 3, 4}


def test_uniform_ring_has_no_hubness():
    # evenly spaced points on a circle, k = 2: each point's neighbours are its two sides, N_k = 2 for all
    n = 60
    angles = 2 * np.pi * np.arange(n) / n
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    rep = hubness_report(x, k=2, metric="cosine")
    assert (rep.k_occurrence == 2).all()
    assert rep.skewness == 0.0
    assert rep.robin_hood == 0.0
    assert rep.antihub_rate == 0.0
    assert rep.hub_occupancy == pytest.approx(1 / n)
    assert len(rep.antihub_examples) == 0


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_planted_hub_is_the_top_hub(metric):
    x = _planted_hub(metric)
    rep = hubness_report(x, k=10, metric=metric, top=5)
    assert rep.top_hubs["index"].iloc[0] == 0
    assert rep.k_occurrence[0] == rep.max_k_occurrence > 10 * rep.k
    assert rep.skewness > 1.0
    assert rep.k_occurrence.sum() == rep.n * rep.k


def test_skewness_matches_scipy_and_grows_with_dimension():
    rng = np.random.default_rng(1)
    # i.i.d. Gaussian under Euclidean distance, the setting of Radovanovic et al. (2010)
    low = hubness_report(rng.normal(size=(800, 3)), k=10, metric="euclidean")
    high = hubness_report(rng.normal(size=(800, 100)), k=10, metric="euclidean")
    assert high.skewness == pytest.approx(skew(high.k_occurrence, bias=True))
    assert high.robin_hood == pytest.approx(np.abs(high.k_occurrence - 10).sum() / (2 * 800 * 10))
    assert high.skewness > 2.0 > 0.5 > low.skewness  # hubness is a high-dimensional phenomenon
    assert high.antihub_rate > low.antihub_rate


def test_robin_hood_extremes():
    n, k = 5, 2
    # every slot on one point: N = [n*k, 0, ...] -> (n*k - k + (n - 1) k) / (2 n k) = 1 - 1/n
    assert robin_hood_index(np.array([n * k, 0, 0, 0, 0]), k) == pytest.approx(1 - 1 / n)
    assert robin_hood_index(np.full(n, k), k) == 0.0


def test_report_labels_json_and_uses_shared_table():
    x = _planted_hub("cosine", n=200)
    data = EmbeddingSet(x, metadata={"text": [f"item {i}" for i in range(200)]})
    rep = hubness_report(data, k=5, top=3)
    assert rep.top_hubs["label"].iloc[0] == "item 0"
    assert data.neighbors(5) is data.neighbors(5)  # the report filled the shared cache
    json.dumps(rep.to_dict())
    assert "skewness" in repr(rep) and "Radovanovic" in rep._repr_html_()


def test_hubness_leaves_input_untouched_and_rejects_bad_k():
    x = _planted_hub("cosine", n=100)
    before = x.copy()
    hubness_report(x, k=5)
    np.testing.assert_array_equal(x, before)
    assert x.flags.writeable
    with pytest.raises(EmbeddingInputError, match="k=100"):
        hubness_report(x, k=100)
    with pytest.raises(EmbeddingInputError, match="metric"):
        hubness_report(x, metric="manhattan")


# --------------------------------------------------------------------------------------------- concentration


def _brute_force(x, k, metric):
    y = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    d = np.linalg.norm(y[:, None, :] - y[None, :, :], axis=2)
    n = len(x)
    mean = d.sum(1) / (n - 1)
    np.fill_diagonal(d, np.inf)
    s = np.sort(d, axis=1)
    return mean / s[:, k - 1], s[:, 2 * k - 1] / s[:, k - 1]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_concentration_matches_brute_force(metric):
    x = np.random.default_rng(2).normal(size=(60, 5)) + 0.5
    rep = concentration_report(x, k=3, metric=metric, sample=None)
    rc, ex = _brute_force(x, 3, metric)
    np.testing.assert_array_equal(rep.query_indices, np.arange(60))
    np.testing.assert_allclose(rep.relative_contrast, rc, rtol=1e-5)
    np.testing.assert_allclose(rep.expansion, ex, rtol=1e-5)
    assert rep.relative_contrast_median == pytest.approx(np.median(rc), rel=1e-5)
    lo, hi = rep.relative_contrast_ci
    assert lo <= rep.relative_contrast_median <= hi
    lo, hi = rep.expansion_ci
    assert lo <= rep.expansion_median <= hi


def test_sampled_queries_match_brute_force():
    x = np.random.default_rng(3).normal(size=(80, 6))
    rep = concentration_report(x, k=2, metric="euclidean", sample=20, random_state=7)
    assert rep.sample_size == 20 and len(np.unique(rep.query_indices)) == 20
    rc, ex = _brute_force(x, 2, "euclidean")
    np.testing.assert_allclose(rep.relative_contrast, rc[rep.query_indices], rtol=1e-5)
    np.testing.assert_allclose(rep.expansion, ex[rep.query_indices], rtol=1e-5)
    again = concentration_report(x, k=2, metric="euclidean", sample=20, random_state=7)
    np.testing.assert_array_equal(again.query_indices, rep.query_indices)


def test_high_dimension_concentrates():
    rng = np.random.default_rng(4)
    low = concentration_report(rng.normal(size=(1000, 2)), k=10, sample=200)
    high = concentration_report(rng.normal(size=(1000, 200)), k=10, sample=200)
    assert 1.0 < high.relative_contrast_median < low.relative_contrast_median
    assert high.relative_contrast_median < 1.3 < 3.0 < low.relative_contrast_median
    assert 1.0 < high.expansion_median < low.expansion_median
    # cosine maps 2-D data onto the unit circle (dimension 1), where D_2k / D_k ~ 2^(1/1) = 2
    assert low.expansion_median == pytest.approx(2.0, rel=0.1)
    assert high.relative_contrast_ci[1] < low.relative_contrast_ci[0]


def test_duplicates_are_counted_not_divided_by_zero():
    x = np.random.default_rng(5).normal(size=(50, 4))
    x[7] = x[3]
    rep = concentration_report(x, k=1, sample=None)
    assert rep.n_zero_distance == 2
    assert np.isnan(rep.relative_contrast[[3, 7]]).all()
    assert np.isfinite(rep.relative_contrast_median)
    json.dumps(rep.to_dict())


def test_concentration_refuses_dot_and_small_sets():
    x = np.random.default_rng(6).normal(size=(20, 4))
    before = x.copy()
    with pytest.raises(EmbeddingInputError, match="dot"):
        concentration_report(x, metric="dot")
    with pytest.raises(EmbeddingInputError, match="2k"):
        concentration_report(x, k=10)
    with pytest.raises(EmbeddingInputError, match="sample"):
        concentration_report(x, k=2, sample=0)
    np.testing.assert_array_equal(x, before)


def test_median_ci_brackets_a_known_median():
    values = np.random.default_rng(8).normal(loc=3.0, size=4001)
    lo, hi = median_ci(values)
    assert lo < 3.0 < hi and hi - lo < 0.15
