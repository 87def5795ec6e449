"""representation_similarity(), similarity_matrix() and CrossMoments: each statistic against a direct
formula or an independent implementation run here (Gram-matrix HSIC, scikit-learn's CCA, scipy's
orthogonal Procrustes, pdist + spearmanr), known answers, streaming, memory maps and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from embgeo.analysis import (
    Cancelled,
    CrossMoments,
    EmbeddingInputError,
    EmbeddingSet,
    representation_similarity,
    scan_cross_moments,
    similarity_matrix,
)
from embgeo.analysis.comparison import linear_statistics

N = 300


def _pair(n=N, da=10, db=7, seed=0, offset=3.0):
    """Two related representations: B is a noisy linear map of A, both with an offset (not centred)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, da)) * np.geomspace(3.0, 0.3, da) + offset
    y = x @ rng.normal(size=(da, db)) + 0.5 * rng.normal(size=(n, db)) - offset
    return x.astype(np.float32), y.astype(np.float32)


def _rotation(d, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


@pytest.fixture(scope="module")
def xy():
    return _pair()


@pytest.fixture(scope="module")
def sim(xy):
    return representation_similarity(*xy, k=5)


# ------------------------------------------------------------------------------------- independent formulas


def _hsic_biased(k, l):
    n = len(k)
    h = np.eye(n) - 1.0 / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def _hsic_unbiased(k, l):
    """Song et al. (JMLR 2012), eq. 5, straight from the Gram matrices."""
    n = len(k)
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))


def _cka(hsic, k, l):
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_matches_the_gram_hsic_formula(xy, sim):
    x, y = (v.astype(np.float64) for v in xy)
    assert sim.linear_cka == pytest.approx(_cka(_hsic_biased, x @ x.T, y @ y.T), rel=1e-9)


def test_debiased_cka_matches_the_unbiased_hsic_of_the_raw_grams(xy, sim):
    x, y = (v.astype(np.float64) for v in xy)  # uncentred on purpose: the estimator ignores centring
    assert sim.debiased_cka == pytest.approx(_cka(_hsic_unbiased, x @ x.T, y @ y.T), rel=1e-8)
    assert sim.debiased_cka < sim.linear_cka  # the biased form is inflated


def test_rbf_cka_matches_gaussian_grams_with_the_median_bandwidth(xy, sim):
    grams = []
    for v in xy:
        d = pdist(v.astype(np.float64))
        sigma2 = np.median(d ** 2)
        sq = np.zeros((N, N))
        sq[np.triu_indices(N, 1)] = d ** 2
        grams.append(np.exp(-(sq + sq.T) / (2 * sigma2)))
    assert sim.sample_size == N
    assert sim.rbf_cka == pytest.approx(_cka(_hsic_biased, *grams), rel=1e-9)


@pytest.mark.parametrize("metric,scipy_metric", [("cosine", "cosine"), ("euclidean", "euclidean")])
def test_rsa_is_spearman_of_the_pdist_vectors(xy, metric, scipy_metric):
    s = representation_similarity(*xy, metric=metric, knn=None)
    expected = spearmanr(pdist(xy[0].astype(np.float64), scipy_metric), pdist(xy[1].astype(np.float64), scipy_metric))
    assert s.rsa_spearman == pytest.approx(expected.statistic, abs=1e-9)


def _qr_cca(x, y):
    """Canonical correlations and A's unit canonical variates (Bjorck & Golub, 1973)."""
    qx, _ = np.linalg.qr(x - x.mean(0))
    qy, _ = np.linalg.qr(y - y.mean(0))
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return rho, qx @ u


def test_canonical_correlations_match_scikit_learn_cca(xy, sim):
    from sklearn.cross_decomposition import CCA

    x, y = (v.astype(np.float64) for v in xy)
    cca = CCA(n_components=3, max_iter=5000, tol=1e-12).fit(x, y)
    xs, ys = cca.transform(x, y)
    sk = [np.corrcoef(xs[:, i], ys[:, i])[0, 1] for i in range(3)]
    np.testing.assert_allclose(sim.canonical_correlations[:3], sk, atol=1e-6)
    np.testing.assert_allclose(sim.canonical_correlations, _qr_cca(x, y)[0], atol=1e-9)


