"""Layer 1: the shared neighbour engine and the statistics read off its tables.

``exact`` (blocked float32 products, the symmetric self-join), ``approximate`` (an IVF self-join in a
PCA subspace, re-ranked exactly, with measured recall; ``ivf`` holds its lists and probe tuning,
``ivf_join`` its two joins, symmetric and blocked, and what each holds in memory; ``plan_join``,
``ListOrder``, ``join_block`` and ``Reranker`` let the Dask engine run the blocked join's blocks on its
workers), ``blocks`` (one pair of row blocks at a time and the merge of partial lists, for engines that
never hold the whole corpus: the Dask engine), ``table`` (:class:`Neighbors` and the finishing steps all share),
``statistics`` (overlap and recall, k-occurrence, relative contrast, expansion, local ID) and
``copies`` (groups of identical rows, and neighbour lists of distinct points that skip them). The numba
kernels are split by their consumer: ``_fold_kernels`` (exact folds), ``_join_kernels`` (the
approximate joins) and ``_distance_kernels`` (exact pair distances); ``_backend`` chooses NumPy,
torch-cpu or torch-cuda. Imports only :mod:`embgeo.analysis._core`.
"""

from ._backend import numba_thread_pool, resolve_backend
from ._fold_kernels import warm_up
from .approximate import JoinPlan, approximate_knn, check_join_fits, plan_join
from .blocks import (
    block_pair_knn,
    finish_sample_lists,
    kth_scores,
    merge_knn,
    merge_sample_lists,
    refine_near_rows,
    sample_block_lists,
    scores_to_distances,
)
from .copies import DistinctNeighbors, copy_groups, distinct_neighbors, merge_copies
from .exact import cosine_and_dot_sample, exact_knn
from .ivf_join import BLOCK_ROWS, MIN_BLOCK_ROWS, ListOrder, Reranker, join_block
from .statistics import (
    duplicate_mask,
    duplicate_tolerance,
    expansion,
    k_occurrence,
    levina_bickel_inverse,
    local_intrinsic_dimension_from_distances,
    overlap_counts,
    recall_at_k,
    recall_per_query,
    relative_contrast,
    zero_kth_distance,
)
from .table import Neighbors, refine_distances
