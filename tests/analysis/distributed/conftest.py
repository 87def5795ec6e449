"""One LocalCluster of two single-threaded worker processes for every Dask test in this folder: its
workers import and compile the kernels once (the first report on a fresh cluster takes seconds). It is
closed when the folder's tests end (package scope): left running, its client's monitor threads kept
allocating in the test process for the rest of the suite, which the memory-bound tests measure."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def client():
    pytest.importorskip("distributed", reason="the Dask engine is the optional extra embgeo[dask]")
    from embgeo.analysis.distributed import connect

    with connect("local:2") as c:
        yield c


@pytest.fixture
def kill_a_worker(client):
    """``with kill_a_worker(done, prefix=""):`` -- while the body runs, once the scheduler holds ``done``
    finished tasks (those whose key starts with ``prefix``), the worker process holding them is killed
    (its nanny starts a new one; the scheduler recomputes what was lost). Afterwards: it did fire, and
    both workers are back."""
    import contextlib
    import os
    import threading

    @contextlib.contextmanager
    def during(done: int, prefix: str = ""):
        stop, fired = threading.Event(), []

        def finished(dask_scheduler):
            return sum(ts.state == "memory" and str(ts.key).startswith(prefix) for ts in dask_scheduler.tasks.values())

        def watch():
            while not stop.is_set():
                if client.run_on_scheduler(finished) >= done:
                    victim = sorted(client.scheduler_info()["workers"])[0]
                    fired.append(victim)
                    try:  # the worker dies inside the call: its reply never comes
                        client.run(os._exit, 1, workers=[victim])
                    except Exception:  # noqa: BLE001  CommClosedError and kin, by design
                        pass
                    return
                stop.wait(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join(timeout=10)
        assert fired, "the run ended before a worker could be killed"
        client.wait_for_workers(2, timeout=60)

    return during
