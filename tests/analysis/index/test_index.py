"""Vector-index statistics: recall rules, faiss sweeps, ann-benchmarks files, difficulty, reachability."""

from __future__ import annotations

import json
import math

import faiss
import h5py
import numpy as np
import pandas as pd
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet, exact_knn
from embgeo.analysis.index import (
    ground_truth,
    index_report,
    index_scaling,
    ivf_balance,
    list_balance,
    pareto_front,
    query_difficulty,
    reachability,
    recall_distance_rule,
    split_queries,
)
from embgeo.analysis.index.faiss_indexes import _timed_search


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """Builds on a shared 2-core machine are far faster single-threaded; restore afterwards."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _gaussian(n, d, seed=0, decay=True):
    rng = np.random.default_rng(seed)
    scale = np.geomspace(2.0, 0.3, d) if decay else np.ones(d)
    return (rng.normal(size=(n, d)) * scale).astype(np.float32)


def _brute_force(corpus, queries, k, metric):
    """Independent reference: full (m x n) distance matrix, sorted."""
    c, q = corpus.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    d = np.sqrt(np.maximum(((q[:, None, :] - c[None, :, :]) ** 2).sum(-1), 0))
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, axis=1), d


# ------------------------------------------------------------------------------------------ recall rules


def test_distance_rule_counts_ties_within_epsilon():
    kth = np.array([0.3, 0.3])
    found = np.array([[0.1, 0.2, 0.3005], [0.1, 0.2, 0.302]])
    np.testing.assert_allclose(recall_distance_rule(found, kth), [1.0, 2 / 3])
    assert recall_distance_rule(np.array([[0.1, np.nan]]), np.array([0.2]))[0] == 0.5  # missing = miss


def test_pareto_front_hand_example():
    keep = pareto_front([0.5, 0.9, 0.8, 0.9], [100, 50, 40, 60])
    assert keep.tolist() == [True, False, False, True]


# ------------------------------------------------------------------------------------------ ground truth


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ground_truth_holdout_matches_brute_force(metric):
    x = _gaussian(400, 12)
    gt = ground_truth(x, k=5, holdout=40, metric=metric, backend="numpy")
    held = gt.query_rows
    assert len(held) == 40 and not np.isin(held, gt.corpus_rows).any()
    ids, dist, full = _brute_force(x[gt.corpus_rows], x[held], 10, metric)
    np.testing.assert_array_equal(gt.indices, ids)
    np.testing.assert_allclose(gt.distances, dist, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gt.mean_distance, full.mean(axis=1), rtol=1e-4)


def test_split_queries_errors():
    x = _gaussian(100, 4)
    with pytest.raises(EmbeddingInputError, match="either queries or holdout"):
        split_queries(x, x[:5], holdout=5)
    with pytest.raises(EmbeddingInputError, match="no benchmark"):
        split_queries(x, "benchmark")
    with pytest.raises(EmbeddingInputError, match="holdout"):
        split_queries(x, holdout=100)
    with pytest.raises(EmbeddingInputError, match="fraction"):
        split_queries(x, holdout=1.5)
    with pytest.raises(EmbeddingInputError, match="dimension"):
        split_queries(x, np.ones((3, 5), np.float32))


# ------------------------------------------------------------------------------------------ sweeps


def test_flat_index_has_recall_one_and_float32_bytes():
    x = _gaussian(600, 16)
    rep = index_report(x, k=10, holdout=60, indexes=("flat",), repeats=1, corpus_reachability=False,
                       backend="numpy")
    (flat,) = rep.indexes
    assert flat.recall_at_k == 1.0 and flat.recall_distance_rule == 1.0
    assert flat.code_bytes_per_vector == 4 * 16
    assert 4 * 16 <= flat.bytes_per_vector < 4 * 16 + 1  # header is amortised over 540 vectors
    assert flat.qps > 0 and flat.build_seconds >= 0 and flat.pareto


def test_sweep_recall_rises_with_effort_and_full_probe_is_exact():
    x = _gaussian(2000, 16)
    q = _gaussian(100, 16, seed=7)
    rep = index_report(x, queries=q, k=10, indexes=("hnsw", "ivf", "sq8"), repeats=1, backend="numpy",
                       index_params={"hnsw": {"M": 8, "efSearch": (10, 40, 160)}}, corpus_reachability=False)
    by_kind = {}
    for s in rep.indexes:
        by_kind.setdefault(s.kind, []).append(s)
    hnsw, ivf, (sq8,) = by_kind["hnsw"], by_kind["ivf"], by_kind["sq8"]
    assert [s.params["efSearch"] for s in hnsw] == [10, 40, 160]
    nlist = ivf[0].params["nlist"]
    assert nlist == min(2000 // 39, round(4 * math.sqrt(2000)))
    assert ivf[-1].params["nprobe"] == nlist and ivf[-1].recall_at_k == 1.0  # every list scanned
    for sweep in (hnsw, ivf):
        recalls = [s.recall_at_k for s in sweep]
        assert all(b >= a - 0.02 for a, b in zip(recalls, recalls[1:]))
        assert recalls[-1] > recalls[0]
    assert sq8.code_bytes_per_vector == 16 and sq8.recall_at_k > 0.9
    assert hnsw[0].bytes_per_vector > 4 * 16  # graph links on top of the float vectors
    assert rep.pareto and all(s.label in rep.pareto for s in rep.indexes if s.pareto)
    assert rep.harness_seconds >= 0 and rep.faiss_seconds > 0


def test_timed_search_restores_thread_count():
    index = faiss.IndexFlatL2(4)
    index.add(np.eye(4, dtype=np.float32))
    faiss.omp_set_num_threads(2)
    (_, ids), best, total = _timed_search(index, np.eye(4, dtype=np.float32), 1, 1, 3)
    assert faiss.omp_get_max_threads() == 2
    assert ids[:, 0].tolist() == [0, 1, 2, 3] and 0 < best <= total


def test_index_report_progress_moves_through_every_build_and_setting_and_can_cancel():
    from embgeo.analysis import Cancelled, index_report

    x = np.random.default_rng(0).normal(size=(1500, 16)).astype(np.float32)
    seen = []
    rep = index_report(x, k=5, holdout=100, indexes=("hnsw", "ivf"), repeats=1,
                       progress=lambda done, total, what: seen.append((done / total, what)))
    shares = [s for s, _ in seen]
    assert shares == sorted(shares) and shares[-1] == 1.0 and len(set(shares)) > 8
    said = [w for _, w in seen]
    assert "building hnsw" in said and "building ivf" in said
    assert sum(w.startswith("hnsw: searching at") for w in said) == sum(s.kind == "hnsw" for s in rep.indexes)

    def stop(done, total, what):
        if what == "building ivf":
            raise Cancelled(what)
    with pytest.raises(Cancelled):
        index_report(x, k=5, holdout=100, indexes=("hnsw", "ivf"), repeats=1, progress=stop)


def test_unknown_index_kind_is_refused():
    with pytest.raises(EmbeddingInputError, match="unknown index kinds"):
        index_report(_gaussian(200, 4), holdout=20, indexes=("annoy",), repeats=1)


# ------------------------------------------------------------------------------------------ ann-benchmarks


def _write_ann_benchmarks(path, train, test, k, distance, neighbors=None):
    """An ann-benchmarks-format file; ground truth by brute force unless ``neighbors`` are given."""
    metric = "cosine" if distance == "angular" else "euclidean"
    order, _, full = _brute_force(train, test, k, metric)
    if neighbors is not None:
        order = neighbors
    dist = np.take_along_axis(full, order, axis=1)
    if distance == "angular":
        dist = dist**2 / 2  # ann-benchmarks stores 1 - cos
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = distance
        f.attrs["type"] = "dense"
        f["train"], f["test"] = train, test
        f["neighbors"] = order.astype(np.int32)
        f["distances"] = dist.astype(np.float32)


def _read_ann_benchmarks(path):
    """Through the project's loader, as a user would (train = corpus, test + neighbours = benchmark)."""
    from embgeo.analysis import io

    eset = io.load(path)
    assert eset.benchmark is not None and eset.benchmark.neighbors is not None
    return eset


