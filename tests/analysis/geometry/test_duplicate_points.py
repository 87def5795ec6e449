"""Exact duplicate points in the intrinsic-dimension estimators (issue 15, defect 1).

A copy of a point is not a second point: TwoNN, the Levina-Bickel MLE and local ID must give on data
with copies the estimate of its distinct points, equal (to float rounding) to the estimate on the
deduplicated rows, and every report path that uses them must run on fully twinned data.
"""

from __future__ import annotations

import numpy as np
import pytest

from embgeo.analysis import (
    EmbeddingInputError,
    EmbeddingSet,
    compare,
    geometry_report,
    intrinsic_dimension,
    local_intrinsic_dimension,
    mle_dimension,
    sampled_report,
    twonn,
)
from embgeo.analysis.neighbors import copy_groups, distinct_neighbors

N, D = 1000, 16


def gaussian(n=N, d=D, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def with_copies(x, share, copies=1, seed=1):
    """``x`` with ``copies`` extra copies of enough of its points that ``share`` of all rows have a copy
    (share = 1: every point), shuffled so that copies sit anywhere, not at the end."""
    rng = np.random.default_rng(seed)
    n = len(x)
    # m points copied: (1 + copies) m rows with a copy among n + copies m rows
    m = n if share >= 1 else round(share * n / (1 + copies - share * copies))
    chosen = rng.choice(n, m, replace=False)
    y = np.concatenate([x] + [x[chosen]] * copies)
    return y[rng.permutation(len(y))]


def dedup(y):
    """The distinct rows in the order of their first occurrence (what the estimators must see)."""
    _, first = np.unique(y, axis=0, return_index=True)
    return y[np.sort(first)]


# ------------------------------------------------------------------------------------ the estimators


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("share, copies", [(0.67, 1), (0.95, 1), (1.0, 1), (0.67, 2), (1.0, 2)])
def test_twonn_and_mle_equal_the_deduplicated_estimate(share, copies, metric):
    y = with_copies(gaussian(), share, copies)
    z = dedup(y)
    assert len(z) == N
    n_copies = len(y) - N
    two, ref = twonn(y, metric=metric, bootstrap=50), twonn(z, metric=metric, bootstrap=50)
    assert two.dimension == pytest.approx(ref.dimension, rel=1e-9)
    assert two.dimension_linefit == pytest.approx(ref.dimension_linefit, rel=1e-9)
    np.testing.assert_allclose(two.ci, ref.ci, rtol=1e-9)  # same seed, same resamples of the same ratios
    assert two.n_used == N and two.n_duplicates == n_copies
    assert any(f"{n_copies} of {len(y)} rows" in w and "one copy" in w for w in two.warnings)
    mle, ref_mle = mle_dimension(y, metric=metric, bootstrap=0), mle_dimension(z, metric=metric, bootstrap=0)
    assert mle.dimension == pytest.approx(ref_mle.dimension, rel=1e-9)
    assert mle.n_used == N and mle.n_duplicates == n_copies


def test_issue_numbers_twinned_gaussian_is_not_inflated():
    """The issue's case: 13.0 deduplicated, 25.9 / 398 / inf with 67 / 95 / 99 % of points twinned."""
    x = gaussian()
    base = twonn(x, metric="euclidean", bootstrap=0).dimension
    for share in (0.67, 0.95, 0.99, 1.0):
        y = with_copies(x, share)
        assert twonn(y, metric="euclidean", bootstrap=0).dimension == pytest.approx(base, rel=1e-9)


def test_groups_larger_than_the_neighbour_table():
    """A point with 60 copies fills every list of the 32-column table; its neighbours are searched again."""
    x = gaussian(600, seed=3)
    y = np.concatenate([x, np.repeat(x[:1], 60, axis=0), np.repeat(x[5:6], 40, axis=0), x[10:200]])
    y = y[np.random.default_rng(4).permutation(len(y))]
    z = dedup(y)
    for metric in ("euclidean", "cosine"):
        rep, ref = intrinsic_dimension(y, metric=metric, bootstrap=0), intrinsic_dimension(z, metric=metric, bootstrap=0)
        for field in ("twonn", "mle", "lid_median"):
            assert getattr(rep, field) == pytest.approx(getattr(ref, field), rel=1e-9), field
        np.testing.assert_allclose(rep.gride_dimension, ref.gride_dimension, rtol=1e-9)
        assert rep.n_duplicates == len(y) - 600


def test_neighbour_lists_skip_copies_and_count_each_point_once():
    x = gaussian(300, seed=5)
    y = np.concatenate([x, x, x[:50]])  # every point twice, 50 three times
    labels = copy_groups(y)
    assert np.array_equal(labels[:300], np.arange(300)) and np.array_equal(labels[300:600], np.arange(300))
    assert np.array_equal(labels[600:], np.arange(50))
    dn = distinct_neighbors(y, 5, "euclidean", table=EmbeddingSet(y).neighbors(5, metric="euclidean"))
    ref = EmbeddingSet(x).neighbors(5, metric="euclidean")
    assert np.array_equal(dn.rows, np.arange(300)) and dn.n_distinct == 300 and dn.n_copies == 350
    assert np.array_equal(dn.indices, ref.indices)  # the representative of each distinct neighbour
    np.testing.assert_array_equal(dn.distances, ref.distances)
    assert (dn.distances[:, 0] > 0).all() and (dn.distances[:, 1] > dn.distances[:, 0]).all()


def test_hash_collisions_never_merge_points(monkeypatch):
    """Equal hashes are confirmed row against row: a hash that sends every row to one bucket still
    groups only the identical rows."""
    from embgeo.analysis.neighbors import copies

    x = gaussian(50, seed=6)
    y = np.concatenate([x, x[:7], -0.0 * np.ones((1, D), np.float32), np.zeros((1, D), np.float32)])
    monkeypatch.setattr(copies, "_row_hashes", lambda bits, salt: np.zeros(len(bits), dtype=np.uint64))
    labels = copies.copy_groups(y)
    assert np.array_equal(labels[:50], np.arange(50)) and np.array_equal(labels[50:57], np.arange(7))
    assert labels[57] == 57 and labels[58] == 57  # -0.0 and 0.0 are the same point


def test_local_id_of_a_copy_is_its_representatives():
    x = gaussian(seed=7)
    y = with_copies(x, 1.0, copies=2)
    z = dedup(y)
    labels = copy_groups(y)
    lid = local_intrinsic_dimension(y, metric="euclidean", k=10)
    assert np.isfinite(lid).all()
    np.testing.assert_array_equal(lid, lid[labels])
    reps = np.flatnonzero(labels == np.arange(len(y)))
    np.testing.assert_allclose(lid[reps], local_intrinsic_dimension(z, metric="euclidean", k=10), rtol=1e-9)
    some = np.flatnonzero(labels != np.arange(len(y)))[:20]
    np.testing.assert_allclose(local_intrinsic_dimension(y, metric="euclidean", k=10, query_indices=some),
                               lid[labels[some]], rtol=1e-9)
    report = intrinsic_dimension(y, metric="euclidean", bootstrap=0, scale_levels=1)
    assert report.lid.shape == (len(y),)
    np.testing.assert_allclose(report.lid, lid, rtol=1e-9)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_intrinsic_dimension_report_equals_the_deduplicated_report(metric):
    y = with_copies(gaussian(seed=8), 0.95)
    z = dedup(y)
    rep = intrinsic_dimension(y, metric=metric, bootstrap=100, random_state=3)
    ref = intrinsic_dimension(z, metric=metric, bootstrap=100, random_state=3)
    for field in ("twonn", "twonn_linefit", "mle", "lid_median"):
        assert getattr(rep, field) == pytest.approx(getattr(ref, field), rel=1e-9), field
    for field in ("twonn_ci", "mle_ci", "scale_n", "scale_twonn", "gride_dimension", "gride_distance"):
        np.testing.assert_allclose(getattr(rep, field), getattr(ref, field), rtol=1e-9, err_msg=field)
    assert rep.sample_size == N and rep.n_duplicates == len(y) - N and ref.n_duplicates == 0
    assert any("duplicate" in w for w in rep.warnings)


def test_query_sample_is_drawn_among_distinct_points():
    y = with_copies(gaussian(seed=9), 1.0)
    z = dedup(y)
    for seed in (0, 1):
        a = twonn(y, metric="euclidean", bootstrap=0, sample=300, random_state=seed)
        b = twonn(z, metric="euclidean", bootstrap=0, sample=300, random_state=seed)
        assert a.dimension == pytest.approx(b.dimension, rel=1e-9) and a.n_used == 300
        m = mle_dimension(y, metric="euclidean", bootstrap=0, sample=300, random_state=seed)
        assert m.dimension == pytest.approx(
            mle_dimension(z, metric="euclidean", bootstrap=0, sample=300, random_state=seed).dimension, rel=1e-9)
    rep = intrinsic_dimension(y, metric="euclidean", bootstrap=0, sample=400, random_state=2, scale_levels=2)
    ref = intrinsic_dimension(z, metric="euclidean", bootstrap=0, sample=400, random_state=2, scale_levels=2)
    assert rep.twonn == pytest.approx(ref.twonn, rel=1e-9) and rep.mle == pytest.approx(ref.mle, rel=1e-9)
    np.testing.assert_allclose(rep.scale_twonn, ref.scale_twonn, rtol=1e-9)
    labels = copy_groups(y)
    assert rep.sample_size == 400 and (labels[rep.sample_indices] == rep.sample_indices).all()


# ------------------------------------------------------------------------------------ what stays a point


def test_near_duplicates_that_are_not_exact_stay_points():
    x = gaussian(seed=10)
    near = x[:200] + 1e-3 * np.random.default_rng(11).normal(size=(200, D)).astype(np.float32)
    y = np.concatenate([x, near])
    two = twonn(y, metric="euclidean", bootstrap=0)
    assert two.n_duplicates == 0 and two.n_used == 1200 and two.warnings[:1] != ("duplicate",)
    assert not any("duplicate" in w for w in two.warnings)


def test_same_direction_is_a_copy_under_cosine_only():
    x = gaussian(seed=12)
    y = np.concatenate([x, 3.0 * x[:10]])  # same directions, not bitwise equal unit vectors
    two = twonn(y, metric="cosine", bootstrap=0)
    assert two.n_duplicates == 10 and two.n_used == N
    assert two.dimension == pytest.approx(twonn(x, metric="cosine", bootstrap=0).dimension, rel=1e-6)
    assert twonn(y, metric="euclidean", bootstrap=0).n_duplicates == 0


def test_local_id_of_a_same_direction_copy_under_cosine():
    """A query row found to be a copy only by its neighbour list gets the local ID of the point it copies."""
    x = gaussian(seed=20)
    y = np.concatenate([x, 3.0 * x[:10]])
    lid = local_intrinsic_dimension(y, metric="cosine", k=10)
    np.testing.assert_array_equal(lid[1000:], lid[:10])
    np.testing.assert_allclose(local_intrinsic_dimension(y, metric="cosine", k=10, query_indices=np.arange(1000, 1010)),
                               lid[:10], rtol=1e-9)
    np.testing.assert_allclose(lid[:1000], local_intrinsic_dimension(x, metric="cosine", k=10), rtol=1e-5)


def test_blocked_passes_give_the_same_groups_and_lists(monkeypatch):
    """Hashing, list deduplication and the search among representatives in many small blocks."""
    from embgeo.analysis.neighbors import copies

    y = with_copies(gaussian(seed=21), 1.0, copies=2)
    es = EmbeddingSet(y)
    table = es.neighbors(16, metric="euclidean")
    whole = distinct_neighbors(y, 16, "euclidean", table=table)
    monkeypatch.setattr(copies, "HASH_BLOCK_BYTES", 1)
    monkeypatch.setattr(copies, "SEARCH_BLOCK_BYTES", 1)  # 256 rows per query chunk and corpus block
    monkeypatch.setattr(copies, "LIST_BLOCK_ROWS", 100)
    blocked = distinct_neighbors(y, 16, "euclidean", table=table)
    assert np.array_equal(whole.labels, blocked.labels) and np.array_equal(whole.rows, blocked.rows)
    assert np.array_equal(whole.indices, blocked.indices)
    np.testing.assert_array_equal(whole.distances, blocked.distances)
    searched = distinct_neighbors(y, 16, "euclidean")  # no table: every list from the blocked search
    assert np.array_equal(searched.indices, whole.indices)
    np.testing.assert_array_equal(searched.distances, whole.distances)


def test_approximate_table_with_copies():
    y = with_copies(gaussian(2000, seed=22), 1.0)
    rep = geometry_report(y, k=5, sample=200, exact=False)
    exact = twonn(dedup(y), bootstrap=0).dimension
    assert rep.intrinsic_dimension.n_duplicates == 2000
    assert rep.intrinsic_dimension.twonn == pytest.approx(exact, rel=0.1)


# ------------------------------------------------------------------------------------ too few distinct points


def test_too_few_distinct_points_are_counted_truthfully():
    y = np.repeat(gaussian(2, seed=13), 10, axis=0)  # 20 rows, 2 distinct points
    with pytest.raises(EmbeddingInputError, match="only 2 distinct points among 20 rows.*18.*at least 3"):
        twonn(y, metric="euclidean")
    with pytest.raises(EmbeddingInputError, match="2 distinct points among 20 rows"):
        intrinsic_dimension(y, metric="euclidean", k=2)
    with pytest.raises(EmbeddingInputError, match="2 distinct points among 20 rows"):
        mle_dimension(y, metric="euclidean", k=5)
    with pytest.raises(EmbeddingInputError, match="2 distinct points among 20 rows"):
        local_intrinsic_dimension(y, metric="euclidean", k=3)
    with pytest.raises(EmbeddingInputError, match="2 distinct points among 20 rows"):
        geometry_report(y, metric="euclidean", k=2)
    # enough distinct points for TwoNN but not for k = 10 neighbours
    y = np.repeat(gaussian(8, seed=14), 4, axis=0)
    with pytest.raises(EmbeddingInputError, match="8 distinct points among 32 rows.*k=10"):
        intrinsic_dimension(y, metric="euclidean", k=10)
    assert twonn(y, metric="euclidean", bootstrap=0).n_used == 8


# ------------------------------------------------------------------------------------ the report paths


def test_geometry_report_on_fully_twinned_data():
    x = gaussian(seed=15)
    y = np.concatenate([x, x])
    rep, ref = geometry_report(y, k=5, sample=200), geometry_report(x, k=5, sample=200)
    a, b = rep.intrinsic_dimension, ref.intrinsic_dimension
    assert a.twonn == pytest.approx(b.twonn, rel=1e-9) and a.mle == pytest.approx(b.mle, rel=1e-9)
    assert a.n_duplicates == N and a.sample_size == N
    assert a.twonn < 20  # 13 or so, not the inflated value
    assert f"{N:,} distinct points" in rep.basis["intrinsic_dimension"]
    assert "distinct" not in ref.basis["intrinsic_dimension"]
    rep.to_dict()


def test_sampled_report_on_fully_twinned_data():
    x = gaussian(3000, seed=16)
    y = np.concatenate([x, x])
    rep = sampled_report(y, k=5, sample=1200, subsample=1000)
    idim = rep.intrinsic_dimension
    labels = copy_groups(y)
    assert (labels[idim.sample_indices] == idim.sample_indices).all()  # one copy per group
    assert 400 < idim.sample_size < 800 and idim.n_duplicates == 3000
    assert f"{idim.sample_size:,} of 1,200 random queries" in rep.basis["intrinsic_dimension"]
    full = twonn(x, metric="cosine", bootstrap=0).dimension
    assert idim.twonn_ci[0] < full < idim.twonn_ci[1]


def test_compare_on_fully_twinned_data():
    x = gaussian(seed=17)
    xb = x @ np.linalg.qr(np.random.default_rng(18).normal(size=(D, D)))[0].astype(np.float32) + 0.1
    ya, yb = np.concatenate([x, x]), np.concatenate([xb, xb])
    cmp = compare(ya, yb, k=5, sample=200)
    ref = geometry_report(xb, k=5, sample=200)
    assert cmp.report_b.intrinsic_dimension.twonn == pytest.approx(ref.intrinsic_dimension.twonn, rel=1e-9)


# ------------------------------------------------------------------------------------ the caller's data


def test_inputs_untouched_and_memory_maps_read_in_place(tmp_path):
    y = with_copies(gaussian(seed=19), 0.67).astype(np.float64)
    before = y.copy()
    twonn(y, bootstrap=0)
    intrinsic_dimension(y, bootstrap=0, scale_levels=2)
    np.testing.assert_array_equal(y, before)
    assert y.flags.writeable
    path = tmp_path / "y.npy"
    np.save(path, y.astype(np.float32))
    mm = np.load(path, mmap_mode="r")
    assert twonn(mm, bootstrap=0).dimension == pytest.approx(twonn(dedup(y.astype(np.float32)), bootstrap=0).dimension,
                                                            rel=1e-9)
    rep = intrinsic_dimension(mm, bootstrap=0, scale_levels=3)  # the decimation blocks read from the map
    ref = intrinsic_dimension(dedup(y.astype(np.float32)), bootstrap=0, scale_levels=3)
    np.testing.assert_allclose(rep.scale_twonn, ref.scale_twonn, rtol=1e-9)
    assert not mm.flags.writeable
