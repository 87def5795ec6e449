"""What each transform does to retrieval (the transform rows' overlap@k and an index's recall in each
space), checked against neighbours found here by scipy's cdist and a sort; and the principal
subspaces capped below d."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from embgeo.analysis import shift_report
from embgeo.analysis.shift.retrieval import query_buckets, space_retrieval

D = 12
SD = np.array([6.0, 4.0, 3.0] + [1.0] * (D - 3))


def _gauss(n, seed, *, sd=SD, shift=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(sd))) * sd
    return (x if shift is None else x + shift).astype(np.float32)


def _top_k(corpus, queries, k, metric):
    """Exact top-k by a full distance matrix (scipy), nearest first."""
    d = cdist(np.asarray(queries, np.float64), np.asarray(corpus, np.float64),
              "cosine" if metric == "cosine" else "euclidean")
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def _overlap(a, b):
    return np.mean([len(set(x) & set(y)) / a.shape[1] for x, y in zip(a, b)])


def _rows(report):
    return {t["transform"]: t for t in report.transforms}


def test_an_exact_index_has_recall_1_in_every_space_and_euclidean_centring_keeps_the_neighbours():
    """A planted mean shift under euclidean: a flat index is exact in every space (recall 1, also by
    bucket); centring moves both sets by one vector (the same neighbours, overlap 1); ZCA whitening
    changes them, by the overlap computed here from the whitened rows."""
    c, q = _gauss(600, 0), _gauss(150, 1, shift=np.r_[3.0, np.zeros(D - 1)])
    r = shift_report(c, q, metric="euclidean", k=5, n_permutations=0, sample_size=600, index="flat")
    rows = _rows(r)
    assert list(rows) == ["none", "center on the corpus mean", "center on the pooled mean",
                          "ZCA whitening fitted on the corpus"]
    for t in rows.values():
        assert t["recall flat()"] == pytest.approx(1.0)
        assert all(v == pytest.approx(1.0) for v in t["recall flat() by bucket"])
        assert len(t["overlap_by_bucket"]) == 4
    for name in ("none", "center on the corpus mean", "center on the pooled mean"):
        assert rows[name]["overlap_at_k"] == pytest.approx(1.0)
    c64, q64 = c.astype(np.float64), q.astype(np.float64)
    lam, u = np.linalg.eigh(np.cov(c64.T, bias=True))
    w = u @ np.diag(1 / np.sqrt(lam + 1e-6 * lam.max())) @ u.T
    mu = c64.mean(0)
    expected = _overlap(_top_k((c64 - mu) @ w, (q64 - mu) @ w, 5, "euclidean"), _top_k(c64, q64, 5, "euclidean"))
    zca = rows["ZCA whitening fitted on the corpus"]
    assert zca["overlap_at_k"] == pytest.approx(expected) and expected < 0.9
    # the bucket means average back to the whole (every query is in the sample: sample_size >= 150)
    _, which = query_buckets(r.mahalanobis, 4)
    counts = np.bincount(which, minlength=4)
    assert np.dot(counts, zca["overlap_by_bucket"]) / 150 == pytest.approx(zca["overlap_at_k"])
    assert "recall before and after" not in " ".join(r.notes)
    assert all(list(t) == list(r.transforms[0]) for t in r.transforms)  # one header for the HTML table
    assert "<th>overlap_at_k</th>" in r._repr_html_() and "overlap_at_k=" in repr(r)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_an_orthogonal_rotation_as_the_transform_keeps_overlap_1(metric):
    """A rotation keeps every distance and angle, so the exact top-k in the rotated space is the raw
    one; a scaling of one axis (not orthogonal) does not, so the overlap can fail."""
    c, q = _gauss(400, 2), _gauss(80, 3, shift=1.5)
    rotation = np.linalg.qr(np.random.default_rng(4).normal(size=(D, D)))[0]
    truth = _top_k(c, q, 8, metric)
    buckets = np.arange(80) % 3
    out = space_retrieval(c @ rotation, q @ rotation, truth, k=8, metric=metric, buckets=buckets, n_buckets=3)
    assert out["overlap_at_k"] == pytest.approx(1.0) and out["overlap_by_bucket"] == pytest.approx([1.0] * 3)
    scale = np.ones(D)
    scale[0] = 20.0  # the small axes drown: different neighbours
    stretched = space_retrieval(c * scale, q * scale, truth, k=8, metric=metric, buckets=buckets, n_buckets=3)
    assert stretched["overlap_at_k"] == pytest.approx(_overlap(_top_k(c * scale, q * scale, 8, metric), truth))
    assert stretched["overlap_at_k"] < 0.9


def test_centring_under_cosine_changes_the_neighbours():
    """Far from the origin the angles between rows are all small; centring on the corpus mean (then
    normalising) spreads them, so the cosine neighbours change: overlap below 1, equal to the one
    computed here from the centred rows."""
    offset = np.r_[20.0, 10.0, np.zeros(D - 2)]
    c = _gauss(500, 5, shift=offset)
    q = _gauss(120, 6, shift=offset + np.r_[0.0, 0.0, 4.0, np.zeros(D - 3)])
    r = shift_report(c, q, metric="cosine", k=5, n_permutations=0, sample_size=500, index="flat")
    rows = _rows(r)
    assert rows["none"]["overlap_at_k"] == pytest.approx(1.0)
    mu = c.astype(np.float64).mean(0)
    expected = _overlap(_top_k(c - mu, q - mu, 5, "cosine"), _top_k(c, q, 5, "cosine"))
    centred = rows["center on the corpus mean"]
    assert centred["overlap_at_k"] == pytest.approx(expected, abs=0.01) and centred["overlap_at_k"] < 0.9
    assert rows["center on the pooled mean"]["overlap_at_k"] < 0.9
    assert all(t["recall flat()"] == pytest.approx(1.0) for t in rows.values())


def test_retrieval_columns_use_the_samples_and_say_when_k_does_not_fit():
    c, q = _gauss(600, 7), _gauss(200, 8, shift=1.0)
    r = shift_report(c, q, metric="euclidean", k=5, n_permutations=0, sample_size=50)
    assert r.sample_size == {"corpus": 50, "queries": 50}
    assert all(0.0 <= t["overlap_at_k"] <= 1.0 for t in r.transforms)
    assert not any(c.startswith("recall ") for c in r.transforms[0])  # no index, no recall columns
    small = shift_report(c, q, metric="euclidean", k=12, n_permutations=0, sample_size=12)
    assert "overlap_at_k" not in small.transforms[0]
    assert any("not more than k=12" in n for n in small.notes)


def test_principal_subspaces_are_capped_below_d():
    """d = 8 with the default n_components = 10: the top-10 (or top-8) subspace is the whole space, every
    angle 0 whatever the sets; the top 7 are compared instead (scipy's subspace_angles agrees), with a
    note."""
    sd = np.geomspace(5.0, 0.5, 8)
    c = _gauss(2000, 9, sd=sd)
    q = _gauss(800, 10, sd=sd[::-1])  # the queries vary most where the corpus varies least
    for n_components in (10, 8):
        r = shift_report(c, q, metric="euclidean", k=5, n_permutations=0, sample_size=100, transforms=False,
                         n_components=n_components)
        assert r.n_components == 7 and len(r.principal_angles) == 7
        assert any(f"n_components={n_components} is not below d=8" in n for n in r.notes)
    top = [np.linalg.eigh(np.cov(x.T.astype(np.float64)))[1][:, ::-1][:, :7] for x in (c, q)]
    expected = np.sort(np.degrees(scipy.linalg.subspace_angles(*top)))
    np.testing.assert_allclose(r.principal_angles, expected, atol=1e-5)  # arccos near 1: ~1e-6 degrees
    assert max(r.principal_angles) > 30.0  # not the trivial 0 of the whole space
    below = shift_report(c, q, metric="euclidean", k=5, n_permutations=0, sample_size=100, transforms=False,
                         n_components=3)
    assert below.n_components == 3 and not any("n_components" in n for n in below.notes)


def test_the_transform_verdict_quotes_the_overlap_of_the_transform_it_names():
    from embgeo.analysis.shift.verdicts import shift_verdicts

    summary = dict(centroid_gap=1.0, centroid_gap_in_spreads=1.2, mean_cosine_between_means=0.5, modality_gap=0.3,
                   mmd_p_value=0.01, classifier_auc=0.9, classifier_auc_ci=(0.85, 0.95), knn_ood_rate=0.2,
                   mahalanobis_ood_rate=0.2, k=10, sample_size={"corpus": 100, "queries": 100},
                   total_variance_ratio=1.0, n_components=3, principal_angles=[1.0, 2.0, 3.0])
    rows = [{"transform": "none", "classifier_auc": 0.9, "classifier_auc_ci": (0.85, 0.95),
             "centroid_gap_in_spreads": 1.2, "overlap_at_k": 1.0},
            {"transform": "center on the corpus mean", "classifier_auc": 0.6, "classifier_auc_ci": (0.55, 0.65),
             "centroid_gap_in_spreads": 0.1, "overlap_at_k": 0.72}]
    card = shift_verdicts(summary, rows)[-1]
    assert card.value == "center on the corpus mean" and "keeps 72% of its raw top-k" in card.advice
    rows[1]["classifier_auc"] = 0.88  # inside the raw interval: no transform counts
    assert shift_verdicts(summary, rows)[-1].value == "none of those tried"