@pytest.mark.parametrize("distance", ["angular", "euclidean"])
def test_recall_on_ann_benchmarks_file_agrees_with_stored_neighbours(tmp_path, distance):
    x = _gaussian(1500, 16)
    test = _gaussian(50, 16, seed=3)
    path = tmp_path / "toy.hdf5"
    _write_ann_benchmarks(path, x, test, 20, distance)
    eset = _read_ann_benchmarks(path)
    rep = index_report(eset, k=10, indexes=("flat", "hnsw"), repeats=1, backend="numpy",
                       index_params={"hnsw": {"efSearch": (10, 64)}}, corpus_reachability=False)
    assert rep.query_source == "benchmark" and rep.metric == ("cosine" if distance == "angular" else "euclidean")
    assert rep.exact.agreement_with_file == 1.0
    flat = rep.indexes[0]
    assert flat.recall_vs_file == 1.0 and flat.recall_distance_rule_vs_file == 1.0
    for s in rep.indexes:  # same ground truth, so both recalls coincide
        assert s.recall_vs_file == pytest.approx(s.recall_at_k)
        assert s.recall_distance_rule_vs_file == pytest.approx(s.recall_distance_rule, abs=1e-9)


def test_ties_in_the_file_are_forgiven_by_the_distance_rule(tmp_path):
    base = _gaussian(400, 8)
    x = np.concatenate([base, base])  # row i and row i + 400 are the same vector
    test = _gaussian(30, 8, seed=5)
    # With k odd, every top-5 holds two twin pairs and one half pair. A file that names the other
    # twin of every neighbour is an equally valid ground truth.
    ours = ground_truth(x, queries=test, k=5, metric="euclidean", backend="numpy").truth
    path = tmp_path / "ties.hdf5"
    _write_ann_benchmarks(path, x, test, 5, "euclidean", neighbors=(ours + 400) % 800)
    eset = _read_ann_benchmarks(path)
    rep = index_report(eset, k=5, indexes=("flat",), repeats=1, backend="numpy", corpus_reachability=False)
    flat = rep.indexes[0]
    assert rep.exact.agreement_with_file == pytest.approx(0.8)  # the half pair differs
    assert 0.8 - 1e-9 <= flat.recall_vs_file <= 1.0  # faiss breaks the ties its own way
    assert flat.recall_distance_rule_vs_file == 1.0 and flat.recall_distance_rule == 1.0


