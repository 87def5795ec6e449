"""The Dask engine on a LocalCluster of two single-threaded worker processes: the same moments and the
same exact table as one process, whatever the chunking, and the same result when a worker dies."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the Dask engine is the optional extra embgeo[dask]")

from embgeo.analysis import EmbeddingInputError, exact_knn  # noqa: E402
from embgeo.analysis._core import scan_moments  # noqa: E402
from embgeo.analysis.datasets import make_anisotropic  # noqa: E402
from embgeo.analysis.distributed import (  # noqa: E402
    connect,
    dask_exact_knn,
    dask_moments,
    from_npy,
    is_dask_array,
    row_chunks,
)
from embgeo.analysis.neighbors import block_pair_knn, kth_scores, merge_knn  # noqa: E402


@pytest.fixture(scope="module")
def cloud():
    return make_anisotropic(3000, 24, random_state=0)


def _same_table(got, want, tol=1e-5):
    """Ids identical except where two neighbours are tied within ``tol``; distances within ``tol``."""
    np.testing.assert_allclose(got.distances, want.distances, rtol=0, atol=tol)
    differ = got.indices != want.indices
    assert np.all(np.abs(got.distances - want.distances)[differ] <= tol)
    assert differ.mean() < 0.001


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_block_pairs_merged_are_the_exact_self_join(cloud, metric):
    # the pieces without Dask: three blocks, every pair i <= j, each block's partial lists merged
    k, cuts = 7, [0, 1000, 1700, 3000]
    parts = {i: [] for i in range(3)}
    for i in range(3):
        for j in range(i, 3):
            a, b = cloud[cuts[i]:cuts[i + 1]], cloud[cuts[j]:cuts[j + 1]]
            ia, da, ib, db = block_pair_knn(a, b, k, metric=metric, same=i == j)
            parts[i].append((np.where(ia < 0, -1, ia + cuts[j]), da))
            if i != j:
                parts[j].append((np.where(ib < 0, -1, ib + cuts[i]), db))
    ids = np.concatenate([merge_knn(parts[i], k)[0] for i in range(3)])
    dist = np.concatenate([merge_knn(parts[i], k)[1] for i in range(3)])
    want = exact_knn(cloud, k=k, metric=metric)
    _same_table(type(want)(indices=ids, distances=dist, metric=metric, exact=True), want)


def _seeded_join(x, cuts, k, metric, seeded=True):
    """The block pieces as the engine runs them: diagonals first, their floors under the other pairs
    (``seeded=False``: no floors). Returns the merged table and the number of entries the
    off-diagonal pairs returned."""
    blocks = [x[cuts[i]:cuts[i + 1]] for i in range(len(cuts) - 1)]
    parts, floors = [], []
    for b in blocks:
        ids, dist, _, _ = block_pair_knn(b, b, k, metric=metric, same=True)
        parts.append([(ids, dist)])
        floors.append(kth_scores(dist, metric) if seeded else None)
    parts = [[(np.where(i < 0, -1, i + cuts[n]), d) for i, d in p] for n, p in enumerate(parts)]
    returned = 0
    for i in range(len(blocks)):
        for j in range(i + 1, len(blocks)):
            ia, da, ib, db = block_pair_knn(blocks[i], blocks[j], k, metric=metric, floor_a=floors[i],
                                            floor_b=floors[j])
            parts[i].append((np.where(ia < 0, -1, ia + cuts[j]), da))
            parts[j].append((np.where(ib < 0, -1, ib + cuts[i]), db))
            returned += int((ia >= 0).sum() + (ib >= 0).sum())
    merged = [merge_knn(p, k) for p in parts]
    return np.concatenate([m[0] for m in merged]), np.concatenate([m[1] for m in merged]), returned


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_floors_from_the_diagonal_leave_the_join_unchanged(cloud, metric):
    # seeded lists keep only cells above the row's own-block k-th score: the merged table is the
    # same, bit for bit, as the unseeded one, and the off-diagonal pairs return fewer entries
    k, cuts = 7, [0, 1000, 1700, 3000]
    ids, dist, returned = _seeded_join(cloud, cuts, k, metric)
    plain_ids, plain_dist, unseeded = _seeded_join(cloud, cuts, k, metric, seeded=False)
    np.testing.assert_array_equal(ids, plain_ids)
    np.testing.assert_array_equal(dist, plain_dist)
    assert unseeded == k * ((1000 + 700) + (1000 + 1300) + (700 + 1300))  # k entries a row a pair
    assert returned < 0.9 * unseeded
    want = exact_knn(cloud, k=k, metric=metric)
    _same_table(type(want)(indices=ids, distances=dist, metric=metric, exact=True), want)


def test_floors_admit_ties_at_the_kth_score():
    # integer points, exact in float32: row A_i's nearest in its own block (A_i+-1) and in the block
    # before (B_i, which has the lower id and so wins the tie) are both at distance 100. A floor at
    # the k-th score itself (strict ">") would drop B_i
    a = np.stack([100.0 * np.arange(10), np.zeros(10)], axis=1)
    b = a + [0.0, 100.0]
    x = np.concatenate([b, a]).astype(np.float32)
    for k in (1, 2):
        ids, dist, _ = _seeded_join(x, [0, 10, 20], k, "euclidean")
        plain_ids, plain_dist, _ = _seeded_join(x, [0, 10, 20], k, "euclidean", seeded=False)
        np.testing.assert_array_equal(ids, plain_ids)
        np.testing.assert_array_equal(dist, plain_dist)
        assert (ids[10:, 0] == np.arange(10)).all() and (dist[10:, 0] == 100).all()


def test_a_floor_of_the_wrong_length_is_refused():
    x = make_anisotropic(40, 8, random_state=1)
    with pytest.raises(ValueError, match="a floor has 3 values for a block of 20 rows"):
        block_pair_knn(x[:20], x[20:], 5, floor_a=np.zeros(3, np.float32))


def test_a_small_block_pads_its_lists():
    x = make_anisotropic(40, 8, random_state=1)
    ids, dist, _, _ = block_pair_knn(x[:3], x[:3], 5, same=True)
    assert (ids[:, 2:] == -1).all() and np.isinf(dist[:, 2:]).all() and (ids[:, :2] >= 0).all()
    merged_ids, _ = merge_knn([(ids, dist), (ids[:, :1] + 100, dist[:, :1] + 1)], 3)
    assert (merged_ids[:, 2] >= 100).all()  # the other part's entry comes before the padding


def test_moments_equal_one_pass(client, cloud):
    both = dask_moments(cloud, normalize=(False, True), client=client, chunk_rows=700)  # one graph
    for normalize, got in zip((False, True), both):
        assert got.normalize == normalize
        np.testing.assert_array_equal(got.mean, dask_moments(cloud, normalize=normalize, client=client,
                                                             chunk_rows=700).mean)
        want = scan_moments(cloud, normalize=normalize)
        np.testing.assert_allclose(got.mean, want.mean, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got.covariance(), want.covariance(), rtol=1e-6, atol=1e-9)
        assert got.count == want.count == 3000 and abs(got.mean_cosine() - want.mean_cosine()) < 1e-6
        np.testing.assert_allclose(got.eigenvalues(), want.eigenvalues(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_exact_table_equals_one_process(client, cloud, metric):
    got = dask_exact_knn(cloud, k=10, metric=metric, client=client, chunk_rows=800)
    assert got.exact and "4 chunks, 10 pairs" in got.backend
    _same_table(got, exact_knn(cloud, k=10, metric=metric))


def test_workers_read_their_own_chunks_of_a_file(client, cloud, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, cloud)
    lazy = from_npy(path, chunk_rows=1000)
    assert is_dask_array(lazy) and lazy.chunks[0] == (1000, 1000, 1000) and not is_dask_array(cloud)
    # the graph holds the path, not the data
    assert sum(v.nbytes for v in lazy.dask.values() if isinstance(v, np.ndarray)) == 0
    _same_table(dask_exact_knn(lazy, k=5, client=client), exact_knn(cloud, k=5))
    # another dtype is converted by each worker as it reads its chunk
    half = tmp_path / "half.npy"
    np.save(half, cloud.astype(np.float16))
    np.testing.assert_array_equal(from_npy(half, chunk_rows=1000).compute(), cloud.astype(np.float16).astype(np.float32))


def test_a_worker_killed_mid_run_changes_nothing(client, cloud, tmp_path, kill_a_worker):
    path = tmp_path / "x.npy"
    np.save(path, cloud)
    want = dask_exact_knn(from_npy(path, chunk_rows=300), k=5, client=client)  # 55 pair tasks
    with kill_a_worker(done=10):  # once some pair results are held
        got = dask_exact_knn(from_npy(path, chunk_rows=300), k=5, client=client)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.distances, want.distances)


def test_small_sets_are_cut_into_whole_tiles():
    from embgeo.analysis.distributed.arrays import default_chunk_rows

    assert [default_chunk_rows(n) for n in (10, 5000, 100_000, 10**7)] == [4096, 4096, 28_672, 65_536]


def test_a_local_cluster_leaves_this_process_environment_as_it_was():
    # distributed's nannies set OMP_NUM_THREADS=1 and more in the parent's environment; a subprocess
    # started after the cluster must not inherit them
    before = dict(os.environ)
    with connect("local:1") as one:
        assert dict(os.environ) == before
        assert one.run(lambda: os.environ.get("OMP_NUM_THREADS")) == {w: "1" for w in one.scheduler_info()["workers"]}
    assert dict(os.environ) == before


def test_bad_input_is_named(client):
    with pytest.raises(EmbeddingInputError, match="2-D"):
        row_chunks(np.zeros(5))
    with pytest.raises(EmbeddingInputError, match="k"):
        dask_exact_knn(np.zeros((4, 3), np.float32) + 1, k=10, client=client)
    with pytest.raises(EmbeddingInputError, match="local:N"):
        with connect("local:0"):
            pass
    with pytest.raises(EmbeddingInputError, match="scheduler address or 'local:N'"):
        with connect(42):
            pass


def test_a_scheduler_without_workers_is_an_error_not_a_hang(monkeypatch):
    """Tasks sent to a scheduler with no workers wait for ever; connect says so instead."""
    distributed = pytest.importorskip("distributed")
    from embgeo.analysis.distributed import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "WORKER_WAIT_S", 0.5)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty:
        with pytest.raises(EmbeddingInputError, match=r"has no workers \(none joined within 0.5 s\).*`dask worker "):
            with connect(empty.scheduler_address):
                pass
        with distributed.Client(empty) as given:
            with pytest.raises(EmbeddingInputError, match="the client's scheduler has no workers"):
                with connect(given):
                    pass


def test_the_query_sample_search_equals_one_process(client, cloud):
    from embgeo.analysis.distributed import dask_cosine_and_dot_sample
    from embgeo.analysis.neighbors import cosine_and_dot_sample

    rows = np.random.default_rng(2).choice(len(cloud), 150, replace=False)
    got = dask_cosine_and_dot_sample(cloud, rows, 12, 6, client=client, chunk_rows=700)
    want = cosine_and_dot_sample(cloud, rows, 12, 6)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.indices, w.indices)
        np.testing.assert_allclose(g.distances, w.distances, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[0].mean_distance, want[0].mean_distance, rtol=1e-6)


def test_near_duplicates_get_their_distances_from_the_vectors(client):
    # twins at distance ~1e-4: read off a float32 cosine score their chord would be off by ~3e-4
    rng = np.random.default_rng(5)
    base = make_anisotropic(1500, 16, random_state=5)
    x = np.concatenate([base, base[:300] + rng.normal(scale=1e-4, size=(300, 16)).astype(np.float32)])
    for metric in ("cosine", "euclidean"):
        got = dask_exact_knn(x, k=6, metric=metric, client=client, chunk_rows=500)
        want = exact_knn(x, k=6, metric=metric)
        np.testing.assert_allclose(got.distances[:, 0], want.distances[:, 0], rtol=1e-4, atol=2e-6)
        _same_table(got, want)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_the_sampled_report_on_the_cluster_equals_the_report_here(client, tmp_path, metric):
    from embgeo.analysis import load, sampled_report

    x = make_anisotropic(2500, 24, random_state=7)
    np.save(tmp_path / "x.npy", x)
    settings = dict(metric=metric, k=6, sample=300, subsample=1000, random_state=2)
    here = sampled_report(x, **settings).to_dict()
    there = sampled_report(load(tmp_path / "x.npy"), cluster=client, **settings).to_dict()
    a, b = dict(_report_numbers(here)), dict(_report_numbers(there))
    assert a.keys() == b.keys() and len(a) > 30
    for key in a:
        tol = 1e-4 if key == "isotropy.partition_isotropy" else 1e-6
        assert b[key] == pytest.approx(a[key], rel=tol, abs=1e-9), key
    searched = "the moments and the query sample's search ran on a Dask cluster of 2 workers"
    only_moments = "the moments ran on a Dask cluster of 2 workers"
    assert any(note.startswith(searched if metric == "cosine" else only_moments) for note in there["notes"])


def _report_numbers(d, prefix=""):
    for key, value in d.items():
        if key in ("timings", "seconds", "backend", "source", "name"):
            continue
        if isinstance(value, dict):
            yield from _report_numbers(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)


def test_the_report_on_the_cluster_equals_the_report_here(client, tmp_path, monkeypatch):
    from embgeo.analysis import geometry_report, load
    from embgeo.analysis.distributed import arrays

    monkeypatch.setattr(arrays, "TILE_ROWS", 256)  # chunks of 768 rows: 4 chunks, 10 pair tasks

    x = make_anisotropic(2500, 24, random_state=7)
    path = tmp_path / "x.npy"
    np.save(path, x)
    es = load(path)  # a memory map: the workers read their chunks from the file
    here = geometry_report(x, k=8, sample=300).to_dict()
    there = geometry_report(es, k=8, sample=300, cluster=client).to_dict()

    assert any("in 4 row chunks" in note for note in there["notes"])
    a, b = dict(_report_numbers(here)), dict(_report_numbers(there))
    assert a.keys() == b.keys() and len(a) > 40
    # The partition isotropy minimises Z(c) over eigenvectors; near-degenerate eigenvalues let those
    # turn with the moments' last-digit rounding (merged in another order), so it agrees to ~1e-5.
    # The table's distances are read off float32 scores (within ~1e-6 of the vectors' differences), so
    # the statistics built on them (TwoNN, MLE, contrast) agree to ~1e-6 as well.
    loose = {"isotropy.partition_isotropy"}
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-4 if key in loose else 1e-5, abs=1e-7), key
    # the approximate report: its join's blocks on the cluster, its recall measured on the report's own
    # query sample, and its statistics as close to the approximate report here as the two tables are
    approx_here = geometry_report(x, k=8, sample=300, exact=False).to_dict()
    # es now holds the exact table, which an approximate request takes: the note says only what ran there
    reused = geometry_report(es, k=8, sample=300, exact=False, cluster=client).to_dict()
    assert reused["exact"] is True and [n[:n.index(" ran on")] for n in reused["notes"] if " ran on " in n] == [
        "the query sample's search and the moments"]
    fresh = load(path)
    approx_there = geometry_report(fresh, k=8, sample=300, exact=False, cluster=client).to_dict()
    assert any("approximate join" in note and "Dask cluster of 2 workers" in note for note in approx_there["notes"])
    assert fresh.cached_neighbors(approx_there["table_k"], exact=False).backend.startswith("dask(ivf-join(blocked")
    assert approx_there["exact"] is False and approx_there["recall"] >= 0.9
    assert abs(approx_there["recall"] - approx_here["recall"]) <= 0.02
    assert approx_there["hubness"]["skewness"] == pytest.approx(approx_here["hubness"]["skewness"], abs=0.15)


def test_a_set_of_npy_shards_is_read_by_the_workers_from_its_files(client, tmp_path):
    from embgeo.analysis import geometry_report, load
    from embgeo.analysis.distributed import from_npy_shards
    from embgeo.analysis.report.on_cluster import ClusterParts

    x = make_anisotropic(2000, 16, random_state=9)
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, (a, b) in enumerate([(0, 700), (700, 1600), (1600, 2000)]):
        np.save(folder / f"part-{i}.npy", x[a:b].astype(np.float64 if i == 1 else np.float32))
    es = load(folder)  # converted here into one matrix (a scratch map when large)
    parts = ClusterParts(client, es, exact=True)
    try:  # the workers read the shards' files, not the client's copy
        keys = [str(key) for key in dict(parts.rows.__dask_graph__())]
        assert sum(key.startswith("_read_map") for key in keys) == 3, keys
        np.testing.assert_array_equal(parts.rows.compute(), es.vectors)
    finally:
        parts.close()
    here = geometry_report(x.astype(np.float32), k=6, sample=200).to_dict()
    there = geometry_report(es, k=6, sample=200, cluster=client).to_dict()
    assert there["hubness"]["skewness"] == pytest.approx(here["hubness"]["skewness"], rel=1e-9)
    assert there["isotropy"]["isoscore"] == pytest.approx(here["isotropy"]["isoscore"], rel=1e-6)
    with pytest.raises(EmbeddingInputError, match="dimensions, where the shards before it have 16"):
        np.save(folder / "part-3.npy", np.ones((5, 8), np.float32))
        from_npy_shards(sorted(folder.iterdir()))