def test_pwcca_follows_morcos_et_al_recipe_on_the_data(xy, sim):
    x, y = (v.astype(np.float64) for v in xy)
    rho, variates = _qr_cca(y, x)  # B is the smaller side (7 < 10): weights come from B's variates
    alpha = np.abs(variates.T @ y).sum(axis=1)  # sum over B's neurons of |<h_i, y_j>|, raw columns
    assert sim.pwcca == pytest.approx(float(alpha @ rho / alpha.sum()), rel=1e-9)


def test_svcca_is_the_mean_cca_of_the_99_percent_svd_directions(xy, sim):
    reduced = []
    for v in xy:
        c = v.astype(np.float64) - v.mean(0)
        u, s, _ = np.linalg.svd(c, full_matrices=False)
        keep = int(np.searchsorted(np.cumsum(s ** 2) / np.sum(s ** 2), 0.99 - 1e-9) + 1)
        reduced.append(u[:, :keep] * s[:keep])
    assert tuple(sim.svcca_dims) == (reduced[0].shape[1], reduced[1].shape[1])
    assert sim.svcca == pytest.approx(float(_qr_cca(*reduced)[0].mean()), rel=1e-9)


@pytest.mark.parametrize("db", [10, 6])
def test_procrustes_matches_scipy_orthogonal_procrustes(db):
    x, y = _pair(db=db, seed=3)
    s = representation_similarity(x, y, knn=None)
    xn, yn = (v.astype(np.float64) - v.mean(0) for v in (x, y))
    xn, yn = xn / np.linalg.norm(xn), yn / np.linalg.norm(yn)
    yn = np.hstack([yn, np.zeros((N, 10 - db))])  # pad the smaller with zeros
    r, _ = orthogonal_procrustes(yn, xn)
    expected = np.linalg.norm(yn @ r - xn)
    assert s.procrustes_distance == pytest.approx(expected, rel=1e-9)
    assert s.angular_shape_distance == pytest.approx(np.arccos(1 - expected ** 2 / 2), rel=1e-9)


# ------------------------------------------------------------------------------------------- known answers


def test_a_rotation_with_scaling_is_the_same_representation():
    x = _pair(n=400, da=16, offset=0.0)[0]
    y = (2.5 * x.astype(np.float64) @ _rotation(16)).astype(np.float32)
    s = representation_similarity(x, y, k=5)
    for name in ("linear_cka", "debiased_cka", "rbf_cka", "svcca", "pwcca", "mutual_knn"):
        assert getattr(s, name) == pytest.approx(1.0, abs=1e-5), name
    assert s.procrustes_distance < 1e-3 and s.angular_shape_distance < 1e-3
    assert s.rsa_spearman == pytest.approx(1.0, abs=1e-6)


def test_translation_changes_no_linear_statistic(xy, sim):
    moved = representation_similarity(xy[0] + 100.0, xy[1] - 50.0, knn=None)
    for name in ("linear_cka", "debiased_cka", "svcca", "pwcca", "procrustes_distance"):
        assert getattr(moved, name) == pytest.approx(getattr(sim, name), rel=1e-4), name


def test_independent_gaussians_give_debiased_cka_near_zero():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(1500, 40)), rng.normal(size=(1500, 60))
    s = representation_similarity(x, y, knn=None, sample_size=300)
    assert abs(s.debiased_cka) < 0.01
    assert s.linear_cka > 0.02  # biased: about sqrt(d_a d_b) / n for independent data
    assert abs(s.rsa_spearman) < 0.05


# ------------------------------------------------------------------------------------- streaming and maps


def test_streamed_blocks_and_merged_chunks_equal_one_pass(xy, sim):
    x, y = xy
    one = linear_statistics(scan_cross_moments(x, y, block_rows=N))
    blocked = linear_statistics(scan_cross_moments(x, y, block_rows=7))
    chunks = [CrossMoments(x.shape[1], y.shape[1]).update(x[i:i + 50], y[i:i + 50]) for i in range(0, N, 50)]
    merged = linear_statistics(sum(chunks[::-1]))
    for name in ("linear_cka", "debiased_cka", "svcca", "pwcca", "procrustes_distance"):
        assert blocked[name] == pytest.approx(one[name], rel=1e-10), name
        assert merged[name] == pytest.approx(one[name], rel=1e-10), name
        assert getattr(sim, name) == pytest.approx(one[name], rel=1e-10), name
    given = representation_similarity(x, y, knn=None, cross_moments=sum(chunks))
    assert given.linear_cka == pytest.approx(sim.linear_cka, rel=1e-10)