# ------------------------------------------------------------------------------------------ difficulty


def test_difficulty_statistics_match_direct_computation():
    x = _gaussian(500, 10)
    q = _gaussian(40, 10, seed=9)
    gt = ground_truth(x, queries=q, k=5, metric="euclidean", backend="numpy")
    _, dist, full = _brute_force(x, q, 10, "euclidean")
    recall = {"a": np.linspace(0, 1, 40)}
    diff = query_difficulty(gt, per_query_recall=recall, n_buckets=4, n_hardest=3)
    rc = full.mean(axis=1) / dist[:, 4]
    expansion = dist[:, 9] / dist[:, 4]
    lid = -1 / np.log(dist[:, :5] / dist[:, 4:5]).mean(axis=1)
    np.testing.assert_allclose(diff.relative_contrast, rc, rtol=1e-4)
    np.testing.assert_allclose(diff.expansion, expansion, rtol=1e-4)
    np.testing.assert_allclose(diff.lid, lid, rtol=1e-3)
    assert diff.rc_median == pytest.approx(np.median(rc), rel=1e-4)
    assert sum(b["n_queries"] for b in diff.recall_by_bucket) == 40
    first = diff.recall_by_bucket[0]
    in_first = lid <= first["lid_high"]
    assert first["recall"]["a"] == pytest.approx(recall["a"][in_first].mean())
    assert [h["query"] for h in diff.hardest] == list(np.argsort(-lid)[:3])
    assert diff.hardest[0]["label"] == f"query #{diff.hardest[0]['query']}"


def test_dot_metric_difficulty_is_refused():
    gt = ground_truth(_gaussian(100, 4), k=3, holdout=10, metric="dot", backend="numpy")
    with pytest.raises(EmbeddingInputError, match="dot"):
        query_difficulty(gt)


# ------------------------------------------------------------------------------------------ reachability


