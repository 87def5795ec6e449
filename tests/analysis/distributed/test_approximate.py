"""The approximate table on the cluster (``dask_approximate_knn``): one process's blocked join, its
blocks run by the workers, gives one process's table; its recall is that of the join on one machine;
a worker killed in the middle changes nothing; the report takes it with ``exact=False``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the Dask engine is the optional extra embgeo[dask]")

from embgeo.analysis import approximate_knn, exact_knn  # noqa: E402
from embgeo.analysis.datasets import make_anisotropic  # noqa: E402
from embgeo.analysis.distributed import dask_approximate_knn, row_chunks  # noqa: E402
from embgeo.analysis.distributed.approximate import default_block_rows  # noqa: E402
from embgeo.analysis.neighbors import recall_at_k  # noqa: E402


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """6,000 x 32 anisotropic rows in a float32 .npy file, memory-mapped (the workers map it too)."""
    path = tmp_path_factory.mktemp("approx") / "x.npy"
    np.save(path, make_anisotropic(6000, 32, random_state=4).astype(np.float32))
    return np.load(path, mmap_mode="r")


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_the_cluster_runs_the_blocked_join_of_one_process(client, mapped, metric):
    one = approximate_knn(mapped, k=10, metric=metric, join="blocked", random_state=1, progress=False)
    got = dask_approximate_knn(mapped, k=10, metric=metric, client=client, random_state=1, block_rows=700)
    # the same plan (seeded), the same kernels on the same blocks' points: the same table
    np.testing.assert_array_equal(got.indices, one.indices)
    np.testing.assert_allclose(got.distances, one.distances, rtol=0, atol=1e-6)
    assert got.recall == one.recall and got.exact is False
    assert got.backend.startswith("dask(ivf-join(blocked") and got.backend.endswith(", 9 blocks)")
    # its recall, measured by the join on a sample, is the recall against an independent exact search of
    # every row, and within 0.01 of the default (symmetric) join's on one machine
    truth = exact_knn(np.asarray(mapped), k=10, metric=metric).indices
    assert recall_at_k(got.indices, truth) == pytest.approx(got.recall, abs=0.02)
    assert got.recall >= 0.93
    default = approximate_knn(mapped, k=10, metric=metric, random_state=1, progress=False)
    assert abs(got.recall - default.recall) <= 0.01


def test_a_set_in_memory_is_sent_to_the_workers_once(client, mapped):
    in_memory = np.array(mapped)
    want = dask_approximate_knn(mapped, k=6, client=client, block_rows=1500)
    got = dask_approximate_knn(in_memory, k=6, client=client, block_rows=1500)
    np.testing.assert_array_equal(got.indices, want.indices)
    with pytest.raises(TypeError, match="not a dask array"):
        dask_approximate_knn(row_chunks(in_memory), k=6, client=client)


def test_a_worker_killed_mid_run_changes_nothing(client, mapped, kill_a_worker):
    want = dask_approximate_knn(mapped, k=8, client=client, block_rows=150)  # 40 block tasks
    with kill_a_worker(done=6, prefix="_join_and_rerank"):  # once some blocks are done
        got = dask_approximate_knn(mapped, k=8, client=client, block_rows=150)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.distances, want.distances)


def test_blocks_are_shared_out_to_every_worker():
    assert default_block_rows(1_000_000, 2) == 65_536  # the single process's block
    assert default_block_rows(100_000, 2) == 12_500  # four a worker
    assert default_block_rows(10_000, 8) == 4_096  # never under the smallest block
