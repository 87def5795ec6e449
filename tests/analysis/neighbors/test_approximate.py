"""The approximate self-join (IVF join in a PCA subspace, exact re-ranking) and its numba kernels."""

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, approximate_knn, exact_knn, recall_at_k
from embgeo.analysis.neighbors._join_kernels import _select_largest, group_queries, probe_bitmap, rerank_candidates, top_columns
from embgeo.analysis.datasets import make_anisotropic
from embgeo.analysis._core import prepare_rows as _prepare
from embgeo.analysis.neighbors import refine_distances as _refine_distances


@pytest.fixture(scope="module")
def cloud():
    return make_anisotropic(3000, 48, random_state=1)


def _ok_rows(ids, n):
    assert (ids >= 0).all() and (ids < n).all()
    assert not (ids == np.arange(len(ids))[:, None]).any()  # self excluded
    assert all(len(set(row)) == len(row) for row in ids)  # no neighbour twice


@pytest.mark.parametrize("join", ["symmetric", "blocked"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_every_list_at_full_dimension_is_the_exact_join(cloud, metric, join):
    # Probing every list in the unprojected space scores every pair (rows or columns of some tile
    # in the symmetric join, rows in the blocked one), so the candidates are the exact top ones;
    # candidates == k stresses the buffers.
    n, d = cloud.shape
    res = approximate_knn(cloud, k=12, metric=metric, n_lists=8, n_probe=8, projection_dim=d, candidates=12,
                          join=join)
    truth = exact_knn(cloud, k=12, metric=metric)
    # Identical up to float rounding: euclidean scores in the centred basis may swap a near-tie.
    assert recall_at_k(res.indices, truth.indices) >= 0.9999
    np.testing.assert_allclose(res.distances, truth.distances, rtol=1e-5, atol=1e-5)
    assert res.recall >= 0.999 and not res.exact


@pytest.mark.parametrize("join", ["symmetric", "blocked"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_tuned_join_reaches_its_target_and_reports_it(cloud, metric, join):
    res = approximate_knn(cloud, k=10, metric=metric, target_recall=0.9, recall_sample=300, join=join)
    assert join in res.backend
    _ok_rows(res.indices, len(cloud))
    full = recall_at_k(res.indices, exact_knn(cloud, k=10, metric=metric).indices)
    assert full >= 0.88
    assert abs(res.recall - full) < 0.04  # measured on a fresh sample, it tracks the full recall
    assert np.all(np.diff(res.distances, axis=1) >= 0)  # nearest first


def test_fewer_probes_cost_recall(cloud):
    one = approximate_knn(cloud, k=10, n_lists=20, n_probe=1, projection_dim=16)
    more = approximate_knn(cloud, k=10, n_lists=20, n_probe=8, projection_dim=16)
    assert one.recall < more.recall
    assert "probe=1," in one.backend and "dim=16," in one.backend


def test_projection_grows_when_the_target_needs_it():
    # An isotropic cloud keeps little of its geometry in 2 directions: the tuning must widen them.
    x = np.random.default_rng(0).standard_normal((1500, 32)).astype(np.float32)
    res = approximate_knn(x, k=10, target_recall=0.95, recall_sample=200, candidates=40, n_lists=10)
    dim = int(res.backend.split("dim=")[1].split(",")[0])
    assert dim > 2 and res.recall >= 0.9
    pinned = approximate_knn(x, k=10, projection_dim=2, candidates=40, n_lists=10, recall_sample=200)
    assert "dim=2," in pinned.backend and pinned.recall < res.recall


def test_given_sample_truth_replaces_the_recall_search(cloud):
    # The report hands over its exact query-sample search: tuning takes recall_sample of its rows
    # (at most half) and the recall is measured on all the others.
    rows = np.sort(np.random.default_rng(5).choice(len(cloud), 400, replace=False))
    truth = exact_knn(cloud, k=15, query_indices=rows).indices  # wider than k: cut to k
    res = approximate_knn(cloud, k=10, target_recall=0.9, recall_sample=150, sample_truth=(rows, truth))
    assert res.recall_sample == 250
    full = recall_at_k(res.indices, exact_knn(cloud, k=10).indices)
    assert full >= 0.88 and abs(res.recall - full) < 0.04
    assert res.recall == pytest.approx(recall_at_k(res.indices[rows], truth[:, :10]), abs=0.1)


@pytest.mark.parametrize("bad,match", [
    ((np.array([0, 1]),), "pair"),
    ((np.array([0.0, 1.0]), np.zeros((2, 10), int)), "integer"),
    ((np.array([0, 0]), np.zeros((2, 10), int)), "distinct"),
    ((np.array([0, 3000]), np.zeros((2, 10), int)), "distinct row numbers"),
    ((np.array([0, 1]), np.zeros((2, 9), int)), "shape"),
])
def test_bad_sample_truth_is_named(cloud, bad, match):
    with pytest.raises(EmbeddingInputError, match=match):
        approximate_knn(cloud, k=10, sample_truth=bad)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_threshold_floor_leaves_few_points_to_the_exact_fallback(monkeypatch, metric):
    # The tuning reads every point's starting threshold off its simulated scores, so they must be
    # on the join's scale (-|q - c|^2 for euclidean). A floor |q|^2 too high once left most points
    # short of candidates: they fell back to exact search (right, but slow, and recall ~1.0).
    from embgeo.analysis.neighbors import approximate as _ann

    x = make_anisotropic(3000, 48, mean_norm=4.0, random_state=2)
    searched = []
    real = _ann.exact_knn

    def spy(*args, **kwargs):
        searched.append(len(kwargs["query_indices"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(_ann, "exact_knn", spy)
    approximate_knn(x, k=10, metric=metric, target_recall=0.9, recall_sample=200)
    assert searched[0] == 400  # the two recall samples
    assert sum(searched[1:]) < 0.02 * len(x)  # the fallback for points short of candidates


def test_small_sets_do_not_fail():
    x = np.random.default_rng(3).standard_normal((400, 16)).astype(np.float32)
    res = approximate_knn(x, k=32)
    assert res.indices.shape == (400, 32)
    _ok_rows(res.indices, 400)


def test_the_callers_data_is_untouched(cloud):
    before = cloud.copy()
    approximate_knn(cloud, k=5, recall_sample=100)
    np.testing.assert_array_equal(cloud, before)


def test_bad_settings_raise_clear_errors(cloud):
    with pytest.raises(EmbeddingInputError, match="candidates"):
        approximate_knn(cloud, k=10, candidates=5)
    with pytest.raises(EmbeddingInputError, match="n_probe"):
        approximate_knn(cloud, k=10, n_lists=4, n_probe=5)
    with pytest.raises(EmbeddingInputError, match="target_recall"):
        approximate_knn(cloud, k=10, target_recall=1.5)
    with pytest.raises(EmbeddingInputError, match="projection_dim"):
        approximate_knn(cloud, k=10, projection_dim=49)
    with pytest.raises(EmbeddingInputError, match="join must be"):
        approximate_knn(cloud, k=10, join="sideways")
    bad = cloud.copy()
    bad[7] = np.nan
    with pytest.raises(EmbeddingInputError, match="NaN or inf"):
        approximate_knn(bad, k=10)


# --------------------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("filled,keep", [(10, 1), (10, 10), (256, 128), (37, 12), (64, 63)])
def test_select_largest_keeps_the_largest(filled, keep):
    rng = np.random.default_rng(filled + keep)
    values = rng.standard_normal(filled).astype(np.float32)
    values[rng.integers(0, filled, 5)] = values[0]  # ties
    values[1] = -0.0  # signed zeros and infinities sort too
    values[2] = 0.0
    values[3] = np.inf
    scores, ids = values[None, :].copy(), np.arange(filled, dtype=np.int32)[None, :].copy()
    low = _select_largest(scores, ids, 0, filled, keep, np.empty(filled, np.int32))
    assert sorted(scores[0, :keep]) == sorted(np.sort(values)[::-1][:keep])
    assert low == np.sort(values)[::-1][keep - 1]
    np.testing.assert_array_equal(values[ids[0, :keep]], scores[0, :keep])  # ids travelled with their scores


def test_probe_bitmap_marks_exactly_the_probed_lists():
    probes = np.stack([np.random.default_rng(i).permutation(130)[:9] for i in range(40)]).astype(np.int32)
    bits = probe_bitmap(probes, 130)
    got = np.array([[(int(bits[i, l >> 6]) >> (l & 63)) & 1 for l in range(130)] for i in range(40)])
    want = np.zeros((40, 130), int)
    np.put_along_axis(want, probes.astype(np.int64), 1, axis=1)
    np.testing.assert_array_equal(got, want)


def test_group_queries_buckets_outside_probes_by_rank():
    rng = np.random.default_rng(4)
    n, p, n_lists = 600, 11, 30
    pos_list = np.sort(rng.integers(0, n_lists, n)).astype(np.int32)
    probes = np.stack([np.r_[own, rng.permutation(np.setdiff1d(np.arange(n_lists), [own]))[:p - 1]]
                       for own in pos_list]).astype(np.int32)
    probes[7, [0, 1]] = probes[7, [1, 0]]  # a point whose own list is not its first
    starts, positions = group_queries(probes, pos_list, n_lists)
    want = {}
    for t in range(n):
        for r in range(p):
            if probes[t, r] != pos_list[t]:
                want.setdefault(int(np.log2(max(r, 1))) * n_lists + int(probes[t, r]), []).append(t)
    assert len(starts) == 4 * n_lists + 1  # ranks 0-1, 2-3, 4-7, 8-10
    for bucket in range(len(starts) - 1):
        assert positions[starts[bucket]:starts[bucket + 1]].tolist() == want.get(bucket, [])


def test_top_columns_matches_argsort():
    s = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32)
    np.testing.assert_array_equal(top_columns(s, 7), np.argsort(-s, axis=1, kind="stable")[:, :7])


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_refined_distances_match_numpy(metric):
    rng = np.random.default_rng(1)
    c = rng.standard_normal((200, 24)).astype(np.float32) * 3
    q = rng.standard_normal((30, 24)).astype(np.float32)
    ids = rng.integers(0, 200, (30, 6))
    ids[0, 0] = -1
    got = _refine_distances(c, q, ids, metric)
    cp, qp = _prepare(c, metric).astype(np.float64), _prepare(q, metric).astype(np.float64)
    nb = cp[ids]
    want = -np.einsum("md,mkd->mk", qp, nb) if metric == "dot" else np.linalg.norm(nb - qp[:, None], axis=2)
    assert np.isnan(got[0, 0])
    np.testing.assert_allclose(got.ravel()[1:], want.ravel()[1:], rtol=2e-5, atol=2e-5)
    # visiting the rows in another order (the join's list order) changes nothing
    visited = _refine_distances(c, q, ids, metric, visit=rng.permutation(30))
    np.testing.assert_array_equal(visited, got)


@pytest.mark.parametrize("metric", ["dot", "cosine", "euclidean"])
def test_rerank_picks_the_exact_best_candidates(metric):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((300, 16)) * rng.uniform(0.5, 2.0, (300, 1))).astype(np.float32)
    order = rng.permutation(300)  # join position t holds row order[t]
    where = np.argsort(order)     # the position of each row
    rows = np.stack([rng.permutation(np.r_[0:i, i + 1:300])[:20] for i in range(300)])  # candidates, by row
    buf_i = np.full((300, 40), 999, dtype=np.int32)  # slots past count are never read
    buf_i[:, :20] = where[rows[order]]
    count = np.full(300, 20, dtype=np.int32)
    count[where[1]] = 3  # row 1 has fewer than k candidates: the rest of its row stays -1
    norms = np.linalg.norm(x, axis=1)
    empty = np.empty(0, np.float32)
    # buffers in join order, one output row each: scattered back to rows to compare
    by_buffer, by_buffer_scores = rerank_candidates(x, buf_i, count, order, order, 20, 5,
                                                    1.0 / norms if metric == "cosine" else empty,
                                                    norms ** 2 if metric == "euclidean" else empty, 4)
    got, got_scores = np.empty_like(by_buffer), np.empty_like(by_buffer_scores)
    got[order], got_scores[order] = by_buffer, by_buffer_scores
    cand = rows.copy()
    cand[1, 3:] = -1
    safe = np.maximum(cand, 0)
    dots = np.einsum("id,ijd->ij", x.astype(np.float64), x[safe].astype(np.float64))
    scores = {"dot": dots, "cosine": dots / norms[safe],
              "euclidean": -np.linalg.norm(x[:, None, :] - x[safe], axis=2)}[metric]
    scores[cand < 0] = -np.inf
    want = np.take_along_axis(cand, np.argsort(-scores, axis=1)[:, :5], axis=1)
    want[1, 3:] = -1
    np.testing.assert_array_equal(got, want)
    # the scores on the kernel's scale: <a, b>, <a, b> / |b|, 2 <a, b> - |b|^2; -inf past the candidates
    scale = {"dot": dots, "cosine": dots / norms[safe], "euclidean": 2 * dots - norms[safe] ** 2}[metric]
    scale[cand < 0] = -np.inf
    np.testing.assert_allclose(got_scores, -np.sort(-scale, axis=1)[:, :5], rtol=1e-5, atol=1e-5)

@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_distances_from_scores_match_the_vector_difference(metric):
    """Far pairs keep the distance of their exact score, near ones (and exact duplicates: 0) are
    recomputed: every distance agrees with refine_distances."""
    from embgeo.analysis.neighbors.table import distances_from_scores, refine_distances

    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 24)).astype(np.float32)
    x[1] = x[0]  # an exact duplicate (distance exactly 0)
    x[3] = x[2] + 1e-3  # a near pair
    ids = np.stack([rng.permutation(np.r_[0:i, i + 1:400])[:6] for i in range(400)])
    ids[0, 0], ids[2, 0] = 1, 3
    ids[7, 5] = -1
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    dots = np.einsum("id,ijd->ij", x.astype(np.float64), x[np.maximum(ids, 0)].astype(np.float64))
    b = norms[np.maximum(ids, 0)]
    scores = {"cosine": dots / b, "euclidean": 2 * dots - b ** 2, "dot": dots}[metric].astype(np.float32)
    got = distances_from_scores(x, ids, scores, metric, norms.astype(np.float32))
    want = refine_distances(x, x, ids, metric)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * (1 if metric != "dot" else 10))
    assert np.isnan(got[7, 5])
    if metric != "dot":
        assert got[0, 0] == 0.0


def test_tables_keep_int32_ids():
    """Below 2^31 rows the ids are int32 (half the memory), whichever engine made the table."""
    from embgeo.analysis.neighbors import Neighbors

    x = np.random.default_rng(0).standard_normal((2000, 8)).astype(np.float32)
    assert exact_knn(x, k=5).indices.dtype == np.int32
    assert approximate_knn(x, k=5, recall_sample=100).indices.dtype == np.int32
    wide = Neighbors(indices=np.array([[2**31 + 5]]), distances=np.ones((1, 1), np.float32), metric="cosine",
                     exact=True)
    assert wide.indices.dtype == np.int64  # ids that need 64 bits keep them