def test_planted_far_outliers_are_never_retrieved():
    rng = np.random.default_rng(0)
    cluster = rng.normal(size=(800, 8)).astype(np.float32)
    outliers = np.zeros((5, 8), np.float32)
    outliers[np.arange(5), np.arange(5)] = 50.0 + 10.0 * np.arange(5)  # far from the cloud and each other
    x = np.concatenate([cluster, outliers])
    eset = EmbeddingSet(x, pd.DataFrame({"text": [f"item {i}" for i in range(len(x))]}))
    q = rng.normal(size=(200, 8)).astype(np.float32)
    gt = ground_truth(eset, queries=q, k=5, metric="euclidean", backend="numpy")
    reach = reachability(gt, eset)
    planted = np.arange(800, 805)
    assert np.isin(planted, reach.never_retrieved_rows).all()
    assert np.isin(planted, reach.corpus_never_retrieved_rows).all()
    assert {f"item {i}" for i in planted} <= set(eset.label(int(i)) for i in reach.corpus_never_retrieved_rows)
    occurrence = np.bincount(eset.neighbors(5, metric="euclidean").indices.ravel(), minlength=len(x))
    assert reach.corpus_never_retrieved_rate == pytest.approx((occurrence == 0).mean())
    assert reach.never_retrieved_expected == pytest.approx((1 - 5 / 805) ** 200)


# ------------------------------------------------------------------------------------------ IVF balance


def test_list_balance_hand_checked():
    bal = list_balance([3, 1, 0, 0])
    assert bal.imbalance_factor == pytest.approx(4 * (9 + 1) / 16)
    assert bal.empty_lists == 2 and bal.largest_list_share == 0.75
    assert bal.entropy == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert bal.normalised_entropy == pytest.approx(bal.entropy / math.log(4))
    even = list_balance([5, 5, 5])
    assert even.imbalance_factor == pytest.approx(1.0) and even.normalised_entropy == pytest.approx(1.0)
    with pytest.raises(EmbeddingInputError):
        list_balance([0, 0])


def test_ivf_balance_reads_faiss_lists():
    centroids = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    quantizer = faiss.IndexFlatL2(2)
    quantizer.add(centroids)
    index = faiss.IndexIVFFlat(quantizer, 2, 4)
    index.is_trained = True
    index.add(np.array([[0.1, 0], [0, 0.2], [0.3, 0.1], [9.8, 0.1]], np.float32))
    bal = ivf_balance(index)
    assert bal.sizes.tolist() == [3, 1, 0, 0] and bal.empty_lists == 2
    assert bal.imbalance_factor == pytest.approx(2.5)
    assert bal.imbalance_factor == pytest.approx(index.invlists.imbalance_factor())  # faiss's own


# ------------------------------------------------------------------------------------------ scaling


def test_scaling_margin_shrinks_as_corpus_grows():
    x = _gaussian(2400, 4, decay=False)
    q = _gaussian(200, 4, seed=11, decay=False)
    sc = index_scaling(x, queries=q, k=5, metric="euclidean", fractions=(0.125, 0.25, 0.5, 1.0), kind="ivf",
                       params={"nprobe": 2}, backend="numpy")
    assert sc.sizes == [300, 600, 1200, 2400]
    assert sc.margin[0] > sc.margin[-1] and sc.margin_slope_per_decade < 0
    assert all(0 <= r <= 1 for r in sc.recall_at_k)
    fitted = [sc.predicted_recall(n) for n in sc.sizes]
    assert np.mean(fitted) == pytest.approx(np.mean(sc.recall_at_k))  # a least-squares line passes the mean
    with pytest.raises(EmbeddingInputError, match="fractions"):
        index_scaling(x, queries=q, fractions=(0.5,))


def test_scaling_reports_each_size_and_stops_when_its_progress_raises():
    from embgeo.analysis import Cancelled

    x, q = _gaussian(800, 4, decay=False), _gaussian(50, 4, seed=11, decay=False)
    seen = []
    sc = index_scaling(x, queries=q, k=5, fractions=(0.5, 1.0), kind="hnsw", backend="numpy",
                       progress=lambda done, total, what: seen.append((done, total, what)))
    assert all(total == 4 for _, total, _ in seen) and seen[-1][0] == 4
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)  # it only moves forward
    assert {"building hnsw at 400 rows", "building hnsw at 800 rows"} <= {w for _, _, w in seen}
    assert sc.sizes == [400, 800]

    def stop(done, total, what):
        if what.startswith("building"):
            raise Cancelled(what)

    with pytest.raises(Cancelled, match="building hnsw at 400 rows"):
        index_scaling(x, queries=q, k=5, fractions=(0.5, 1.0), kind="hnsw", backend="numpy", progress=stop)


# ------------------------------------------------------------------------------------------ report


