"""The shared neighbour engine against an independent implementation (scikit-learn) and itself."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from embgeo.analysis import EmbeddingInputError, EmbeddingSet, exact_knn, recall_at_k
from embgeo.analysis.neighbors import _backend, exact as _knn

METRICS = ["cosine", "euclidean", "dot"]
BACKENDS = ["numpy", "torch-cpu"]


@pytest.fixture(scope="module")
def x():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((1500, 24)) + 0.3).astype(np.float32)


def brute_force(corpus, queries, k, metric, exclude_self):
    """O(n^2) reference in float64."""
    c, q = corpus.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "dot":
        d = -(q @ c.T)
    else:
        d = np.sqrt(np.maximum(((q[:, None, :] - c[None, :, :]) ** 2).sum(-1), 0))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_self_join_matches_brute_force(x, metric, backend):
    sub = x[:400]
    res = exact_knn(sub, k=6, metric=metric, backend=backend, mean_distance=metric != "dot")
    idx, dist = brute_force(sub, sub, 6, metric, exclude_self=True)
    assert recall_at_k(res.indices, idx) == 1.0
    np.testing.assert_allclose(res.distances, dist, rtol=1e-5, atol=1e-5)
    assert not (res.indices == np.arange(len(sub))[:, None]).any()
    if metric != "dot":
        full = brute_force(sub, sub, len(sub), metric, exclude_self=True)[1]
        np.testing.assert_allclose(res.mean_distance, full[:, :-1].mean(1), rtol=1e-4)


def test_euclidean_matches_scikit_learn(x):
    res = exact_knn(x, k=5, metric="euclidean")
    d, i = NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x)
    assert recall_at_k(res.indices, i[:, 1:]) == 1.0
    np.testing.assert_allclose(res.distances, d[:, 1:], rtol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_blocked_symmetric_and_general_kernels_agree(x, metric, monkeypatch):
    whole = exact_knn(x, k=8, metric=metric, backend="numpy")
    monkeypatch.setattr(_knn, "SYMMETRIC_BLOCK_ROWS", 256)  # many tiles, ragged last block
    tiled = exact_knn(x, k=8, metric=metric, backend="torch-cpu")
    monkeypatch.setattr(_knn, "SYMMETRIC_MAX_BYTES", 0)  # the general corpus-outer kernel
    monkeypatch.setattr(_knn, "CORPUS_BLOCK_ROWS", 333)
    monkeypatch.setattr(_knn, "TILE_BYTES", 64 * 333 * 4)
    general = exact_knn(x, k=8, metric=metric, backend="torch-cpu")
    for other in (tiled, general):
        np.testing.assert_array_equal(whole.indices, other.indices)
        np.testing.assert_allclose(whole.distances, other.distances, rtol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("fold, share, backend", [
    ("numba", None, "torch-cpu"), ("numba", None, "numpy"),  # the host kernel (_fold)
    ("array", -1.0, "torch-cpu"),  # dense top-k only
    ("array", 1.0, "torch-cpu"),  # comparison + sparse merge always (the GPU's path, run on the CPU)
])
def test_self_join_tile_folds_match_brute_force(x, metric, fold, share, backend, monkeypatch):
    monkeypatch.setattr(_knn, "SYMMETRIC_BLOCK_ROWS", 200)
    monkeypatch.setattr(_backend, "HOST_FOLD", fold)
    if share is not None:
        monkeypatch.setattr(_backend, "SPARSE_FOLD_MAX_SHARE", share)
    sub = x[:900]
    res = exact_knn(sub, k=7, metric=metric, backend=backend, mean_distance=metric != "dot")
    idx, dist = brute_force(sub, sub, 7, metric, exclude_self=True)
    assert recall_at_k(res.indices, idx) == 1.0
    np.testing.assert_allclose(res.distances, dist, rtol=1e-5, atol=1e-5)
    if metric != "dot":
        full = brute_force(sub, sub, len(sub), metric, exclude_self=True)[1]
        np.testing.assert_allclose(res.mean_distance, full[:, :-1].mean(1), rtol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_separate_queries_and_query_samples(x, metric):
    queries = x[:50] + 0.01
    res = exact_knn(x, queries, k=4, metric=metric)
    idx, _ = brute_force(x, queries, 4, metric, exclude_self=False)
    assert recall_at_k(res.indices, idx) == 1.0
    sample = np.array([5, 77, 1499, 0])
    part = exact_knn(x, k=4, metric=metric, query_indices=sample)
    whole = exact_knn(x, k=4, metric=metric)
    np.testing.assert_array_equal(part.indices, whole.indices[sample])


def test_duplicates_are_neighbours_but_self_is_not():
    base = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    x = np.vstack([base, base[:5]])  # rows 50..54 duplicate rows 0..4
    res = exact_knn(x, k=1, metric="euclidean")
    np.testing.assert_array_equal(res.indices[:5, 0], np.arange(50, 55))
    np.testing.assert_allclose(res.distances[:5, 0], 0.0, atol=1e-6)


def test_memory_mapped_input_read_in_blocks(tmp_path, x, monkeypatch):
    path = tmp_path / "x.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    monkeypatch.setattr(_knn, "SYMMETRIC_MAX_BYTES", 0)
    monkeypatch.setattr(_knn, "CORPUS_BLOCK_ROWS", 400)
    res = exact_knn(mm, k=3)
    np.testing.assert_array_equal(res.indices, exact_knn(x, k=3).indices)


def test_inputs_untouched(x):
    before = x.copy()
    exact_knn(x, k=3, metric="cosine")
    exact_knn(x, x[:10], k=3, metric="euclidean")
    np.testing.assert_array_equal(x, before)
    assert x.flags.writeable


def test_clear_errors(x):
    with pytest.raises(EmbeddingInputError, match="too few points for k=1500"):
        exact_knn(x, k=1500)
    with pytest.raises(EmbeddingInputError, match="dimension 3 but the corpus has dimension 24"):
        exact_knn(x, np.ones((2, 3)), k=2)
    with pytest.raises(EmbeddingInputError, match="unknown metric"):
        exact_knn(x, k=2, metric="manhattan")
    zeros = x.copy()
    zeros[7] = 0
    with pytest.raises(EmbeddingInputError, match=r"1 of 1500 rows are all-zero vectors \(first rows \[7\]\)"):
        exact_knn(zeros, k=2, metric="cosine")
    nan = x.copy()
    nan[[3, 9]] = np.nan
    with pytest.raises(EmbeddingInputError, match=r"2 of 1500 rows contain NaN or inf values \(first rows \[3, 9\]\)"):
        exact_knn(nan, k=2)
    with pytest.raises(EmbeddingInputError, match="mean_distance needs a distance"):
        exact_knn(x, k=2, metric="dot", mean_distance=True)


def test_embedding_set_caches_one_table(x):
    s = EmbeddingSet(x)
    first = s.neighbors(10)
    assert s.neighbors(4).indices.base is first.indices or np.shares_memory(s.neighbors(4).indices, first.indices)
    assert s.neighbors(10) is first


@pytest.mark.parametrize("backend", BACKENDS)
def test_equal_distances_are_ordered_by_row_id(backend):
    # 0 sits at distance 1 from 1, 2, 3 and 4 (and 2 from 5): any kernel must list 1, 2, 3, 4 in order
    x = np.array([[0, 0], [0, 1], [1, 0], [0, -1], [-1, 0], [2, 0]], dtype=np.float32)
    res = exact_knn(x, k=4, metric="euclidean", backend=backend)
    np.testing.assert_array_equal(res.indices[0], [1, 2, 3, 4])


def test_one_sample_search_gives_the_cosine_and_dot_tables():
    from embgeo.analysis.neighbors import cosine_and_dot_sample

    rng = np.random.default_rng(9)
    x = (rng.normal(size=(700, 12)) * rng.lognormal(sigma=0.5, size=(700, 1))).astype(np.float32)  # norms vary
    rows = np.sort(rng.choice(700, 60, replace=False))
    cos_t, dot_t = cosine_and_dot_sample(x, rows, 8, 5)
    want_cos = exact_knn(x, k=8, metric="cosine", query_indices=rows, mean_distance=True)
    want_dot = exact_knn(x, k=5, metric="dot", query_indices=rows)
    np.testing.assert_array_equal(cos_t.indices, want_cos.indices)
    np.testing.assert_allclose(cos_t.distances, want_cos.distances, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cos_t.mean_distance, want_cos.mean_distance, rtol=1e-5)
    np.testing.assert_array_equal(dot_t.indices, want_dot.indices)
    np.testing.assert_allclose(dot_t.distances, want_dot.distances, rtol=1e-5)


def test_numba_thread_pool_restores_the_blas_threads():
    from threadpoolctl import threadpool_info

    from embgeo.analysis.neighbors import numba_thread_pool

    before = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    with numba_thread_pool():
        inside = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    assert set(inside.values()) == {1}  # numba's workers each run a single-threaded sgemm
    assert {p: after[p] for p in before} == before
