"""The approximate neighbour table on a Dask cluster: one process's blocked IVF join
(:mod:`embgeo.analysis.neighbors.approximate`), its blocks run as tasks on the workers.

The client plans the join as one process does (:func:`~embgeo.analysis.neighbors.plan_join`
with ``join="blocked"``: the principal basis, the projection, k-means, the tuning of the probes on one
query sample, the other kept for the recall), reorders the projection by list, and sends it to every
worker once (n x dim float32: 384 MB at 1,000,000 x 96). Each task joins a block of consecutive positions
in list order against the lists its points probe (:func:`~embgeo.analysis.neighbors.join_block`)
and re-ranks their candidates exactly on the full vectors, which the worker maps from the set's own
file (a set in memory is sent to each worker once instead). The client gathers each block's k ids and
distances, searches exactly the few points left with fewer than k candidates, and measures the recall
on the check sample against exact search, as one process does: the result is the same kind of table,
with the same recall up to the sampling.

Why the blocked join: the symmetric one feeds both points of a pair, so every point's buffer stays
live until the last list is scored, in one process's memory; blocks are independent, so Dask
schedules them, balances them over the workers and runs a lost worker's blocks again. The price is
the blocked join's: about twice the probes for the same recall. Its limit is the broadcast
projection, n x dim x 4 bytes on every worker (38 GB at 100,000,000 x 96): past about 10,000,000 rows
the projection should be partitioned by list instead (see the scaling model in benchmarks/README.md).
"""

from __future__ import annotations

import time

import numpy as np

from .._core import blocked_row_norms
from ..neighbors import BLOCK_ROWS, MIN_BLOCK_ROWS, ListOrder, Reranker, join_block, plan_join
from .arrays import _file_map, is_dask_array
from .cluster import require_dask
from .tracking import compute

#: Blocks per worker at least, so that a slow or lost worker's share is small.
BLOCKS_PER_WORKER = 4


def default_block_rows(n: int, workers: int) -> int:
    """Points of one task: the single process's block (:data:`BLOCK_ROWS`), or fewer (down to
    :data:`MIN_BLOCK_ROWS`) so that every worker gets :data:`BLOCKS_PER_WORKER` of them."""
    share = -(-int(n) // max(1, BLOCKS_PER_WORKER * int(workers)))
    return int(max(MIN_BLOCK_ROWS, min(BLOCK_ROWS, share)))


class MappedRows:
    """A float32 matrix that is (a view of) a file's memory map, as a worker opens it again: by path,
    byte offset and shape, so that the rows never travel."""

    def __init__(self, path: str, offset: int, shape: tuple[int, int]):
        self.path, self.offset, self.shape = path, offset, shape

    @classmethod
    def of(cls, x) -> "MappedRows | None":
        where = _file_map(x) if isinstance(x, np.ndarray) and x.dtype == np.float32 else None
        return None if where is None else cls(where[0], where[1], tuple(x.shape))

    def open(self) -> np.ndarray:
        return np.memmap(self.path, dtype=np.float32, mode="r", offset=self.offset, shape=self.shape)


def _join_and_rerank(layout: ListOrder, centroids, data, norms, metric: str, p0: int, p1: int, n_probe: int,
                     n_cand: int, floor: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One task: the block ``p0:p1`` of positions joined and re-ranked; its rows' k ids and distances."""
    x = data.open() if isinstance(data, MappedRows) else data
    buf_i, count = join_block(layout, centroids, p0, p1, n_probe, n_cand, floor)
    ids, dist = Reranker(x, metric, norms, n_cand, None, None).block(layout.order[p0:p1], buf_i, count,
                                                                    layout.order, k)
    return ids.astype(np.int32), dist.astype(np.float32)


def dask_approximate_knn(x, k: int = 10, *, metric: str = "cosine", client=None, target_recall: float = 0.95,
                         recall_sample: int = 500, sample_truth: tuple | None = None, random_state=0,
                         block_rows: int | None = None, memory_limit: int | None = None, progress=None):
    """The approximate k-NN self-join of :func:`~embgeo.analysis.neighbors.approximate_knn` (an IVF
    join in a PCA subspace, re-ranked exactly, recall measured), its blocked join run on the cluster.

    See the module docstring for what runs where. The parameters are those of
    :func:`~embgeo.analysis.neighbors.approximate_knn` (``memory_limit`` bounds what the client holds:
    the projection and the result), and:

    Parameters
    ----------
    x : array-like of shape (n, d)
        The corpus on the client: a memory map of a float32 file (the workers map the same path, which
        they must see: a shared or local disk), or an array in memory (sent to each worker once). A
        ``dask.array`` is not taken: the plan reads every row on the client.
    client : distributed.Client, optional
        Where the blocks run; default: Dask's current scheduler.
    block_rows : int, optional
        Points of one task; default :func:`default_block_rows` of the cluster's workers.
    progress : None, bool or callable
        The share of the blocks done, as a bar or ``progress(done, total, description)``; an exception
        the callback raises (:class:`~embgeo.analysis.Cancelled`) cancels the graph on the cluster.

    Returns
    -------
    Neighbors
        ``exact=False``, ``recall`` measured on a query sample against exact search, and ``backend``
        naming the engine, the join's settings and the number of blocks.
    """
    dask, _ = require_dask()
    if is_dask_array(x):
        raise TypeError("dask_approximate_knn plans the join on the client and takes the corpus as a memory map or "
                        "an array, not a dask array (geometry_report(cluster=...) passes the set's own vectors)")
    t0 = time.perf_counter()
    plan = plan_join(x, k, metric=metric, target_recall=target_recall, recall_sample=recall_sample,
                     sample_truth=sample_truth, random_state=random_state, memory_limit=memory_limit, join="blocked")
    n = plan.x.shape[0]
    layout = ListOrder(plan.proj, plan.lists, plan.n_lists, plan.metric)
    plan.release()
    norms = blocked_row_norms(plan.x)
    workers = len(client.scheduler_info().get("workers", {})) if client is not None else 1
    rows_each = int(block_rows) if block_rows else default_block_rows(n, workers)
    data = MappedRows.of(plan.x) or np.asarray(plan.x)
    shared = [layout, plan.centroids, data, norms]
    if client is not None:  # once to every worker, not once a task (and not through the scheduler)
        shared = client.scatter(shared, broadcast=True, hash=False)
    starts = list(range(0, n, rows_each))
    blocks = [dask.delayed(_join_and_rerank, nout=2)(*shared, plan.metric, p0, min(n, p0 + rows_each), plan.probe,
                                                      plan.n_cand, plan.floor, plan.k) for p0 in starts]
    out = compute(dask.delayed(list)(blocks), client, progress=progress,
                  description=f"approximate {plan.k}-NN join ({plan.metric}) on the cluster")
    ids = np.empty((n, plan.k), dtype=np.int32)
    dist = np.empty((n, plan.k), dtype=np.float32)
    for p0, (block_ids, block_dist) in zip(starts, out):
        rows = layout.order[p0:p0 + rows_each]
        ids[rows], dist[rows] = block_ids, block_dist
    return plan.neighbors(ids, dist, backend=f"dask({plan.backend('blocked')}, {len(starts)} blocks)",
                          seconds=time.perf_counter() - t0)
