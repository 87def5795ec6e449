"""embgeo.analysis: embedding geometry, computed (no UI imports here).

Data flows one way: load -> validate -> (transform) -> shared k-NN cache -> reports.
Implementations live in private modules and are re-exported here; ``io``, ``datasets`` and ``embed``
are public modules in their own right (``embed`` loads sentence-transformers only when called).
"""

from . import datasets, embed, io
from ._embedding_set import ANNBenchmark, EmbeddingSet, as_embedding_set
from ._ann import approximate_knn, recall_at_k
from ._knn import Neighbors, exact_knn
from ._results import Result
from ._validation import EmbeddingInputError
from .datasets import list_samples, load_sample
from .embed import embed_texts
from .io import load

# the full geometry report (everything below, from one k-NN table)
from ._report import GeometryReport, geometry_report
# geometry: isotropy and spectrum
from ._moments import Moments, scan_moments
from ._isotropy import IsotropyReport, isotropy_report
# geometry: intrinsic dimension
from ._intrinsic_dim import (
    IntrinsicDimensionReport,
    MLEResult,
    TwoNNResult,
    intrinsic_dimension,
    local_intrinsic_dimension,
    mle_dimension,
    twonn,
)
# geometry: cosine pathologies
from ._hubness import (
    ConcentrationReport,
    HubnessReport,
    concentration_report,
    hubness_report,
    k_occurrence,
    robin_hood_index,
)
from ._similarity import (
    CosineDotReport,
    NearDuplicateReport,
    SimilarityDistribution,
    cosine_vs_dot,
    near_duplicates,
    similarity_distribution,
)
# transforms
from ._transforms import (
    PHIS,
    AllButTheTop,
    Center,
    L2Normalize,
    RogueDimensions,
    Whitening,
    ZipfianWhitening,
)
from ._hubness_reduction import HubnessReduction, HubnessReductionReport, hubness_reduction_report, reduce_hubness
from ._retrieval import (
    RetrievalReport,
    knn_classification_accuracy,
    ndcg_at,
    neighborhood_preservation,
    recall_at,
    retrieval_report,
)
# before/after comparison of two spaces (e.g. a transform)
from ._compare import TRANSFORMS, Comparison, apply_transform, compare
# vector-index statistics
from ._index import (
    GroundTruth,
    IndexReport,
    IndexScaling,
    IndexSweep,
    QueryDifficulty,
    Reachability,
    ground_truth,
    index_report,
    index_scaling,
    index_sweep,
    ivf_balance,
    query_difficulty,
    reachability,
    transform_effect,
    TransformEffect,
)
from ._compression import CompressionReport, compression_report
# projections for the dashboards
from ._projection import Projection, project

__all__ = [name for name in dir() if not name.startswith("_")]
