"""Progress and cancellation of Dask graphs (distributed.tracking.compute): the counts move through the
graph's tasks to the end, on a cluster and on Dask's local scheduler, and a callback that raises
Cancelled stops the work there and reaches the caller."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the Dask engine is the optional extra embgeo[dask]")

import dask  # noqa: E402

from embgeo.analysis import Cancelled, geometry_report  # noqa: E402
from embgeo.analysis.datasets import make_anisotropic  # noqa: E402
from embgeo.analysis.distributed import compute, dask_exact_knn  # noqa: E402


def _slow_graph(parts: int, seconds: float):
    def step(i):
        time.sleep(seconds)
        return i

    return dask.delayed(sum)([dask.delayed(step)(i) for i in range(parts)])


def _recorder():
    seen = []

    def record(done, total, description):
        seen.append((done, total, description))

    return seen, record


def test_progress_moves_through_a_cluster_graph_to_the_end(client):
    seen, record = _recorder()
    assert compute(_slow_graph(12, 0.15), client, progress=record, description="twelve steps") == sum(range(12))
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1]  # monotone, and it ends at the total
    assert len(set(done)) >= 4  # it moved in between, not only at the start and the end
    assert all(desc == "twelve steps" for _, _, desc in seen)


def test_progress_moves_on_the_local_scheduler():
    seen, record = _recorder()
    with dask.config.set(scheduler="threads"):
        assert compute(_slow_graph(8, 0.02), None, progress=record) == sum(range(8))
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] and len(set(done)) >= 4


def test_a_cancelled_cluster_graph_stops_there(client):
    calls = []

    def cancel_soon(done, total, description):
        calls.append(done)
        if len(calls) >= 3:
            raise Cancelled("stop")

    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        compute(_slow_graph(40, 0.5), client, progress=cancel_soon)  # 10 s of work on two workers
    assert time.perf_counter() - t0 < 5
    deadline = time.time() + 10  # the scheduler forgets the cancelled tasks; nothing keeps running
    while time.time() < deadline and any(client.processing().values()):
        time.sleep(0.1)
    assert not any(client.processing().values())
    assert compute(_slow_graph(2, 0.01), client) == 1  # the cluster still works


def test_a_cancelled_local_graph_raises():
    def cancel(done, total, description):
        if done:
            raise Cancelled("stop")

    with dask.config.set(scheduler="sync"), pytest.raises(Cancelled):
        compute(_slow_graph(20, 0.01), None, progress=cancel)


def test_the_report_on_a_cluster_moves_within_its_parts(client):
    x = make_anisotropic(2000, 12, random_state=3)
    seen, record = _recorder()
    geometry_report(x, k=5, cluster=client, progress=record)
    cluster_steps = [desc for _, _, desc in seen if "on the cluster" in desc]
    assert any("self-join" in desc for desc in cluster_steps) and any("moments" in desc for desc in cluster_steps)
    # the cluster's steps move the caller's one bar forward through each part, never back
    shares = [d / t for d, t, _ in seen]
    assert shares == sorted(shares) and shares[-1] == 1


def test_the_exact_table_is_unchanged_with_progress(client):
    x = make_anisotropic(2000, 12, random_state=1)
    plain = dask_exact_knn(x, 6, client=client, chunk_rows=600)
    seen, record = _recorder()
    tracked = dask_exact_knn(x, 6, client=client, chunk_rows=600, progress=record)
    np.testing.assert_array_equal(plain.indices, tracked.indices)
    assert seen[-1][0] == seen[-1][1]
