"""embgeo.analysis: embedding geometry, computed (no UI imports here).

Data flows one way, and the sub-packages are its stages: ``io`` / ``datasets`` / ``embed`` (load and
validate) -> ``embeddings`` (the EmbeddingSet and its caches) -> ``transforms`` (optional) ->
``neighbors`` (the shared table and its statistics) -> ``geometry`` and ``index`` (the statistics) ->
``report`` (every part of one set) -> ``comparison`` (two sets), with ``_core`` (validation, results,
rows, stats, moments, progress) under all of them. ``ARCHITECTURE.md`` draws it and states who may
import whom (``tests/test_architecture.py`` enforces it). This module re-exports the public names;
``io``, ``datasets`` and ``embed`` are public modules in their own right (``embed`` loads
sentence-transformers only when called).
"""

from . import datasets, embed, io
from ._core import (
    DISTANCE_METRICS,
    METRICS,
    Cancelled,
    CrossMoments,
    EmbeddingInputError,
    Moments,
    Progress,
    Result,
    scan_cross_moments,
    scan_moments,
    stylesheet,
)
from .datasets import list_samples, load_sample
from .embed import embed_texts
from .embeddings import ANNBenchmark, EmbeddingSet, as_embedding_set
from .io import load
from .neighbors import (
    Neighbors,
    approximate_knn,
    exact_knn,
    k_occurrence,
    recall_at_k,
    recall_per_query,
)

# transforms
from .transforms import (
    PHIS,
    TRANSFORMS,
    AllButTheTop,
    Center,
    L2Normalize,
    RogueDimensions,
    Whitening,
    ZipfianWhitening,
    apply_transform,
    fit_transformer,
)

# geometry: isotropy and spectrum, intrinsic dimension, cosine pathologies, task measures, projections
from .geometry import (
    ConcentrationReport,
    CosineDotReport,
    HubnessReduction,
    HubnessReductionReport,
    HubnessReport,
    IntrinsicDimensionReport,
    IsotropyReport,
    MLEResult,
    NearDuplicateReport,
    Projection,
    RetrievalReport,
    SimilarityDistribution,
    TwoNNResult,
    concentration_report,
    cosine_vs_dot,
    hubness_reduction_report,
    hubness_report,
    intrinsic_dimension,
    isotropy_report,
    knn_classification_accuracy,
    local_intrinsic_dimension,
    mle_dimension,
    ndcg_at,
    near_duplicates,
    neighborhood_preservation,
    project,
    recall_at,
    reduce_hubness,
    retrieval_report,
    robin_hood_index,
    similarity_distribution,
    twonn,
)

# vector-index statistics
from .index import (
    INDEX_KINDS,
    CompressionReport,
    GroundTruth,
    IndexReport,
    IndexScaling,
    IndexSweep,
    LiveIndexReport,
    QueryDifficulty,
    Reachability,
    TransformEffect,
    compression_report,
    ground_truth,
    index_report,
    index_scaling,
    index_sweep,
    ivf_balance,
    live_index_report,
    query_difficulty,
    reachability,
    transform_effect,
)

# the full geometry report (everything above, from one k-NN table), its verdicts, and comparisons
from .report import GeometryReport, Verdict, geometry_report, sampled_report, verdicts, verdicts_html
from .comparison import (
    Comparison,
    RepresentationSimilarity,
    SimilarityMatrix,
    compare,
    representation_similarity,
    similarity_matrix,
)

# the geometry of a model's layers over the same texts
from .layers import LayerGeometry, LayerStates, layer_geometry, layer_states

# a query set against the corpus it searches: distribution shift, out-of-distribution queries
from .shift import ShiftReport, shift_report

__all__ = [name for name in dir() if not name.startswith("_")]
