"""shift_report and its primitives: known answers (identical distributions, a planted mean shift, a
planted rotation) and independent implementations (scipy's sqrtm, mahalanobis, subspace_angles and
cdist, scikit-learn's roc_auc_score, direct quadratic MMD formulas)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist, mahalanobis, pdist
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from embgeo.analysis import Cancelled, EmbeddingInputError, EmbeddingSet, ShiftReport, shift_report
from embgeo.analysis.shift import classifier_test, frechet_distance, mmd_test, principal_angles

D = 12
#: Standard deviations with clear gaps at the top, so the top-3 principal subspace is well defined.
SD = np.array([6.0, 4.0, 3.0] + [1.0] * (D - 3))
FAST = dict(n_permutations=49, sample_size=200, transforms=False)


def _gauss(n, seed, *, sd=SD, shift=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(sd))) * sd
    return (x if shift is None else x + shift).astype(np.float32)


# --------------------------------------------------------------------------------- known answers


def test_identical_distributions_give_uniform_mmd_p_values():
    """Under the null, P(p <= 0.05) = 0.05 for a permutation test with 99 permutations: at most 6 of 40
    draws may fall below (P(Bin(40, 0.05) >= 7) = 0.003), and the p-values average about 0.5."""
    p = np.array([mmd_test(_gauss(40, 2 * s), _gauss(40, 2 * s + 1), n_permutations=99, random_state=s)["p_value"]
                  for s in range(40)])
    assert np.sum(p <= 0.05) <= 6
    assert abs(p.mean() - 0.5) < 0.15  # sd of the mean of 40 uniforms: 0.046
    shifted = [mmd_test(_gauss(40, 2 * s), _gauss(40, 2 * s + 1, shift=1.5), n_permutations=99,
                        random_state=s)["p_value"] for s in range(10)]
    assert np.mean(np.array(shifted) <= 0.05) >= 0.9  # and the test has power against a shift


def test_identical_distributions_report():
    r = shift_report(_gauss(3000, 0), _gauss(1500, 1), metric="euclidean", k=5, n_components=3, **FAST)
    assert isinstance(r, ShiftReport)
    assert r.centroid_gap_in_spreads < 3 * np.sqrt(1 / 3000 + 1 / 1500)  # 3 times the sampling noise
    assert abs(r.classifier_auc - 0.5) < 0.1 and r.classifier_auc_ci[0] < 0.5 < r.classifier_auc_ci[1] + 0.05
    assert max(r.principal_angles) < 10.0
    assert abs(r.total_variance_ratio - 1.0) < 0.05
    assert r.mmd_p_value > 0.05
    assert 0.0 <= r.knn_ood_rate < 0.12 and 0.0 <= r.mahalanobis_ood_rate < 0.12  # 0.05 expected
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    for name in ("centroid_gap", "centroid_gap_share", "mean_cosine_between_means", "modality_gap",
                 "covariance_frobenius", "bures_wasserstein", "total_variance_ratio", "principal_angles",
                 "mmd_linear", "mmd_rbf", "mmd_p_value", "classifier_auc", "classifier_auc_ci", "hardest",
                 "by_bucket", "verdicts", "sample_size"):
        assert name in d
    assert "knn_distance" not in d and d["sample_size"] == {"corpus": 200, "queries": 200}
    assert "Shift:" in r._repr_html_() and "ShiftReport" in repr(r)


@pytest.mark.parametrize("s", [0.5, 2.0])
def test_planted_mean_shift_is_recovered(s):
    direction = np.random.default_rng(7).normal(size=D)
    direction /= np.linalg.norm(direction)
    c, q = _gauss(3000, 2, sd=np.ones(D)), _gauss(1500, 3, sd=np.ones(D), shift=s * direction)
    r = shift_report(c, q, metric="euclidean", k=5, **FAST)
    noise = np.sqrt(D * (1 / 3000 + 1 / 1500))  # sd of the gap's length when there is none: 0.11
    assert abs(r.centroid_gap - s) < 2 * noise
    assert np.dot(r.gap_vector / r.centroid_gap, direction) > 0.9
    assert abs(r.mmd_linear - s * s) < 2 * noise * s + 0.02  # linear MMD^2 estimates ||mu_Q - mu_C||^2
    assert abs(r.frechet_distance - s * s) < 0.15 + 2 * noise * s  # equal covariances: only the means differ
    assert r.mmd_p_value == pytest.approx(1 / 50)  # every permutation below the observed value
    # the best linear rule between N(0, I) and N(s e, I) reaches AUC = Phi(s / sqrt 2) (Hanley & McNeil, 1982)
    assert abs(r.classifier_auc - norm.cdf(s / np.sqrt(2))) < 0.08
    assert r.verdicts[1].status in ("warn", "bad")


def test_planted_rotation_leaves_the_mean_and_shows_in_the_angles():
    mu = np.full(D, 3.0)
    z = _gauss(1500, 5)
    rot = np.eye(D)
    rot[[0, 0, 9, 9], [0, 9, 0, 9]] = [0.0, 1.0, -1.0, 0.0]  # 90 degrees in the plane of axes 0 and 9
    r = shift_report(_gauss(3000, 4) + mu, z @ rot + mu, metric="euclidean", k=5, n_components=3, **FAST)
    # sampling noise alone: E||gap||^2 = tr C (1/n_c + 1/n_q), so ~0.03 spreads here; allow 3 times it
    assert r.centroid_gap_in_spreads < 3 * np.sqrt(1 / 3000 + 1 / 1500)
    angles = sorted(r.principal_angles)
    assert angles[-1] > 80.0 and angles[0] < 10.0  # axis 0 left the top-3 subspace, axes 1 and 2 stayed
    assert abs(r.total_variance_ratio - 1.0) < 0.05  # a rotation keeps the spread
    assert r.covariance_frobenius_relative > 0.5


# --------------------------------------------------------------------------------- independent checks


def test_frechet_distance_against_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    ca, cb = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    ma, mb = rng.normal(size=8), rng.normal(size=8)
    direct = ma - mb
    direct = direct @ direct + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(ma, ca, mb, cb) == pytest.approx(direct, rel=1e-8)
    root = scipy.linalg.sqrtm(ca).real
    other = (ma - mb) @ (ma - mb) + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(root @ cb @ root).real)
    assert frechet_distance(ma, ca, mb, cb) == pytest.approx(other, rel=1e-8)
    singular = a[:, :3] @ a[:, :3].T  # rank 3: no Cholesky factor, the symmetric root instead
    direct = (ma - mb) @ (ma - mb) + np.trace(singular + cb - 2 * scipy.linalg.sqrtm(singular @ cb).real)
    assert frechet_distance(ma, singular, mb, cb) == pytest.approx(direct, rel=1e-6)
    # the report's number is this formula on the two sets' sample means and covariances (ddof=1)
    c, q = _gauss(400, 0), _gauss(200, 1, shift=0.3)
    r = shift_report(c, q, metric="euclidean", k=3, **FAST)
    c64, q64 = c.astype(np.float64), q.astype(np.float64)
    gap = c64.mean(0) - q64.mean(0)
    s_c, s_q = np.cov(c64.T), np.cov(q64.T)
    expected = gap @ gap + np.trace(s_c + s_q - 2 * scipy.linalg.sqrtm(s_c @ s_q).real)
    assert r.frechet_distance == pytest.approx(expected, rel=1e-6)
    assert r.bures_wasserstein == pytest.approx(np.sqrt(expected), rel=1e-6)
    assert r.covariance_frobenius == pytest.approx(np.linalg.norm(s_q - s_c), rel=1e-6)


def _direct_mmd2(x, y, kernel):
    """The unbiased MMD^2 by its definition, pair by pair (Gretton et al., 2012, Lemma 6)."""
    m, n = len(x), len(y)
    kxx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_mmd_against_the_direct_quadratic_formula():
    x, y = _gauss(25, 0).astype(np.float64), _gauss(18, 1, shift=0.5).astype(np.float64)
    sigma = np.median(pdist(np.vstack([x, y])))  # the median heuristic
    rbf = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))  # noqa: E731
    out = mmd_test(x, y, kernel="rbf", n_permutations=0)
    assert out["bandwidth"] == pytest.approx(sigma, rel=1e-10)
    assert out["mmd2"] == pytest.approx(_direct_mmd2(x, y, rbf), rel=1e-9)
    assert mmd_test(x, y, kernel="linear", n_permutations=0)["mmd2"] == pytest.approx(
        _direct_mmd2(x, y, np.dot), rel=1e-9)
    # the report: the Gaussian MMD on its samples (all rows here) and the linear MMD over all rows
    c, q = _gauss(30, 2), _gauss(20, 3, shift=0.5)
    r = shift_report(c, q, metric="euclidean", k=3, n_permutations=0, sample_size=100, transforms=False)
    c64, q64 = c.astype(np.float64), q.astype(np.float64)
    sigma = np.median(pdist(np.vstack([c64, q64])))
    rbf = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))  # noqa: E731
    assert r.mmd_rbf == pytest.approx(_direct_mmd2(c64, q64, rbf), rel=1e-6)
    assert r.mmd_linear == pytest.approx(_direct_mmd2(c64, q64, np.dot), rel=1e-5, abs=1e-6)
    assert r.mmd_p_value is None


def test_permutation_p_value_against_a_direct_loop():
    x, y = _gauss(15, 0).astype(np.float64), _gauss(12, 1, shift=0.4).astype(np.float64)
    out = mmd_test(x, y, kernel="linear", n_permutations=30, random_state=3)
    rng = np.random.default_rng(3)
    labels = np.zeros(27)
    labels[:15] = 1.0
    pooled = np.vstack([x, y])
    null = []
    for _ in range(30):
        perm = rng.permutation(labels).astype(bool)
        null.append(_direct_mmd2(pooled[perm], pooled[~perm], np.dot))
    assert out["p_value"] == pytest.approx((1 + np.sum(np.array(null) >= out["mmd2"] - 1e-12)) / 31)


def test_mahalanobis_and_knn_distance_against_scipy():
    c, q = _gauss(500, 0), _gauss(60, 1, shift=0.8)
    eps = 1e-6
    r = shift_report(c, q, metric="euclidean", k=4, eps=eps, **{**FAST, "sample_size": 500})
    c64 = c.astype(np.float64)
    # every corpus row is a reference row: 10 interleaved folds (rows f::10) of 10 % each; row r of fold f
    # and query i (fold i mod 10) are scored under the mean and covariance of the corpus without fold f
    expected, reference = [], []
    for f in range(10):
        rest = np.delete(c64, np.arange(f, 500, 10), axis=0)
        cov = np.cov(rest.T)
        vi = np.linalg.inv(cov + eps * np.linalg.eigvalsh(cov)[-1] * np.eye(D))
        reference += [mahalanobis(row, rest.mean(0), vi) for row in c64[f::10]]
        expected.append([mahalanobis(row, rest.mean(0), vi) for row in q.astype(np.float64)[f::10]])
    by_query = np.empty(60)
    for f in range(10):
        by_query[f::10] = expected[f]
    np.testing.assert_allclose(r.mahalanobis, by_query, rtol=1e-5)
    assert r.mahalanobis_corpus_threshold == pytest.approx(np.percentile(reference, 95), rel=1e-5)
    kth = np.sort(cdist(q.astype(np.float64), c64), axis=1)[:, 3]
    np.testing.assert_allclose(r.knn_distance, kth, rtol=1e-4)
    assert r.hardest[0]["knn_distance"] == pytest.approx(kth.max(), rel=1e-4)
    # cosine: the same on unit rows, chord distances
    rc = shift_report(c, q, metric="cosine", k=4, **FAST)
    u = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(rc.knn_distance, np.sort(cdist(u(q.astype(np.float64)), u(c64)), axis=1)[:, 3],
                               rtol=1e-4)
    uc = u(c64)
    assert rc.modality_gap == pytest.approx(np.linalg.norm(u(q.astype(np.float64)).mean(0) - uc.mean(0)), rel=1e-6)


def test_classifier_auc_and_principal_angles_against_sklearn_and_scipy():
    x, y = _gauss(80, 0), _gauss(80, 1, shift=0.7)
    out = classifier_test(x, y, n_boot=200, random_state=0)
    assert out["auc"] == pytest.approx(roc_auc_score(out["labels"], out["scores"]), abs=1e-12)
    assert out["ci"][0] <= out["auc"] <= out["ci"][1]
    rng = np.random.default_rng(0)
    a = np.linalg.qr(rng.normal(size=(10, 3)))[0]
    b = np.linalg.qr(rng.normal(size=(10, 3)))[0]
    np.testing.assert_allclose(principal_angles(a, b), np.sort(np.degrees(scipy.linalg.subspace_angles(a, b))),
                               atol=1e-8)


# --------------------------------------------------------------------------------- retrieval, transforms


def test_transform_rows_and_an_exact_index_by_bucket():
    c, q = _gauss(600, 0), _gauss(150, 1, shift=np.r_[2.0, np.zeros(D - 1)])
    r = shift_report(c, q, metric="euclidean", k=5, n_permutations=0, sample_size=200, index="flat")
    rows = {t["transform"]: t for t in r.transforms}
    raw = rows["none"]
    # centring moves both sets by one vector: under euclidean no statistic changes
    for name in ("center on the corpus mean", "center on the pooled mean"):
        assert rows[name]["centroid_gap"] == pytest.approx(raw["centroid_gap"], rel=1e-4)
        assert rows[name]["frechet_distance"] == pytest.approx(raw["frechet_distance"], rel=1e-3)
    # ZCA fitted on the corpus: the gap becomes the Mahalanobis length of the mean difference
    c64, q64 = c.astype(np.float64), q.astype(np.float64)
    cov = np.cov(c64.T, bias=True)  # the transformers' moments divide by n
    lam, u = np.linalg.eigh(cov)
    w = u @ np.diag(1 / np.sqrt(lam + 1e-6 * lam.max())) @ u.T
    expected = np.linalg.norm(w @ (q64.mean(0) - c64.mean(0)))
    assert rows["ZCA whitening fitted on the corpus"]["centroid_gap"] == pytest.approx(expected, rel=1e-4)
    assert sum(b["n_queries"] for b in r.by_bucket) == 150
    assert all(b["recall flat()"] == pytest.approx(1.0) for b in r.by_bucket)  # exact search: recall 1
    assert all(b["margin_median"] >= 0 for b in r.by_bucket)
    assert r.index["settings"][0]["recall_at_k"] == pytest.approx(1.0)


def test_memory_mapped_corpus_labels_and_progress(tmp_path):
    c, q = _gauss(400, 0), _gauss(40, 1, shift=0.5)
    np.save(tmp_path / "c.npy", c)
    mapped = EmbeddingSet(np.load(tmp_path / "c.npy", mmap_mode="r"), name="mapped")
    groups = np.array(["a", "b"] * 20)
    seen = []
    r = shift_report(mapped, q, k=3, labels=groups, progress=lambda d, t, s: seen.append((d, t)), **FAST)
    plain = shift_report(c, q, k=3, labels=groups, **FAST)
    assert r.name_corpus == "mapped" and r.centroid_gap == pytest.approx(plain.centroid_gap, rel=1e-6)
    assert r.mmd_rbf == pytest.approx(plain.mmd_rbf, rel=1e-6)
    assert [g["label"] for g in r.by_label] == ["a", "b"] and sum(g["n_queries"] for g in r.by_label) == 40
    assert r.hardest[0]["label"] in ("a", "b") and r.hardest[0]["text"] is None
    assert seen and seen[-1][0] == seen[-1][1]

    def cancel(done, total, what):
        if done >= 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        shift_report(c, q, k=3, progress=cancel, **FAST)


def test_dot_metric_runs_and_says_what_its_scores_are():
    c, q = _gauss(200, 0), _gauss(30, 1, shift=0.5)
    r = shift_report(c, q, metric="dot", k=3, **FAST)
    np.testing.assert_allclose(r.knn_distance, -np.sort(q @ c.T, axis=1)[:, ::-1][:, 2], rtol=1e-4)
    assert any("dot" in n for n in r.notes) and all(b["relative_contrast_median"] is None for b in r.by_bucket)


# --------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("corpus, queries, kwargs, message", [
    (np.ones((50, 8)), np.ones((20, 6)), {}, "dimension 6 but the corpus has dimension 8"),
    (_gauss(50, 0), _gauss(5, 1), {}, "too few queries for the two-sample tests: 5 rows, at least 10"),
    (_gauss(8, 0), _gauss(20, 1), {}, "too few corpus"),
    (_gauss(50, 0), np.vstack([_gauss(19, 1), np.full((1, D), np.nan)]), {}, "queries: 1 of 20 rows contain NaN"),
    (np.vstack([np.full((1, D), np.inf), _gauss(49, 0)]), _gauss(20, 1), {}, "corpus: 1 of 50 rows contain NaN"),
    (_gauss(50, 0), np.vstack([_gauss(19, 1), np.zeros((1, D))]), {}, "queries: 1 of 20 rows are all-zero"),
    (_gauss(50, 0), _gauss(20, 1), {"k": 50}, "too few points for k=50"),
    (_gauss(50, 0), _gauss(20, 1), {"index": "annoy"}, "unknown index kind 'annoy'"),
    (_gauss(50, 0), _gauss(20, 1), {"sample_size": 3}, "sample_size must be an integer >= 10"),
    (_gauss(50, 0), _gauss(20, 1), {"metric": "manhattan"}, "unknown metric"),
    (_gauss(50, 0), _gauss(20, 1), {"labels": ["a"] * 3}, "labels must hold one value per query (20)"),
    (_gauss(50, 0), _gauss(20, 1), {"labels": "topic"}, "no metadata column 'topic'"),
    (_gauss(50, 0), _gauss(20, 1), {"n_buckets": 0}, "n_buckets must be at least 1"),
    (_gauss(50, 0), _gauss(20, 1), {"n_components": 0}, "n_components must be at least 1"),
    (_gauss(50, 0), _gauss(20, 1), {"n_folds": 1}, "n_folds must be at least 2"),
])
def test_bad_input_is_refused_clearly(corpus, queries, kwargs, message):
    with pytest.raises(EmbeddingInputError, match=None) as info:
        shift_report(corpus, queries, **{**FAST, **kwargs})
    assert message in str(info.value)
