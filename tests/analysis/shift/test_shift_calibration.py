"""shift_report's calibration and scales: the Mahalanobis reference held out of its own fit, the linear
MMD statistic beside its p-value, a transform judged on one scale, the bandwidth with coinciding
points, the sample cap, arguments refused before any pass, and queries that are corpus rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from embgeo.analysis import EmbeddingInputError, shift_report
from embgeo.analysis.shift import mmd_test

QUICK = dict(metric="euclidean", k=5, n_permutations=0, n_folds=2, transforms=False)


def _same(n_c, n_q, d, seed):
    rng = np.random.default_rng(seed)
    sd = np.geomspace(3.0, 0.3, d)
    return ((rng.normal(size=(n_c, d)) * sd).astype(np.float32), (rng.normal(size=(n_q, d)) * sd).astype(np.float32))


def test_mahalanobis_ood_rate_is_calibrated_on_held_out_corpus_rows():
    """Queries from the corpus's own distribution: 5 % beyond the corpus's 95th percentile. Scored on the
    rows the covariance was fitted on, the reference sat too close (E D^2 = d (n-1)/n against about
    d (1 + (d+2)/n) for a new row) and the rate came out 0.17-0.19 here."""
    c, q = _same(2000, 2000, 128, 0)
    r = shift_report(c, q, **QUICK)
    assert abs(r.mahalanobis_ood_rate - 0.05) <= 0.03
    assert abs(r.knn_ood_rate - 0.05) <= 0.03
    assert not any("per dimension" in n for n in r.notes)  # 2,000 rows for 128 dimensions: enough
    # the same ranking as the full-corpus score: the queries' distances under a 90 %-corpus fit
    c64, q64 = c.astype(np.float64), q.astype(np.float64)
    cov = np.cov(c64.T)
    vi = np.linalg.inv(cov + 1e-6 * np.linalg.eigvalsh(cov)[-1] * np.eye(128))
    full = np.sqrt(np.einsum("ij,jk,ik->i", q64 - c64.mean(0), vi, q64 - c64.mean(0)))
    assert np.corrcoef(full, r.mahalanobis)[0, 1] > 0.99


def test_mahalanobis_ood_rate_of_a_wide_corpus_and_its_note():
    """Fewer corpus rows than dimensions: fitted rows have almost no residual outside their own span, new
    rows have all of it, so every query was 'out of distribution' (rate 1.0). Held out: near 5 %."""
    c, q = _same(100, 400, 256, 1)
    r = shift_report(c, q, **QUICK)
    assert r.mahalanobis_ood_rate < 0.15
    assert any("100 rows for 256 dimensions" in n for n in r.notes)


def test_the_linear_mmd_of_the_samples_sits_beside_its_p_value():
    rng = np.random.default_rng(3)
    c = rng.normal(size=(400, 6)).astype(np.float32)
    q = (rng.normal(size=(300, 6)) + 0.2).astype(np.float32)
    r = shift_report(c, q, metric="euclidean", k=3, n_permutations=49, sample_size=100, transforms=False)
    d = r.to_dict()
    assert "mmd_linear_sample" in d and "mmd_linear_p_value" in d
    # over all rows (the moments) and on the 100-row samples: two different numbers
    c64, q64 = c.astype(np.float64), q.astype(np.float64)
    gap = c64.mean(0) - q64.mean(0)
    assert r.mmd_linear == pytest.approx(gap @ gap - np.trace(np.cov(c64.T)) / 400 - np.trace(np.cov(q64.T)) / 300,
                                         rel=1e-5)
    assert r.mmd_linear_sample != pytest.approx(r.mmd_linear, rel=1e-3)
    # all rows sampled: the sample statistic is the test's own statistic on every row
    full = shift_report(c[:60], q[:50], metric="euclidean", k=3, n_permutations=49, sample_size=100,
                        transforms=False, random_state=5)
    direct = mmd_test(c[:60], q[:50], kernel="linear", n_permutations=0)["mmd2"]
    assert full.mmd_linear_sample == pytest.approx(direct, rel=1e-9)


def test_a_shift_along_the_top_axis_is_not_closed_by_whitening():
    """The reviewer's example: the median-bandwidth MMD^2 is smaller after ZCA (0.029 -> 0.006) though a
    linear map applied to both sets changes nothing; the AUC (one scale everywhere) does not move."""
    sd = np.array([6.0, 4.0, 3.0] + [1.0] * 9)
    rng = np.random.default_rng(0)
    c = (rng.normal(size=(3000, 12)) * sd).astype(np.float32)
    q = (rng.normal(size=(1500, 12)) * sd + np.r_[3.0, np.zeros(11)]).astype(np.float32)
    r = shift_report(c, q, metric="euclidean", k=5, n_permutations=0, sample_size=1000)
    rows = {t["transform"]: t for t in r.transforms}
    raw, zca = rows["none"], rows["ZCA whitening fitted on the corpus"]
    assert zca["mmd_rbf"] < raw["mmd_rbf"] / 2  # what the old rule picked the transform by
    assert zca["classifier_auc"] == pytest.approx(raw["classifier_auc"], abs=0.01)
    for name in ("center on the corpus mean", "center on the pooled mean"):  # translations: the same AUC
        assert rows[name]["classifier_auc"] == pytest.approx(raw["classifier_auc"], abs=1e-9)
    assert raw["classifier_auc"] == pytest.approx(r.classifier_auc) and raw["classifier_auc_ci"][0] < raw["classifier_auc"]
    verdict = [v for v in r.verdicts if v.title == "Transform that closes the gap most"][0]
    assert verdict.value == "none of those tried"


def test_the_bandwidth_of_mostly_coinciding_points_and_of_one_point():
    rng = np.random.default_rng(4)
    x = np.vstack([np.zeros((40, 3)), rng.normal(size=(10, 3))])  # most pooled pairs coincide
    y = np.vstack([np.zeros((30, 3)), rng.normal(size=(10, 3))])
    d = pdist(np.vstack([x, y]))
    assert np.median(d) == 0.0  # the old rule fell back to sigma = 1.0 here, silently
    out = mmd_test(x, y, n_permutations=0)
    assert out["bandwidth"] == pytest.approx(np.median(d[d > 0]), rel=1e-12)
    same = mmd_test(np.ones((20, 3)), np.ones((15, 3)), n_permutations=19)
    assert np.isnan(same["bandwidth"]) and same["mmd2"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_permutations": -1}, "n_permutations must be a non-negative integer"),
    ({"n_permutations": 2.5}, "n_permutations must be a non-negative integer"),
    ({"eps": -0.1}, "eps must be a number in [0, 1]"),
    ({"eps": float("nan")}, "eps must be a number in [0, 1]"),
    ({"sample_size": 10_001}, "use at most 10,000"),
])
def test_bad_arguments_are_refused_before_any_pass(kwargs, message):
    c, q = _same(200, 40, 6, 2)
    calls = []
    with pytest.raises(EmbeddingInputError) as info:
        shift_report(c, q, **{**QUICK, **kwargs}, progress=lambda *a: calls.append(a))
    assert message in str(info.value)
    assert calls == []  # not one step of the report ran


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_queries_that_are_corpus_rows_are_counted_in_a_note(metric):
    c, q = _same(500, 60, 8, 3)
    queries = np.vstack([c[:25], q[:35]])  # 25 queries are copies of corpus rows
    r = shift_report(c, queries, **{**QUICK, "metric": metric})
    assert any(n.startswith("25 of 60 queries coincide with a corpus row") for n in r.notes)
    clean = shift_report(c, q, **{**QUICK, "metric": metric})
    assert not any("coincide with a corpus row" in n for n in clean.notes)
