"""representation_similarity(), similarity_matrix() and CrossMoments: each statistic against a direct
formula or an independent implementation run here (Gram-matrix HSIC, scikit-learn's CCA, scipy's
orthogonal Procrustes, pdist + spearmanr), known answers, streaming, memory maps and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist, squareform
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


def _median_grams(*sets):
    """Gaussian Grams, sigma = the median pdist distance of the pairs that do not coincide."""
    grams = []
    for v in sets:
        d = pdist(v.astype(np.float64))
        sigma2 = np.median(d[d > 0]) ** 2
        grams.append(np.exp(-squareform(d) ** 2 / (2 * sigma2)))
    return grams


def test_rbf_cka_matches_gaussian_grams_with_the_median_bandwidth(xy, sim):
    assert sim.sample_size == N
    assert sim.rbf_cka == pytest.approx(_cka(_hsic_biased, *_median_grams(*xy)), rel=1e-9)


def test_rbf_cka_with_mostly_coinciding_items_and_with_one_point():
    """More than half the sampled pairs coincide (the old rule gave NaN): the bandwidth comes from the
    pairs that differ. Every item the same point: undefined, and the notes say so."""
    x, y = _pair(n=60)
    x[:45] = x[0]  # 990 of 1770 pairs coincide in A
    s = representation_similarity(x, y, knn=None)
    assert np.isfinite(s.rbf_cka)
    assert s.rbf_cka == pytest.approx(_cka(_hsic_biased, *_median_grams(x, y)), rel=1e-9)
    from embgeo.analysis.comparison.similarity import _dissimilarities, _rbf_cka

    assert np.isnan(_rbf_cka(np.ones((20, 3)), y[:20]))  # (the linear statistics refuse such a set first)
    # the blocked condensed dissimilarities, in pdist order, for the dot metric too
    x, y = x.astype(np.float64), y.astype(np.float64)
    np.testing.assert_allclose(_dissimilarities(x, "dot"), -(x @ x.T)[np.triu_indices(60, 1)], rtol=1e-12)
    np.testing.assert_allclose(_dissimilarities(y, "euclidean"), pdist(y), rtol=1e-9)


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


# ------------------------------------------------- matrix: one pass, independent formulas, finiteness, memory


class _CountingArray(np.ndarray):
    """A float32 array that records the rows of every 2-D slice taken of it (or of its views)."""

    def __array_finalize__(self, obj):
        self.reads = getattr(obj, "reads", None)

    def __getitem__(self, key):
        out = super().__getitem__(key)
        if self.reads is not None and isinstance(out, np.ndarray) and out.ndim == 2:
            self.reads.append(out.shape[0])
        return out


def _counted_sets(arrays):
    sets = []
    for i, a in enumerate(arrays):
        v = np.ascontiguousarray(a, dtype=np.float32).view(_CountingArray)
        v.reads = []
        s = EmbeddingSet(v, name=f"s{i}")
        assert isinstance(s.vectors, _CountingArray)
        v.reads.clear()  # the validation pass is not the matrix's
        sets.append(s)
    return sets


def _four_sets():
    x, y = _pair(seed=4)
    rng = np.random.default_rng(9)
    w = (y @ rng.normal(size=(7, 7)) + rng.normal(size=(N, 7))).astype(np.float32)  # the same dim as y: a tie
    z = rng.normal(size=(N, 5)).astype(np.float32)
    return [x, y, w, z]


def test_similarity_matrix_reads_each_set_once_and_equals_the_pairwise_scans():
    arrays = _four_sets()
    sets = _counted_sets(arrays)
    expected = {}
    for i in range(4):
        for j in range(4):
            if i != j:
                expected[i, j] = linear_statistics(scan_cross_moments(arrays[i], arrays[j], block_rows=64))
    for statistic in ("linear_cka", "debiased_cka", "svcca", "pwcca", "procrustes_distance",
                      "angular_shape_distance"):
        m = similarity_matrix(sets, statistic=statistic, block_rows=64)
        for s in sets:  # every row of every set read exactly once, in blocks
            assert sum(s.vectors.reads) == N and max(s.vectors.reads) <= 64, (statistic, s.vectors.reads)
            s.vectors.reads.clear()
        for (i, j), stats in expected.items():
            assert m.matrix[i, j] == pytest.approx(stats[statistic], rel=1e-9, abs=1e-9), (statistic, i, j)
    # y and w have the same dimension: PWCCA weights by the row's set, so that pair is asymmetric
    m = similarity_matrix(arrays, statistic="pwcca")
    assert m.matrix[1, 2] != pytest.approx(m.matrix[2, 1], rel=1e-6)


def test_linear_cka_matrix_against_the_gram_formula_with_its_diagonal_and_symmetry():
    arrays = _four_sets()
    grams = [v.astype(np.float64) @ v.astype(np.float64).T for v in arrays]
    cka = similarity_matrix(arrays, statistic="linear_cka").matrix
    debiased = similarity_matrix(arrays, statistic="debiased_cka").matrix
    for i in range(4):
        for j in range(4):
            assert cka[i, j] == pytest.approx(_cka(_hsic_biased, grams[i], grams[j]), rel=1e-9)
            assert debiased[i, j] == pytest.approx(_cka(_hsic_unbiased, grams[i], grams[j]), rel=1e-7, abs=1e-9)
    for statistic, diagonal in (("linear_cka", 1.0), ("procrustes_distance", 0.0), ("svcca", 1.0)):
        m = similarity_matrix(arrays, statistic=statistic).matrix
        np.testing.assert_array_equal(np.diag(m), diagonal)
        np.testing.assert_array_equal(m, m.T)
    # PWCCA of the tied pair, row by row, by Morcos et al.'s recipe on the data (weights from the row's set)
    pw = similarity_matrix(arrays, statistic="pwcca").matrix
    for i, j in ((1, 2), (2, 1)):
        a, b = (arrays[t].astype(np.float64) for t in (i, j))
        rho, variates = _qr_cca(a, b)
        alpha = np.abs(variates.T @ a).sum(axis=1)
        assert pw[i, j] == pytest.approx(float(alpha @ rho / alpha.sum()), rel=1e-8)


def test_similarity_matrix_in_chunks_when_the_stack_does_not_fit():
    from embgeo.analysis._core import plan_stacked_passes, stacked_moments_bytes

    arrays = _four_sets()
    dims, rows = [a.shape[1] for a in arrays], N
    whole = similarity_matrix(arrays, statistic="linear_cka", block_rows=rows).matrix
    limit = stacked_moments_bytes(dims[:3], rows)  # any two single sets fit, all four do not
    assert stacked_moments_bytes(dims, rows) > limit
    passes = plan_stacked_passes(dims, rows, limit)
    assert len(passes) > 1 and {(i, j) for g in passes for i in g for j in g if i < j} == {
        (i, j) for i in range(4) for j in range(i + 1, 4)}
    sets = _counted_sets(arrays)
    reported = []
    m = similarity_matrix(sets, statistic="linear_cka", block_rows=rows, memory_limit=limit,
                          progress=lambda done, total, what: reported.append((done, total)))
    np.testing.assert_allclose(m.matrix, whole, rtol=1e-12)
    assert reported[-1][0] == reported[-1][1] == 2 * len(passes)  # a scan and the pairs per pass
    assert [d / t for d, t in reported] == sorted(d / t for d, t in reported)
    for i, s in enumerate(sets):
        assert sum(s.vectors.reads) == N * sum(i in g for g in passes)
    with pytest.raises(EmbeddingInputError, match="memory limit"):
        similarity_matrix(arrays, memory_limit=1_000)


def test_nan_in_the_cross_moments_input_names_the_rows():
    x, y = _pair()
    bad = y.copy()
    bad[200, 1] = np.nan  # in the fourth block of 64 rows
    with pytest.raises(EmbeddingInputError, match=r"NaN/inf.*rows \[200\] of B"):
        scan_cross_moments(x, bad, block_rows=64)
    worse = x.copy()
    worse[[3, 5], 0] = np.inf
    with pytest.raises(EmbeddingInputError, match=r"rows \[3, 5\] of A"):
        CrossMoments(10, 7).update(worse[:50], y[:50])
    from embgeo.analysis._core import scan_stacked_moments

    with pytest.raises(EmbeddingInputError, match=r"rows \[200\] of 'y'"):
        scan_stacked_moments([x, bad], names=["x", "y"], block_rows=64)
    with pytest.raises(EmbeddingInputError, match=r"rows \[200\] of 'layer 3'"):
        similarity_matrix([EmbeddingSet(x), EmbeddingSet(bad, validate=False, name="layer 3")])


def test_nan_in_merged_cross_moments_is_named_not_called_zero_variance(xy):
    for field, index in (("aa", (0, 0)), ("ab", (1, 2)), ("qv_ab", (3,))):
        cm = scan_cross_moments(*xy)
        getattr(cm, field)[index] = np.nan  # a bad chunk merged in
        with pytest.raises(EmbeddingInputError, match=f"NaN/inf in the cross-moments \\({field},"):
            representation_similarity(*xy, cross_moments=cm, knn=None)
        with pytest.raises(EmbeddingInputError, match="NaN/inf in the cross-moments"):
            linear_statistics(cm.merge(scan_cross_moments(*xy)))
    # finite float64 rows whose fourth powers overflow: the sums turn inf
    huge = xy[0].astype(np.float64) * 1e80
    with pytest.raises(EmbeddingInputError, match="NaN/inf in the cross-moments.*too large"):
        linear_statistics(scan_cross_moments(huge, xy[1]))


def test_cross_moments_over_the_memory_limit_raise_naming_the_memory(xy, monkeypatch):
    with pytest.raises(EmbeddingInputError, match=r"10-d and 7-d sets need about 0\.\d MiB.*memory limit 0\.0 MiB"):
        scan_cross_moments(*xy, memory_limit=1_000)
    from embgeo.analysis._core import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 20_000)  # the default limit is half of it
    with pytest.raises(EmbeddingInputError, match="more than the memory limit.*reduce the dimensions"):
        representation_similarity(*xy, knn=None)
    monkeypatch.undo()
    assert np.isfinite(representation_similarity(*xy, knn=None).linear_cka)


def test_stacked_moments_slice_out_every_pair_in_either_order():
    from embgeo.analysis._core import scan_stacked_moments

    arrays = _four_sets()
    stacked = scan_stacked_moments(arrays, block_rows=70)
    for i, j in ((0, 1), (2, 0), (3, 1), (1, 2)):
        direct = scan_cross_moments(arrays[i], arrays[j], block_rows=70)
        got = stacked.pair(i, j)
        for name in ("pivot_a", "pivot_b", "sum_a", "sum_b", "aa", "bb", "ab", "q_aa", "q_bb", "q_ab",
                     "qv_aa", "qv_bb", "qv_ab", "qv_ba"):
            np.testing.assert_allclose(getattr(got, name), getattr(direct, name), rtol=1e-10, atol=1e-8,
                                       err_msg=f"{name} of ({i}, {j})")
        np.testing.assert_array_equal(got.aa, got.aa.T)


def test_a_cka_matrix_skips_the_decompositions_and_moves_per_pair(monkeypatch):
    # CKA needs only Frobenius norms: no SVD of any pair's moments; progress moves per pair, forward only
    rng = np.random.default_rng(11)
    sets = [rng.normal(size=(300, 6)) @ rng.normal(size=(6, 12)) for _ in range(4)]
    want = similarity_matrix(sets, statistic="linear_cka").matrix
    calls = []

    def no_svd(*args, **kwargs):
        calls.append(1)
        raise AssertionError("CKA must not decompose the moments")

    monkeypatch.setattr(np.linalg, "svd", no_svd)
    seen = []
    got = similarity_matrix(sets, statistic="linear_cka", progress=lambda d, t, s: seen.append(d / t))
    np.testing.assert_allclose(got.matrix, want, rtol=1e-12)
    assert not calls
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert len({round(v, 6) for v in seen if v > 0.5}) >= 6  # one step per pair (4 sets: 6 pairs)
