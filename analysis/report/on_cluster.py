"""The report's heavy parts on a Dask cluster (``geometry_report(cluster=...)``): the query sample's
search, the neighbour table (exact, or the approximate join's blocks) and the moments run there
(:mod:`embgeo.analysis.distributed`) and are cached on the set, so every statistic is then computed
from them exactly as on one machine."""

from __future__ import annotations

import contextlib
from pathlib import Path

from .._core import EmbeddingInputError
from ..distributed import (
    cluster_rows,
    connect,
    dask_approximate_knn,
    dask_cosine_and_dot_sample,
    dask_exact_knn,
    dask_moments,
    from_npy_shards,
)
from ..io import shard_paths


class ClusterParts:
    """A connection to ``cluster`` (None: no cluster, and every method does nothing; false in a test)
    and the set's rows as the workers read them. :meth:`close` ends a connection this object opened."""

    def __init__(self, cluster, es, *, exact: bool):
        self.es, self.exact, self.client, self._stack = es, exact, None, contextlib.ExitStack()
        #: the parts computed there, in order (a table already cached on the set is not recomputed)
        self.ran: list[str] = []
        if cluster is None:
            return
        try:
            self.client = self._stack.enter_context(connect(cluster))
            self.rows = _rows_for_workers(es)
            workers = len(self.client.scheduler_info().get("workers", {}))
        except BaseException:  # a LocalCluster started here must not outlive a failure to use it
            self._stack.close()
            raise
        self._where = (f"a Dask cluster of {workers} worker{'s' if workers != 1 else ''} at "
                       f"{self.client.scheduler.address} (diagnostics: {self.client.dashboard_link}), in "
                       f"{self.rows.numblocks[0]} row chunks")

    def note(self, parts: str | None = None) -> str | None:
        """The report's note saying that ``parts`` (default: those in :attr:`ran`) ran on the cluster,
        and where to watch it; None when nothing ran there."""
        if parts is None:
            if not self.ran:
                return None
            parts = self.ran[0] if len(self.ran) == 1 else ", ".join(self.ran[:-1]) + " and " + self.ran[-1]
        return f"{parts} ran on {self._where}"

    def __bool__(self) -> bool:
        return self.client is not None

    def _fetch(self, rows):
        """A few rows read here, from the set's own array (a memory map reads just those pages)."""
        return self.es.vectors[rows]

    def cosine_and_dot_sample(self, _vectors, rows, k_cos: int, k_dot: int, progress=None):
        self.ran.append("the query sample's search")
        return dask_cosine_and_dot_sample(self.rows, rows, k_cos, k_dot, client=self.client, fetch_rows=self._fetch,
                                          progress=progress)

    def attach_table(self, k: int, metric: str, progress=None, *, sample_truth=None, memory_limit=None) -> None:
        """The report's neighbour table, computed on the cluster and cached on the set: the exact
        self-join, or (``exact=False``) the approximate join, tuned and measured on ``sample_truth``
        (the query sample's exact neighbours) as on one machine."""
        if not self or self.es.cached_neighbors(k, metric=metric, exact=self.exact) is not None:
            return
        self.ran.append("the exact table" if self.exact else "the approximate join")
        if self.exact:
            table = dask_exact_knn(self.rows, k, metric=metric, client=self.client, fetch_rows=self._fetch,
                                   progress=progress)
        else:
            table = dask_approximate_knn(self.es.vectors, k, metric=metric, client=self.client,
                                         sample_truth=sample_truth, memory_limit=memory_limit, progress=progress)
        self.es.attach_neighbors(table)

    def attach_moments(self, progress=None) -> None:
        if self:
            self.ran.append("the moments")
            for moments in dask_moments(self.rows, normalize=(False, True), client=self.client,  # one read
                                        progress=progress):
                self.es.attach_moments(moments)

    def close(self) -> None:
        self._stack.close()


def _rows_for_workers(es):
    """The set's rows as the workers read them: from its ``.npy`` shards' files when the set is a
    directory or glob of them, read as it was (the client's converted copy, a scratch map, does not
    travel); else :func:`~embgeo.analysis.distributed.cluster_rows` of its vectors (a file's memory map
    is read by the workers, anything else shipped from here)."""
    paths = None
    if es.source is not None and len(es.dropped_rows) == 0:  # (rows dropped on load: the files differ)
        try:
            paths = shard_paths(Path(es.source))
        except (EmbeddingInputError, OSError):  # moved or changed since it was read: ship the rows
            paths = None
    if paths and all(p.suffix.lower() == ".npy" for p in paths):
        rows = from_npy_shards(paths)
        if rows.shape == (es.n, es.dim):
            return rows
    return cluster_rows(es.vectors)
