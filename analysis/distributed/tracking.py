"""Computing a Dask graph with progress that moves and a way to stop it.

:func:`compute` runs a delayed value (or any Dask collection) and reports the share of the graph's
tasks done through the usual ``progress`` argument (a bar, or ``progress(done, total,
description)``; see :mod:`embgeo.analysis._core.progress`):

* on a ``distributed`` cluster the counts come from the scheduler, as distributed's own progress bars
  get them (its ``Progress`` scheduler plugin, fed to a :class:`~distributed.diagnostics.progressbar.
  ProgressBar` on the client's event loop); the calling thread waits in short steps and reports,
  so a callback that raises (:class:`~embgeo.analysis.Cancelled`, or Ctrl-C) cancels the
  computation on the cluster and the exception reaches the caller;
* on Dask's local schedulers (no client) a scheduler callback counts the finished tasks.

Progress is reported in thousandths of the graph, so a terminal bar and a callback see the same steps.
"""

from __future__ import annotations

import threading

from .._core import Progress

#: Steps a computation's progress is reported in (thousandths of its tasks).
STEPS = 1000
#: Seconds between two looks at a cluster computation.
POLL_SECONDS = 0.2


def compute(value, client=None, *, progress=None, description: str = "Dask graph"):
    """The result of ``value`` (a Dask delayed value or collection), computed on ``client`` (None: Dask's
    current scheduler), with its progress reported through ``progress`` and cancellable from it."""
    if client is None:
        return _compute_here(value, progress, description)
    return _compute_on_cluster(value, client, progress, description)


class _Steps:
    """Turns (tasks done, tasks in all) into :data:`STEPS` steps of one :class:`Progress`."""

    def __init__(self, progress, description: str):
        self.progress = Progress(progress, STEPS, description, unit="‰", auto=False)

    def report(self, done: int, total: int) -> None:
        step = STEPS if total <= 0 else min(STEPS, STEPS * done // total)
        if step > self.progress.done:
            self.progress.update(step - self.progress.done)

    def close(self) -> None:
        self.progress.close()


def _compute_here(value, progress, description: str):
    from dask.callbacks import Callback

    steps = _Steps(progress, description)
    counts = {"done": 0, "total": 0}

    def start(dsk, state):
        counts["total"] = len(dsk)

    def finished(key, result, dsk, state, worker_id):
        counts["done"] += 1
        steps.report(counts["done"], counts["total"])  # may raise: the scheduler stops and re-raises

    try:
        with Callback(start_state=start, posttask=finished):
            out = value.compute()
        steps.report(1, 1)
        return out
    finally:
        steps.close()


def _task_counter(future, client):
    """A distributed ProgressBar over the tasks ``future`` depends on, counting into ``.counts``."""
    from distributed.diagnostics.progressbar import ProgressBar

    class Counter(ProgressBar):
        def __init__(self):
            super().__init__([future], scheduler=client.scheduler.address, interval=POLL_SECONDS,
                             complete=True)
            self.counts, self.lock = (0, 0), threading.Lock()

        def _draw_bar(self, remaining=0, all=0, **_):  # called on the client's event loop
            with self.lock:
                self.counts = (all - remaining, all)

    return Counter()


def _compute_on_cluster(value, client, progress, description: str):
    from distributed import wait

    future = client.compute(value)
    steps = _Steps(progress, description)
    counter = _task_counter(future, client)
    client.loop.add_callback(counter.listen)
    try:
        while True:
            try:
                wait(future, timeout=POLL_SECONDS)
            except TimeoutError:
                pass
            with counter.lock:
                done, total = counter.counts
            if future.done():
                steps.report(1, 1)
                return future.result()
            steps.report(done, total)  # may raise Cancelled: the computation is cancelled below
    except BaseException:
        future.cancel()
        raise
    finally:
        steps.close()
        comm = getattr(counter, "comm", None)
        if comm is not None and not comm.closed():
            client.loop.add_callback(comm.close)
