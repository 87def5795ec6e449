"""Layer 0: the primitives every other layer shares, importing nothing else of embgeo.

validation (the one error type, the checks and :data:`METRICS`), results (frozen result objects with
meanings and references), rows (unit rows and norms), stats (samples, bootstrap, skewness, Spearman),
moments (mergeable mean and covariance, principal axes, PCA dimension), pairwise (the squared distances of a
row sample and the median-heuristic bandwidth), cross_moments (mergeable
cross-moments of two representations of the same items), stacked_moments (those of every pair of
many sets from one pass), progress (bars, callbacks,
cancellation), memory (the memory budget) and scratch (float32 matrices in unnamed scratch files; a
dask array's rows converted a chunk at a time).
Other layers import these names from ``embgeo.analysis._core``, never from its modules.
"""

from .cross_moments import CROSS_BLOCK_ROWS, CrossMoments, check_cross_memory, scan_cross_moments
from .memory import available_memory, size_text, resolve_memory_limit
from .moments import MOMENT_BLOCK_ROWS, Moments, pca_dimension, scan_moments
from .pairwise import MEDIAN_PAIRS, median_distance, pairwise_sq_distances
from .progress import Cancelled, Progress, sub_progress
from .results import Result, format_value, hidden, metric, stylesheet
from .rows import blocked_row_norms, prepare_rows, row_norms, unit_rows
from .scratch import (
    dask_array_rows,
    float32_matrix_from_blocks,
    is_dask_array,
    is_file_map,
    is_scratch_map,
    scratch_dir,
    scratch_matrix,
)
from .stacked_moments import StackedMoments, plan_stacked_passes, scan_stacked_moments, stacked_moments_bytes
from .stats import (
    bootstrap,
    check_confidence,
    check_n_boot,
    median_ci,
    percentile_interval,
    row_skewness,
    sample_rows,
    skewness,
    spearman,
)
from .validation import (
    DISTANCE_METRICS,
    METRICS,
    EmbeddingInputError,
    as_float32_matrix,
    check_distance_metric,
    check_finite,
    check_k,
    check_magnitudes,
    check_metric,
    check_no_zero_rows,
    check_random_state,
    check_same_dim,
    check_weights,
    find_nonfinite_rows,
    find_zero_rows,
    float32_block,
    iter_row_blocks,
    magnitude_limits,
    nonfinite_error,
    row_peaks,
    validate_estimator_input,
)