def test_cross_moments_centre_exactly_far_from_the_origin():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(500, 4)) + 1e4, rng.normal(size=(500, 3)) - 1e4
    c = sum(CrossMoments(4, 3).update(x[i:i + 64], y[i:i + 64]) for i in range(0, 500, 64)).centred()
    xc, yc = x - x.mean(0), y - y.mean(0)
    a, b = (xc ** 2).sum(1), (yc ** 2).sum(1)
    np.testing.assert_allclose(c.ab, xc.T @ yc, rtol=1e-9, atol=1e-9)
    assert (c.q_ab, c.q_aa, c.q_bb) == pytest.approx((a @ b, a @ a, b @ b), rel=1e-9)


def test_swapped_moments_are_the_moments_of_b_and_a(xy):
    x, y = xy
    swapped, direct = scan_cross_moments(x, y).swapped().centred(), scan_cross_moments(y, x).centred()
    for name in ("aa", "bb", "ab", "q_aa", "q_bb", "q_ab", "qv_ab", "qv_ba"):
        np.testing.assert_allclose(getattr(swapped, name), getattr(direct, name), rtol=1e-9, atol=1e-6)
    with pytest.raises(EmbeddingInputError, match="different numbers of rows: 5 and 4"):
        CrossMoments(10, 7).update(x[:5], y[:4])
    with pytest.raises(EmbeddingInputError, match="cannot merge"):
        CrossMoments(10, 7).merge(CrossMoments(7, 10))
    assert CrossMoments(10, 7).merge(scan_cross_moments(x, y)).count == N


def test_a_memory_mapped_npy_is_read_in_place(tmp_path, xy, sim):
    np.save(tmp_path / "a.npy", xy[0])
    np.save(tmp_path / "b.npy", xy[1])
    a = EmbeddingSet(np.load(tmp_path / "a.npy", mmap_mode="r"))
    b = EmbeddingSet(np.load(tmp_path / "b.npy", mmap_mode="r"))
    assert "memory-mapped" in a.storage_note
    s = representation_similarity(a, b, k=5, block_rows=64)
    assert s.to_dict()["linear_cka"] == pytest.approx(sim.linear_cka, rel=1e-10)
    assert s.mutual_knn == pytest.approx(sim.mutual_knn)


def test_to_dict_names_every_statistic_and_is_json_safe(sim):
    d = json.loads(json.dumps(sim.to_dict(), allow_nan=False))
    for name in ("linear_cka", "debiased_cka", "rbf_cka", "svcca", "pwcca", "procrustes_distance",
                 "angular_shape_distance", "mutual_knn", "rsa_spearman", "sample_size"):
        assert isinstance(d[name], (int, float)), name
    assert "canonical_correlations" not in d and "cross_moments" not in d
    assert "linear CKA" in sim.headline() and "linear_cka" in sim._repr_html_()


def test_sample_size_is_stated_and_used(xy):
    s = representation_similarity(*xy, knn=None, sample_size=120)
    assert s.sample_size == 120 and s.mutual_knn is None and any("knn=None" in n for n in s.notes)


def test_progress_reports_and_cancels(xy):
    seen = []
    representation_similarity(*xy, k=5, progress=lambda d, t, what: seen.append((d, t)))
    assert seen[-1] == (4, 4)

    def stop(done, total, what):
        if done >= 1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        representation_similarity(*xy, progress=stop)


# ----------------------------------------------------------------------------------------------- matrix


def test_similarity_matrix_matches_the_pairwise_statistics():
    x, y = _pair(seed=4)
    z = np.random.default_rng(9).normal(size=(N, 5)).astype(np.float32)
    sets = [x, y, z]
    for statistic in ("linear_cka", "pwcca", "mutual_knn", "procrustes_distance"):
        m = similarity_matrix(sets, statistic=statistic, names=["x", "y", "z"], k=5)
        for i in range(3):
            for j in range(3):
                knn = "exact" if statistic == "mutual_knn" else None
                expected = getattr(representation_similarity(sets[i], sets[j], k=5, knn=knn, sample_size=20),
                                   statistic)
                assert m.matrix[i, j] == pytest.approx(expected, rel=1e-9, abs=1e-6), (statistic, i, j)
    d = json.loads(json.dumps(m.to_dict()))
    assert d["names"] == ["x", "y", "z"] and len(d["matrix"]) == 3
    assert "SimilarityMatrix" in repr(m) and "<table" in m._repr_html_()