def test_index_report_dict_has_the_promised_fields_and_input_is_untouched():
    x = _gaussian(1200, 16)
    before = x.copy()
    texts = pd.DataFrame({"text": [f"doc {i}" for i in range(1200)]})
    rep = index_report(EmbeddingSet(x, texts), k=5, holdout=80, indexes=("hnsw", "ivf", "ivfpq", "sq8"),
                       repeats=1, backend="numpy", index_params={"hnsw": {"efSearch": (16,)},
                                                                  "ivf": {"nprobe": (1, 4)},
                                                                  "ivfpq": {"nprobe": (4,)}})
    np.testing.assert_array_equal(x, before)
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["k"] == 5 and d["n_queries"] == 80 and d["exact"]["seconds"] > 0
    assert {s["kind"] for s in d["indexes"]} == {"hnsw", "ivf", "ivfpq", "sq8"}
    for s in d["indexes"]:
        assert {"kind", "params", "recall_at_k", "qps", "build_seconds", "bytes_per_vector"} <= set(s)
        assert "per_query_recall" not in s
    assert {"lid_median", "rc_median", "expansion_median", "recall_by_bucket"} <= set(d["difficulty"])
    assert 0 <= d["reachability"]["never_retrieved_rate"] <= 1
    assert d["ivf_balance"]["imbalance_factor"] >= 1
    ivfpq = next(s for s in rep.indexes if s.kind == "ivfpq")
    assert ivfpq.code_bytes_per_vector == math.ceil(ivfpq.params["m"] * ivfpq.params["nbits"] / 8)
    assert rep.difficulty.hardest[0]["label"].startswith("doc ")  # held-out rows keep their labels
    assert "IndexReport" in repr(rep) and "<table" in rep._repr_html_()


def test_dot_metric_report_skips_difficulty():
    rep = index_report(_gaussian(300, 8), k=5, holdout=30, metric="dot", indexes=("flat",), repeats=1,
                       backend="numpy", corpus_reachability=False)
    assert rep.difficulty is None and rep.indexes[0].recall_at_k == 1.0


def test_report_scaling_keeps_held_out_queries_out_of_the_corpus():
    rep = index_report(_gaussian(800, 8), k=5, holdout=80, indexes=("flat",), repeats=1, backend="numpy",
                       corpus_reachability=False, scaling=True, scaling_fractions=(0.5, 1.0))
    assert rep.scaling.sizes == [360, 720]  # 800 - 80 held out, never 800
    assert rep.scaling.setting.startswith("hnsw(") and rep.to_dict()["scaling"]["recall_at_k"][-1] > 0.9


# ----------------------------------------------------------------------------------------- transform effect


def test_transform_effect_fits_on_the_corpus_and_applies_to_queries():
    from embgeo.analysis import Whitening, transform_effect

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((1500, 16)) * np.linspace(4, 0.5, 16) + 1.0).astype(np.float32)
    before = x.copy()
    eff = transform_effect(x, "zca", k=5, holdout=100, indexes=("hnsw",), metric="euclidean")
    np.testing.assert_array_equal(x, before)
    # The transformed space's ground truth is that of the corpus-fitted transform applied to both sides.
    split = split_queries(x, holdout=100, metric="euclidean")
    fitted = Whitening(method="zca").fit(split.corpus)
    truth = exact_knn(fitted.transform(split.corpus), fitted.transform(split.queries), k=5, metric="euclidean")
    np.testing.assert_array_equal(eff.transformed.exact.truth, truth.indices)
    assert len(eff.rows) == len(eff.raw.indexes) and eff.n_queries == 100


def test_translation_leaves_euclidean_index_recall_unchanged():
    from embgeo.analysis import transform_effect

    x = np.random.default_rng(6).standard_normal((2000, 12)).astype(np.float32) + 3.0
    eff = transform_effect(x, "center", k=10, holdout=200, indexes=("hnsw", "ivf"), metric="euclidean")
    for row in eff.rows:
        assert abs(row["recall_raw"] - row["recall_transformed"]) <= 0.02, row


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_streamed_index_size_equals_serialised_length(kind):
    import faiss

    from embgeo.analysis.index.faiss_indexes import _serialized_bytes, build_index

    x = np.random.default_rng(3).normal(size=(600, 12)).astype(np.float32)
    index, _, _ = build_index(kind, x, "euclidean", {"nlist": 8} if kind == "ivf" else {})
    assert _serialized_bytes(index) == len(faiss.serialize_index(index))
