"""sampled_report: exact moments over all rows, query-sample estimates whose intervals cover the
full-set values, hubness from a subsample (labelled as such), and the same answer from a memory map."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet, geometry_report, sampled_report
from embgeo.analysis.datasets import make_anisotropic, make_subspace
from embgeo.analysis.geometry import concentration_report, hubness_report, intrinsic_dimension, wilson_interval


@pytest.fixture(scope="module")
def manifold():
    """6,000 points on a 6-dimensional patch in 32-D: TwoNN and MLE near 6."""
    return EmbeddingSet(make_subspace(6000, 6, 32, random_state=3), name="manifold")


@pytest.fixture(scope="module")
def full_values(manifold):
    idim = intrinsic_dimension(manifold, k=10, bootstrap=0, scale_levels=1)
    conc = concentration_report(manifold, k=10, sample=None)
    return {"twonn": idim.twonn, "mle": idim.mle, "rc": conc.relative_contrast_median}


def test_intervals_cover_the_full_set_values_over_seeds(manifold, full_values):
    """The per-point estimators of 300 queries against all rows: their 95 % intervals should cover the
    value computed from every point in about 95 % of draws (we ask for 80 % of 20 seeds)."""
    hits = {"twonn": 0, "mle": 0, "rc": 0}
    seeds = range(20)
    for seed in seeds:
        r = sampled_report(manifold, k=10, sample=300, subsample=500, random_state=seed)
        idim, conc = r.intrinsic_dimension, r.concentration
        hits["twonn"] += idim.twonn_ci[0] <= full_values["twonn"] <= idim.twonn_ci[1]
        hits["mle"] += idim.mle_ci[0] <= full_values["mle"] <= idim.mle_ci[1]
        hits["rc"] += conc.relative_contrast_ci[0] <= full_values["rc"] <= conc.relative_contrast_ci[1]
    assert all(h >= 0.8 * len(seeds) for h in hits.values()), hits
    assert 5 < full_values["twonn"] < 7.5  # the known answer the intervals are about


def test_moments_are_exact_over_all_rows(manifold):
    r = sampled_report(manifold, k=10, sample=200, subsample=500)
    full = geometry_report(manifold, k=10, sample=200)
    assert r.isotropy.to_dict() == full.isotropy.to_dict()
    assert r.mode == "sampled" and full.mode == "full"
    assert r.basis["isotropy"].startswith("all 6,000 rows")
    assert "200 random queries searched exactly against all 6,000 rows" == r.basis["intrinsic_dimension"]
    assert "subsample of 500 rows" in r.basis["hubness"] and "grows with n" in r.basis["hubness"]
    assert any("lower bound" in note for note in r.notes)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["mode"] == "sampled" and "neighbors_recall" not in d["intrinsic_dimension"]


def test_a_whole_subsample_gives_the_full_hubness(manifold):
    r = sampled_report(manifold, k=10, sample=200, subsample=10**9)
    assert r.hubness.n == manifold.n
    assert r.hubness.skewness == pytest.approx(hubness_report(manifold, k=10).skewness, abs=1e-12)


def test_hubness_interval_matches_scipy_bootstrap(manifold):
    from scipy import stats

    ours = hubness_report(manifold, k=10, bootstrap=2000, random_state=0)
    theirs = stats.bootstrap((ours.k_occurrence.astype(float),), lambda v, axis: stats.skew(v, axis=axis),
                             n_resamples=2000, method="percentile", random_state=1).confidence_interval
    assert ours.skewness_ci[0] <= ours.skewness <= ours.skewness_ci[1]
    np.testing.assert_allclose(ours.skewness_ci, [theirs.low, theirs.high], atol=0.08)


def test_planted_duplicate_rate_is_covered():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 24))
    twins = rng.choice(4000, 200, replace=False)  # 200 disjoint pairs: 400 of 4,000 points (10 %) twinned
    partners = np.setdiff1d(np.arange(4000), twins)[:200]
    x[partners] = x[twins] * 1.5
    r = sampled_report(x, k=5, sample=1500, subsample=1000)
    low, high = r.near_duplicates.rate_ci
    assert low <= 0.10 <= high and r.near_duplicates.sample_size == 1500


def test_wilson_interval_known_values():
    # Newcombe, Statistics in Medicine 1998, table I (95 %): 0/10 -> (0, 0.2775); 5/10 -> (0.2366, 0.7634)
    np.testing.assert_allclose(wilson_interval(0, 10), (0.0, 0.2775), atol=1e-4)
    np.testing.assert_allclose(wilson_interval(5, 10), (0.2366, 0.7634), atol=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0


def test_memory_map_gives_the_same_report(tmp_path):
    x = make_anisotropic(3000, 24, random_state=2)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    from embgeo.analysis import load

    mapped = sampled_report(load(tmp_path / "x.npy"), k=5, sample=300, subsample=1000).to_dict()
    in_memory = sampled_report(EmbeddingSet(x.astype(np.float32)), k=5, sample=300, subsample=1000).to_dict()
    for part in ("isotropy", "intrinsic_dimension", "hubness", "concentration", "near_duplicates"):
        assert json.dumps(mapped[part], sort_keys=True) == json.dumps(in_memory[part], sort_keys=True), part


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_other_metrics(metric):
    x = make_anisotropic(2000, 16, random_state=4)
    r = sampled_report(x, k=5, metric=metric, sample=200, subsample=800)
    assert r.metric == metric and r.hubness.metric == metric and r.intrinsic_dimension.sample_size == 200
    assert r.intrinsic_dimension.metric == ("cosine" if metric == "dot" else "euclidean")


def test_bad_settings():
    x = make_anisotropic(200, 8, random_state=0)
    with pytest.raises(EmbeddingInputError, match="subsample"):
        sampled_report(x, k=5, subsample=0)
    with pytest.raises(EmbeddingInputError, match="subsample .* at least 2k"):
        sampled_report(x, k=5, subsample=8)
    zero = x.copy()
    zero[7] = 0
    with pytest.raises(EmbeddingInputError, match="zero"):
        sampled_report(zero, k=5, sample=50, subsample=100)
    with pytest.raises(EmbeddingInputError, match="sample_neighbors must be an exact cosine table"):
        intrinsic_dimension(x, sample_neighbors=(np.arange(3), _table(x)))


def _table(x):
    from embgeo.analysis import exact_knn

    return exact_knn(x, k=3, metric="euclidean", query_indices=np.arange(3))