# -------------------------------------------------------------------------------------------- bad input


def test_different_numbers_of_items_name_both_sizes(xy):
    with pytest.raises(EmbeddingInputError, match="300.*299"):
        representation_similarity(xy[0], xy[1][:299])
    with pytest.raises(EmbeddingInputError, match="300.*299"):
        similarity_matrix([xy[0], xy[1][:299]])


def test_ids_in_a_different_order_are_refused_with_the_fix(xy):
    ids = pd.DataFrame({"id": [f"item{i}" for i in range(N)]})
    order = np.random.default_rng(0).permutation(N)
    a = EmbeddingSet(xy[0], ids)
    b = EmbeddingSet(xy[1][order], ids.iloc[order])
    with pytest.raises(EmbeddingInputError, match="different order.*get_indexer"):
        representation_similarity(a, b)
    other = EmbeddingSet(xy[1], pd.DataFrame({"id": [f"other{i}" for i in range(N)]}))
    with pytest.raises(EmbeddingInputError, match="not the same items"):
        representation_similarity(a, other)
    fixed = b.subset(pd.Index(b.metadata["id"]).get_indexer(a.metadata["id"]))
    assert representation_similarity(a, fixed, knn=None).linear_cka == pytest.approx(
        representation_similarity(*xy, knn=None).linear_cka, rel=1e-9)


def test_nan_rows_and_rows_dropped_from_one_side(xy):
    bad = xy[1].copy()
    bad[17, 2] = np.nan
    with pytest.raises(EmbeddingInputError, match="^B: .*17"):
        representation_similarity(xy[0], bad)
    dropped = EmbeddingSet(np.vstack([bad, bad[:1]]), on_invalid="drop")  # 300 rows again, one lost
    with pytest.raises(EmbeddingInputError, match="on_invalid='drop'"):
        representation_similarity(xy[0], dropped)


def test_too_few_items_and_bad_options(xy):
    with pytest.raises(EmbeddingInputError, match="at least 4 items.*n=3"):
        representation_similarity(xy[0][:3], xy[1][:3])
    with pytest.raises(EmbeddingInputError, match="knn"):
        representation_similarity(*xy, knn="fast")
    with pytest.raises(EmbeddingInputError, match="too few points"):
        representation_similarity(xy[0][:6], xy[1][:6], k=10)
    with pytest.raises(EmbeddingInputError, match="statistic must be one of"):
        similarity_matrix([xy[0]], statistic="cka")
    with pytest.raises(EmbeddingInputError, match="zero variance"):
        representation_similarity(np.ones((10, 3)), xy[1][:10], knn=None)


# ------------------------------------------------------------------------------------------- in compare()


def test_compare_carries_the_similarity_block(xy):
    from embgeo.analysis import compare

    c = compare(*xy, k=5, sample=50)
    alone = representation_similarity(*xy, k=5)
    assert c.similarity.linear_cka == pytest.approx(alone.linear_cka, rel=1e-12)
    assert c.similarity.mutual_knn == pytest.approx(c.neighborhood_preservation)  # the same overlap, one table
    assert "similarity: linear CKA" in repr(c) and "Representation similarity" in c._repr_html_()
    assert json.loads(json.dumps(c.to_dict(), allow_nan=False))["similarity"]["debiased_cka"] == pytest.approx(
        alone.debiased_cka)
    assert compare(*xy, k=5, sample=50, similarity=False).similarity is None


def test_compare_leaves_similarity_out_with_a_note_when_ids_disagree(xy):
    from embgeo.analysis import compare

    a = EmbeddingSet(xy[0], pd.DataFrame({"id": np.arange(N)}))
    b = EmbeddingSet(xy[1], pd.DataFrame({"id": np.arange(N)[::-1]}))
    c = compare(a, b, k=5, sample=50)
    assert c.similarity is None and any("similarity left out" in note and "different order" in note
                                        for note in c.notes)
    assert c.neighborhood_preservation is not None  # the existing outputs stay as they were
