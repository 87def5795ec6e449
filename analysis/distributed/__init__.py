"""Layer 2: the Dask engine: the moments and the exact neighbour table of a set too large for one
process, as Dask graphs run by ``dask.distributed`` (which schedules, retries lost tasks and spills).

``cluster`` connects to a scheduler or starts a ``LocalCluster`` (``connect``); ``arrays`` makes lazy
row-chunked arrays (``from_npy``, ``from_npy_shards``: workers read their chunks from the files; ``row_chunks``);
``engine`` holds the algorithms: per-chunk mergeable moments combined by a tree reduction
(``dask_moments``), and the self-join over chunk pairs i <= j, each pair one task whose tiles serve
both chunks (:func:`embgeo.analysis.neighbors.block_pair_knn`), the partial lists of each chunk merged
by a tree reduction (``dask_exact_knn``); ``approximate`` runs the approximate table's blocked IVF join
block by block on the workers (``dask_approximate_knn``); ``tracking`` computes a graph with progress that moves (the
share of its tasks done) and cancels it from the progress callback (``compute``). The results are the single-machine objects (``Moments``,
``Neighbors``). Dask is an optional extra (``pip install 'embgeo[dask]'``); imports only ``_core`` and
``neighbors``.
"""

from .approximate import dask_approximate_knn
from .arrays import cluster_rows, from_npy, from_npy_shards, is_dask_array, row_chunks
from .cluster import connect, local_cluster, require_dask
from .engine import dask_cosine_and_dot_sample, dask_exact_knn, dask_moments
from .tracking import compute
